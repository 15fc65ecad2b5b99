"""A real redis-server process for tests and benchmarks: free loopback port, pause, kill, restart.

No pytest here (benchmarks/redis_cost.py imports it); the fixtures are in tests/redis_support.py.
Round trips are counted from the server's own statistics (``INFO commandstats`` for commands,
``total_reads_processed`` for request reads), never from a mock.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

SKIP_REASON = "redis-server not found; install it (apt-get install redis-server) to run the Redis tests"
_TRUE_VALUES = {"1", "true", "yes", "on"}
_PROC_NET_TCP = Path("/proc/net/tcp")


def redis_required() -> bool:
    """CI must run the Redis tests: there a missing server fails instead of skipping.

    ``DLOADER_REDIS_OPTIONAL=1`` lets a CI job that cannot have a redis-server (Windows,
    cibuildwheel's test step) skip them anyway.
    """
    if os.environ.get("DLOADER_REDIS_OPTIONAL", "").strip().lower() in _TRUE_VALUES:
        return False
    return os.environ.get("CI", "").strip().lower() in _TRUE_VALUES


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process on 127.0.0.1, without persistence, in its own directory.

    ``pause()``/``resume()`` send SIGSTOP/SIGCONT (commands then time out), ``kill()``
    sends SIGKILL (connections are refused), ``start()`` (re)starts it on the same port.
    """

    def __init__(self, binary: str, directory: Path, port: int | None = None) -> None:
        self.binary = binary
        self.directory = directory
        self.port = port if port is not None else free_loopback_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False
        self._admin: Any = None  # a synchronous redis-py client, created on first use

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __repr__(self) -> str:
        state = "paused" if self.paused else "running" if self.running else "stopped"
        return f"<RedisServer 127.0.0.1:{self.port} {state}>"

    # ------------------------------------------------------------ lifecycle

    def start(self, ready_within: float = 20.0) -> None:
        """Start the server (on the same port as before, after a kill) and wait until it answers PING."""
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 -- the server writes to it until it exits
        try:
            options = {"port": str(self.port), "bind": "127.0.0.1", "save": "", "appendonly": "no"}
            options.update({"dir": str(self.directory), "daemonize": "no"})
            self.process = subprocess.Popen(
                [self.binary, *(item for name, value in options.items() for item in (f"--{name}", value))],
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        self.paused = False
        deadline = time.monotonic() + ready_within
        while not self._answers_ping():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer within {ready_within} s:\n{self.log_tail()}")
            time.sleep(0.02)
        # Statistics start at zero, without the readiness PING or the admin client's handshake.
        self.admin().config_resetstat()

    def pause(self) -> None:
        """SIGSTOP: the server keeps its connections open but answers nothing (timeouts)."""
        assert self.process is not None and self.running
        self.process.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT: the server answers again, including what it was sent while paused."""
        if self.process is not None and self.paused:
            self.process.send_signal(signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        """SIGKILL and reap: connections are reset and new ones refused until ``start()``."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.paused = False
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def close(self) -> None:
        self.resume()
        self.kill()

    def healthy(self) -> RedisServer:
        """Resume or restart as needed, so that the server answers."""
        self.resume()
        if not self.running:
            self.start()
        return self

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.directory / "redis.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    # ------------------------------------------------------------ commands and statistics

    def admin(self) -> Any:
        """A synchronous redis-py client on one connection, for setting up and inspecting state."""
        if self._admin is None:
            import redis

            self._admin = redis.Redis(
                host="127.0.0.1", port=self.port, socket_timeout=10, single_connection_client=True
            )
        return self._admin

    def cli(self, *args: str) -> str:
        """Run ``redis-cli -p PORT args...`` (a separate program, like an operator would)."""
        cli = shutil.which("redis-cli") or str(Path(self.binary).with_name("redis-cli"))
        completed = subprocess.run(
            [cli, "-h", "127.0.0.1", "-p", str(self.port), *args], capture_output=True, timeout=30, check=True
        )
        return completed.stdout.decode().strip()

    def reset(self) -> None:
        """Empty every database and zero the statistics (FLUSHALL, CONFIG RESETSTAT)."""
        admin = self.admin()
        admin.flushall()
        admin.config_resetstat()

    def command_calls(self) -> dict[str, int]:
        """Calls per command since the last reset, from ``INFO commandstats`` (``{"mget": 1, ...}``).

        The admin connection's own INFO and CONFIG commands are left out.
        """
        stats = self.admin().info("commandstats")
        calls = {name.removeprefix("cmdstat_"): int(fields["calls"]) for name, fields in stats.items()}
        for own in ("info", "config|resetstat", "flushall"):
            calls.pop(own, None)
        return calls

    def requests_read(self) -> int:
        """``total_reads_processed``: reads of client requests (a pipeline sent at once is one read).

        Only meaningful for requests below 16 KB (redis reads at most that much per read)
        on connections that are already open (connecting and closing add reads).
        """
        return int(self.admin().info("stats")["total_reads_processed"])

    @staticmethod
    def can_count_unread_requests() -> bool:
        return _PROC_NET_TCP.exists()

    def connections_with_unread_requests(self) -> int:
        """Server-side connections whose socket holds bytes the server has not read (Linux /proc).

        While the server is paused, that is the number of commands sent and waiting.
        """
        local = f"0100007F:{self.port:04X}"
        count = 0
        for line in _PROC_NET_TCP.read_text().splitlines()[1:]:
            fields = line.split()
            established = fields[3] == "01"
            if established and fields[1] == local and int(fields[4].split(":")[1], 16) > 0:
                count += 1
        return count

    def round_trips_since(self, reads_before: int) -> int:
        """Requests read since ``requests_read()`` returned ``reads_before``, without this INFO's own."""
        return self.requests_read() - reads_before - 1


def start_server(directory: Path) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError(SKIP_REASON)
    server = RedisServer(binary, directory)
    server.start()
    return server

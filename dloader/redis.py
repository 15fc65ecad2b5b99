"""A ValueCache on Redis (``redis.asyncio``, redis-py >= 5): one MGET per batch, one pipeline per write.

Install with ``pip install 'dloader[redis]'``; pass ``value_cache=RedisValueCache(...)`` to a DataLoader.

Layout in Redis, for ``namespace="users:v1"``:

- ``users:v1:<key_to_str(key)>`` holds an entry: ``b"<generation>:"`` followed by the
  codec's bytes, written with ``SET ... PX <ttl>``;
- ``users:v1:`` (the namespace and a colon) holds the namespace's generation, an integer
  that ``clear()`` increments (``INCRBY``); it has no TTL.

``get_many`` reads the generation in the same ``MGET`` as the entries (first key) and
treats an entry written under another generation as a miss, so ``clear()`` is one
command however many entries exist, and never scans Redis. Old entries stay until their
TTL expires or a write replaces them.

A cache failure never fails a load: ``get_many`` and ``set_many`` return (all misses, or
nothing written) when Redis is down, slow, refusing connections or answering garbage;
each call is bounded by ``timeout``; failures are counted and logged at a limited rate;
after ``failure_threshold`` consecutive failures Redis is skipped for ``cooldown``
seconds. ``delete_many`` and ``clear`` raise instead, so ``loader.invalidate()`` can tell
its caller that the invalidation did not happen.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import math
import pickle
import random
import time
import uuid
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from dloader.value_cache import MISS

if TYPE_CHECKING:
    import redis.asyncio

__all__ = [
    "Codec",
    "JsonCodec",
    "PickleCodec",
    "RedisValueCache",
    "default_key_to_str",
]

logger = logging.getLogger("dloader.redis")


# ---------------------------------------------------------------- codecs


@runtime_checkable
class Codec(Protocol):
    """Turns a value into bytes for Redis and back.

    ``encode`` may raise for a value it cannot represent: that value is not written
    (counted in ``RedisValueCache.encode_errors``). ``decode`` may raise for bytes it
    cannot read: the entry is a miss (counted in ``corrupt``) and the next write
    replaces it. A codec may also offer ``decode_many(payloads) -> list | None`` to decode
    a batch's hits at once; ``None`` makes the cache fall back to ``decode`` per value.
    """

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


class JsonCodec:
    """The default codec: the standard library's JSON, as compact UTF-8.

    Round-trips ``None``, ``bool``, ``int``, ``float``, ``str``, lists and dicts with
    string keys. JSON has no tuples (they come back as lists), no bytes, no sets, no
    datetimes, and turns dict keys into strings (``{1: "a"}`` comes back as
    ``{"1": "a"}``): convert such values in ``load_fn`` or pass another codec. A value
    JSON cannot encode is not written; ``NaN`` and infinities are refused too, since
    other JSON readers reject them.
    """

    __slots__ = ()

    def encode(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()

    def decode(self, data: bytes) -> Any:
        return json.loads(data)

    def decode_many(self, payloads: list[bytes]) -> list[Any] | None:
        """Decode a batch's hits with one parse of a JSON array (about 3× faster than one per value).

        Returns ``None`` when the array does not parse into exactly one value per payload
        (a corrupt entry), and the cache then decodes them one by one to find it.
        """
        try:
            values = json.loads(b"[" + b",".join(payloads) + b"]")
        except ValueError:
            return None
        return values if type(values) is list and len(values) == len(payloads) else None

    def __repr__(self) -> str:
        return "JsonCodec()"


class PickleCodec:
    """Pickle: any picklable value, including your own classes. **Read the warning.**

    .. warning:: Unpickling runs code chosen by whoever wrote the bytes. With this codec,
       anyone who can write to your Redis (a compromised neighbour service, a leaked
       password, an exposed port) can execute code in every process that reads the
       cache. Use it only when Redis is as trusted as your own code, and prefer JSON or
       a schema-bound codec (msgpack, protobuf) otherwise. Pickled classes must also be
       importable, unchanged, in every process that reads them: put a version in the
       namespace and change it when a cached class changes.

    The opt-in is explicit: ``PickleCodec(i_understand_this_executes_code=True)``.
    """

    __slots__ = ("protocol",)

    def __init__(self, *, i_understand_this_executes_code: bool = False, protocol: int = 5) -> None:
        if i_understand_this_executes_code is not True:
            raise ValueError(
                "PickleCodec executes code chosen by whoever can write to Redis when it decodes an entry; "
                "opt in with PickleCodec(i_understand_this_executes_code=True), or use JsonCodec or a custom codec"
            )
        if not isinstance(protocol, int) or isinstance(protocol, bool) or not 2 <= protocol <= pickle.HIGHEST_PROTOCOL:
            raise ValueError(f"protocol must be an int from 2 to {pickle.HIGHEST_PROTOCOL}, got {protocol!r}")
        self.protocol = protocol

    def encode(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=self.protocol)

    def decode(self, data: bytes) -> Any:
        return pickle.loads(data)  # the caller opted in, see the class docstring

    def __repr__(self) -> str:
        return f"PickleCodec(i_understand_this_executes_code=True, protocol={self.protocol})"


# ---------------------------------------------------------------- keys


def default_key_to_str(key: Hashable) -> str:
    """Encode a cache key as text, injectively: different keys give different strings.

    Each value is tagged with its type, so ``1``, ``"1"``, ``1.0``, ``True`` and ``b"1"``
    are four different Redis keys:

    ======================  ======================================
    key                     text
    ======================  ======================================
    ``str``                 ``s:`` + the string
    ``int``                 ``i:`` + decimal digits
    ``bool``                ``b:1`` or ``b:0``
    ``float``               ``f:`` + ``repr()`` (``f:0.1``, ``f:-0.0``, ``f:nan``)
    ``bytes``               ``x:`` + lowercase hex
    ``None``                ``n``
    ``uuid.UUID``           ``u:`` + canonical hex with dashes
    ``tuple`` of the above  ``t<count>:`` + each item as ``<length>:<text>``
    ======================  ======================================

    Subclasses (``IntEnum``, ``StrEnum`` members) are encoded as their base value, like
    the loader's own cache treats them. Anything else raises ``TypeError``: pass your own
    ``key_to_str`` (for example ``lambda key: f"{key.tenant}/{key.id}"``) and keep it
    injective, or two keys will share one entry.
    """
    # Exact types first: the common case costs one type() call and one comparison.
    kind = type(key)
    if kind is int:
        return f"i:{key}"
    if kind is str:
        return f"s:{key}"
    if isinstance(key, bool):
        return "b:1" if key else "b:0"
    if isinstance(key, int):
        return f"i:{int.__repr__(key)}"
    if isinstance(key, str):
        return "s:" + str.__str__(key)
    if isinstance(key, float):
        return "f:" + float.__repr__(key)
    if isinstance(key, bytes):
        return "x:" + key.hex()
    if key is None:
        return "n"
    if isinstance(key, uuid.UUID):
        return f"u:{key}"
    if isinstance(key, tuple):
        parts = [default_key_to_str(item) for item in key]
        return f"t{len(parts)}:" + "".join(f"{len(part)}:{part}" for part in parts)
    raise TypeError(
        f"default_key_to_str cannot encode a key of type {kind.__qualname__} ({key!r}); it encodes str, int, "
        "bool, float, bytes, None, uuid.UUID and tuples of them. Pass key_to_str= to RedisValueCache "
        "with an injective function of your own."
    )


# ---------------------------------------------------------------- the cache


#: Read generations remembered for keys between get_many and set_many (see _note_read).
_MAX_PENDING_READS: Final = 16_384
#: A read generation that makes set_many skip the key: deleted while its load was in flight.
_INVALIDATED: Final = -1
#: Rate limit of the failure log: one record per interval, with the count suppressed since.
_LOG_INTERVAL_SECONDS: Final = 10.0


class RedisValueCache:
    """A :class:`dloader.value_cache.ValueCache` on Redis, shared by every process that uses the namespace.

    ``client`` is a ``redis.asyncio.Redis`` (redis-py >= 5) created with the default
    ``decode_responses=False``; it belongs to one event loop, and so does this cache. The
    cache does not own it: close it yourself (``await client.aclose()``).

    Arguments (keyword-only after ``client``):

    - ``namespace``: prefix of every key; one namespace per kind of value. Put a version
      of the value's shape in it (``"users:v2"``) and change it when the shape changes, so
      that processes of an old deployment and a new one do not read each other's
      entries. Namespaces must not be prefixes of one another followed by ``:``.
    - ``ttl``: required. Seconds (``float`` or ``datetime.timedelta``, at least 1 ms) an
      entry lives; staleness across processes is bounded by it.
    - ``ttl_jitter``: a fraction in ``[0, 1)``; each entry's TTL is drawn uniformly from
      ``[ttl * (1 - ttl_jitter), ttl]``, so that entries written together do not expire
      together. It only shortens TTLs: ``ttl`` stays the bound on staleness.
    - ``codec``: a :class:`Codec`; :class:`JsonCodec` by default.
    - ``timeout``: seconds each call may take, connecting included, or ``None`` for no
      bound (then the client's own socket timeouts apply). Default 0.05 s: far above a
      healthy Redis round trip (well under 1 ms on a LAN, a few ms across zones), well
      under the query it saves, and a small price for a batch that falls back to
      ``load_fn`` when Redis is in trouble. One call carries a whole batch: for batches
      of many thousands of keys, raise it or set the loader's ``max_batch_size``.
    - ``key_to_str``: turns a cache key into the text after ``namespace:``; it must be
      injective and return a non-empty ``str``. :func:`default_key_to_str` by default.
    - ``failure_threshold``: consecutive failed calls after which Redis is skipped
      (default 5).
    - ``cooldown``: seconds Redis is skipped for, after which one call tries it again
      (default 10.0).

    Counters (public, cumulative ints): ``hits``, ``misses`` (keys; ``stale`` and
    ``corrupt`` entries count as misses too), ``stale`` (entries of an older generation),
    ``corrupt`` (entries that did not decode), ``writes`` (entries sent to Redis),
    ``encode_errors`` (values the codec refused, not written), ``failures`` (calls that
    raised or timed out), ``timeouts`` (of those, the ones that timed out),
    ``skipped`` (get/set calls not sent because Redis was being skipped) and
    ``consecutive_failures`` (reset by every call that succeeds).
    """

    __slots__ = (
        "_client",
        "_decode_many",
        "_generation_key",
        "_generation_seen",
        "_key_prefix",
        "_last_log_time",
        "_pending_reads",
        "_skip_until",
        "_suppressed_logs",
        "_ttl_ms",
        "codec",
        "consecutive_failures",
        "cooldown",
        "corrupt",
        "encode_errors",
        "failure_threshold",
        "failures",
        "hits",
        "key_to_str",
        "misses",
        "namespace",
        "skipped",
        "stale",
        "timeout",
        "timeouts",
        "ttl",
        "ttl_jitter",
        "writes",
    )

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        namespace: str,
        ttl: float | datetime.timedelta | None = None,
        ttl_jitter: float = 0.0,
        codec: Codec | None = None,
        timeout: float | None = 0.05,
        key_to_str: Callable[[Any], str] = default_key_to_str,
        failure_threshold: int = 5,
        cooldown: float = 10.0,
    ) -> None:
        if not all(callable(getattr(client, name, None)) for name in ("mget", "pipeline", "incr", "delete", "get")):
            raise TypeError(f"client must be a redis.asyncio.Redis, got {type(client).__qualname__}")
        _require_redis_py_5(client)
        pool = getattr(client, "connection_pool", None)
        if getattr(pool, "connection_kwargs", {}).get("decode_responses"):
            raise ValueError("client must be created with decode_responses=False: the cache stores bytes")
        if not isinstance(namespace, str) or not namespace:
            raise TypeError(f"namespace must be a non-empty str, got {namespace!r}")
        self.ttl = _validate_ttl(ttl)
        if isinstance(ttl_jitter, bool) or not isinstance(ttl_jitter, int | float) or not 0 <= ttl_jitter < 1:
            raise ValueError(f"ttl_jitter must be a number in [0, 1), got {ttl_jitter!r}")
        if codec is None:
            codec = JsonCodec()
        elif not isinstance(codec, Codec):
            raise TypeError(f"codec must have encode(value) -> bytes and decode(bytes) methods, got {codec!r}")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < math.inf
        ):
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        if not callable(key_to_str):
            raise TypeError(f"key_to_str must be callable, got {key_to_str!r}")
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int) or failure_threshold < 1:
            raise ValueError(f"failure_threshold must be an int >= 1, got {failure_threshold!r}")
        if isinstance(cooldown, bool) or not isinstance(cooldown, int | float) or not 0 <= cooldown < math.inf:
            raise ValueError(f"cooldown must be a number of seconds >= 0, got {cooldown!r}")

        self._client = client
        self.namespace = namespace
        self.ttl_jitter = float(ttl_jitter)
        self.codec: Codec = codec
        # Optional: decode every hit of a batch in one call (JsonCodec parses one JSON array).
        self._decode_many: Callable[[list[bytes]], list[Any] | None] | None = getattr(codec, "decode_many", None)
        self.timeout = None if timeout is None else float(timeout)
        self.key_to_str = key_to_str
        self.failure_threshold = failure_threshold
        self.cooldown = float(cooldown)

        self._key_prefix = namespace + ":"
        self._generation_key = namespace + ":"
        self._ttl_ms = max(1, round(self.ttl * 1000))
        # The generation read by the last successful get_many (None before the first).
        self._generation_seen: int | None = None
        # Redis key -> the generation under which its last miss was read, so that a value
        # loaded before a clear() is written under the old generation (unreadable) even when
        # a later batch already saw the new one. Bounded; oldest dropped first.
        self._pending_reads: dict[str, int] = {}
        self._skip_until = 0.0
        self._last_log_time = -math.inf
        self._suppressed_logs = 0

        self.hits = 0
        self.misses = 0
        self.stale = 0
        self.corrupt = 0
        self.writes = 0
        self.encode_errors = 0
        self.failures = 0
        self.timeouts = 0
        self.skipped = 0
        self.consecutive_failures = 0

    def __repr__(self) -> str:
        state = "skipping" if self.skipping else "active"
        return (
            f"<RedisValueCache namespace={self.namespace!r} ttl={self.ttl:g} {state} "
            f"hits={self.hits} misses={self.misses} failures={self.failures}>"
        )

    # ------------------------------------------------------------ public state

    @property
    def client(self) -> redis.asyncio.Redis:
        """The redis-py client this cache sends its commands through."""
        return self._client

    @property
    def skipping(self) -> bool:
        """True while Redis is skipped after ``failure_threshold`` consecutive failures."""
        return self._skip_until > time.monotonic()

    def redis_key(self, key: Any) -> str:
        """The Redis key holding ``key``'s entry: ``namespace:`` + ``key_to_str(key)``."""
        text = self.key_to_str(key)
        if type(text) is not str or not text:
            raise TypeError(f"key_to_str must return a non-empty str, returned {text!r} for the key {key!r}")
        return self._key_prefix + text

    def _redis_keys(self, keys: list[Any]) -> list[str]:
        key_to_str = self.key_to_str
        if key_to_str is default_key_to_str:  # always a non-empty str: no check per key
            prefix = self._key_prefix
            return [prefix + default_key_to_str(key) for key in keys]
        return [self.redis_key(key) for key in keys]

    @property
    def generation_key(self) -> str:
        """The Redis key holding the namespace's generation counter (``namespace:``)."""
        return self._generation_key

    # ------------------------------------------------------------ the protocol

    async def get_many(self, keys: list[Any]) -> list[Any]:
        """One ``MGET`` of the generation and every key; a value or ``MISS`` per key.

        Never raises for Redis trouble (every key is then a miss); raises ``TypeError``
        for a key ``key_to_str`` cannot encode, since that is a bug to fix, not an outage.
        """
        count = len(keys)
        if count == 0:
            return []
        redis_keys = self._redis_keys(keys)
        redis_keys.insert(0, self._generation_key)
        if self._skip_this_call():
            self.misses += count
            return [MISS] * count
        try:
            async with asyncio.timeout(self.timeout):
                # Bytes or None per key: decode_responses=False was checked at construction.
                replies: list[Any] = await self._client.mget(redis_keys)
            generation = _parse_generation(replies[0])
            if len(replies) != count + 1:
                raise ValueError(f"MGET of {count + 1} keys returned {len(replies)} replies")
        except Exception as error:  # any failure of the cache is a miss, never a failed load
            self._record_failure("get_many", error)
            self.misses += count
            return [MISS] * count
        self._record_success()
        self._generation_seen = generation
        prefix = b"%d:" % generation
        prefix_length = len(prefix)
        results: list[Any] = [MISS] * count
        found: list[int] = []  # positions of the entries of this generation
        payloads: list[bytes] = []
        for index in range(count):
            reply = replies[index + 1]
            if reply is not None:
                if reply.startswith(prefix):
                    found.append(index)
                    payloads.append(reply[prefix_length:])
                    continue
                if _written_under_another_generation(reply):
                    self.stale += 1
                else:
                    self.corrupt += 1
            self._note_read(redis_keys[index + 1], generation)
        hits = len(found)
        decode_many = self._decode_many
        values = decode_many(payloads) if decode_many is not None and payloads else None
        if values is not None:
            for index, value in zip(found, values):
                results[index] = value
        else:
            decode = self.codec.decode
            for index, payload in zip(found, payloads):
                try:
                    results[index] = decode(payload)
                except Exception:  # a corrupt entry is a miss; the next write replaces it
                    self.corrupt += 1
                    hits -= 1
                    self._note_read(redis_keys[index + 1], generation)
        self.hits += hits
        self.misses += count - hits
        return results

    async def set_many(self, items: list[tuple[Any, Any]]) -> None:
        """One pipeline (no transaction) of ``SET key value PX ttl``, one per item.

        Each value is written under the generation its key was read under by
        ``get_many`` (or, for keys not read through this cache, the last generation
        seen; before any read, one ``GET`` of the generation first). Never raises for
        Redis trouble or values the codec refuses; raises ``TypeError`` for a key
        ``key_to_str`` cannot encode.
        """
        if not items:
            return
        pending_reads = self._pending_reads
        encode = self.codec.encode
        unread: list[tuple[str, bytes]] = []
        entries: list[tuple[str, bytes]] = []
        for key, value in items:
            redis_key = self.redis_key(key)
            try:
                payload = encode(value)
                if not isinstance(payload, bytes):
                    raise TypeError(f"{self.codec!r}.encode returned {type(payload).__qualname__}, not bytes")
            except Exception as error:
                self.encode_errors += 1
                self._log_rate_limited("value of key %r not written: %s cannot encode it (%r)", key, self.codec, error)
                continue
            generation = pending_reads.pop(redis_key, None)
            if generation is None:
                unread.append((redis_key, payload))
            elif generation != _INVALIDATED:
                entries.append((redis_key, b"%d:" % generation + payload))
        if not entries and not unread:
            return
        if self._skip_this_call():
            return
        try:
            async with asyncio.timeout(self.timeout):
                if unread:
                    generation = self._generation_seen
                    if generation is None:
                        reply: Any = await self._client.get(self._generation_key)
                        generation = self._generation_seen = _parse_generation(reply)
                    prefix = b"%d:" % generation
                    entries.extend((redis_key, prefix + payload) for redis_key, payload in unread)
                pipeline = self._client.pipeline(transaction=False)
                for redis_key, data in entries:
                    pipeline.set(redis_key, data, px=self._entry_ttl_ms())
                await pipeline.execute()
        except Exception as error:  # a failed write only costs a later reload
            self._record_failure("set_many", error)
            return
        self._record_success()
        self.writes += len(entries)

    async def delete_many(self, keys: list[Any]) -> None:
        """One ``DEL`` of the keys. Raises on failure or timeout, so ``invalidate()`` can report it.

        A key whose miss was read but not yet written (its ``load_fn`` call is in flight)
        is also marked so that the coming write is dropped: it would hold the value from
        before the invalidation.
        """
        if not keys:
            return
        redis_keys = self._redis_keys(keys)
        for redis_key in redis_keys:
            if redis_key in self._pending_reads:
                self._pending_reads[redis_key] = _INVALIDATED
        try:
            async with asyncio.timeout(self.timeout):
                await self._client.delete(*redis_keys)
        except Exception as error:
            self._record_failure("delete_many", error)
            raise
        self._record_success()

    async def clear(self) -> None:
        """One ``INCRBY 1`` of the namespace's generation: every entry written before is unreachable.

        Nothing is scanned or deleted; old entries expire with their TTL. Raises on failure
        or timeout.
        """
        try:
            async with asyncio.timeout(self.timeout):
                generation = await self._client.incrby(self._generation_key, 1)
        except Exception as error:
            self._record_failure("clear", error)
            raise
        self._record_success()
        self._generation_seen = int(generation)

    # ------------------------------------------------------------ internals

    def _entry_ttl_ms(self) -> int:
        if not self.ttl_jitter:
            return self._ttl_ms
        return max(1, round(self._ttl_ms * (1.0 - random.random() * self.ttl_jitter)))

    def _note_read(self, redis_key: str, generation: int) -> None:
        pending_reads = self._pending_reads
        previous = pending_reads.get(redis_key)
        if previous is not None:
            # Two loads of one key in flight: the older generation wins, so that a value
            # read before a clear() is never written as current (the other costs a reload).
            if previous <= generation:
                return
        elif len(pending_reads) >= _MAX_PENDING_READS:
            # Misses whose loads failed (a missing row, an error) are never written, so their
            # reads are never collected by set_many; forget the oldest. A forgotten key is
            # written under the last generation seen, which is right unless a clear() came
            # between its read and its write.
            del pending_reads[next(iter(pending_reads))]
        pending_reads[redis_key] = generation

    def _skip_this_call(self) -> bool:
        """Whether to skip Redis now; the first call after the cooldown goes through as a probe."""
        if self._skip_until == 0.0:
            return False
        now = time.monotonic()
        if now < self._skip_until:
            self.skipped += 1
            return True
        # The cooldown is over: this call probes Redis; others keep skipping until it
        # succeeds (_record_success) or fails (_record_failure re-arms the cooldown).
        self._skip_until = now + self.cooldown
        return False

    def _record_success(self) -> None:
        if self._skip_until:
            logger.warning("Redis cache %r: Redis answers again; using it", self.namespace)
            self._skip_until = 0.0
        self.consecutive_failures = 0

    def _record_failure(self, operation: str, error: Exception) -> None:
        self.failures += 1
        if isinstance(error, TimeoutError):  # asyncio.timeout's, or a connect timeout of the OS
            self.timeouts += 1
            description = f"timed out after {self.timeout} s"
        elif any(cls.__name__ == "TimeoutError" for cls in type(error).__mro__):  # redis-py's socket_timeout
            self.timeouts += 1
            description = f"timed out: {error!r}"
        else:
            description = f"failed: {error!r}"
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.failure_threshold:
            already_skipping = self._skip_until != 0.0
            self._skip_until = time.monotonic() + self.cooldown
            if not already_skipping:
                logger.warning(
                    "Redis cache %r: %s %s; %d consecutive failures, skipping Redis for %g s",
                    self.namespace,
                    operation,
                    description,
                    self.consecutive_failures,
                    self.cooldown,
                )
                return
        self._log_rate_limited("Redis cache %r: %s %s", self.namespace, operation, description)

    def _log_rate_limited(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_log_time < _LOG_INTERVAL_SECONDS:
            self._suppressed_logs += 1
            return
        if self._suppressed_logs:
            message += " (%d similar messages suppressed)"
            args = (*args, self._suppressed_logs)
        self._last_log_time = now
        self._suppressed_logs = 0
        logger.warning(message, *args)


def _require_redis_py_5(client: object) -> None:
    """redis-py < 5 can corrupt a connection when a command is cancelled, and loaders cancel batches."""
    if not type(client).__module__.startswith("redis."):
        return  # a compatible client of another distribution (a fork); its version scheme is its own
    import redis

    major = redis.__version__.split(".", 1)[0]
    if not major.isdigit() or int(major) < 5:
        raise RuntimeError(
            f"RedisValueCache needs redis-py >= 5 (installed: {redis.__version__}): older versions can hand "
            "a cancelled command's reply to the next command (CVE-2023-28858); pip install 'dloader[redis]'"
        )


def _validate_ttl(ttl: object) -> float:
    if ttl is None:
        raise TypeError(
            "ttl is required: seconds an entry lives in Redis (e.g. ttl=300). Entries without expiry "
            "would fill Redis and keep stale values forever."
        )
    if isinstance(ttl, datetime.timedelta):
        ttl = ttl.total_seconds()
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise TypeError(f"ttl must be a number of seconds or a datetime.timedelta, got {ttl!r}")
    if not 0.001 <= ttl < math.inf:
        raise ValueError(f"ttl must be at least 0.001 s (1 ms) and finite, got {ttl!r}")
    return float(ttl)


def _parse_generation(reply: bytes | None) -> int:
    """The namespace's generation from its Redis value; a namespace never cleared is at 0."""
    if reply is None:
        return 0
    return int(reply)


def _written_under_another_generation(reply: bytes) -> bool:
    head, separator, _ = reply[:24].partition(b":")
    return bool(separator) and head.isdigit()


if TYPE_CHECKING:
    from dloader.value_cache import ValueCache

    def _implements_the_protocol(cache: RedisValueCache) -> ValueCache:
        return cache  # mypy checks RedisValueCache against the protocol here

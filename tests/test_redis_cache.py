"""RedisValueCache against a real redis-server: round trips, TTLs, generations, failures, codecs, keys.

Round trips are counted by the server (INFO commandstats, total_reads_processed); outages are real signals.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import logging
import math
import time
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis_support import RedisServer, open_cache

redis_asyncio = pytest.importorskip("redis.asyncio", reason="redis-py is not installed (pip install 'dloader[test]')")

from dloader.redis import (  # noqa: E402 -- after the skip above
    Codec,
    JsonCodec,
    PickleCodec,
    RedisValueCache,
    default_key_to_str,
)
from dloader.value_cache import MISS, ValueCache  # noqa: E402

NAMESPACE = "test"


def entries(count: int) -> list[tuple[int, str]]:
    return [(key, f"value-{key}") for key in range(count)]


# ---------------------------------------------------------------- round trips


async def test_get_many_is_one_mget_and_set_many_one_pipeline(redis_server: RedisServer) -> None:
    keys = list(range(100))
    async with open_cache(redis_server) as cache:
        await cache.client.ping()  # open the connection: connecting costs reads of its own
        reads = redis_server.requests_read()
        assert await cache.get_many(keys) == [MISS] * 100
        assert redis_server.round_trips_since(reads) == 1

        reads = redis_server.requests_read()
        await cache.set_many(entries(100))
        assert redis_server.round_trips_since(reads) == 1

        reads = redis_server.requests_read()
        assert await cache.get_many(keys) == [f"value-{key}" for key in keys]
        assert redis_server.round_trips_since(reads) == 1

    calls = redis_server.command_calls()
    # Pipelined without a transaction: no MULTI/EXEC, one SET per entry, nothing else.
    assert calls == {"mget": 2, "set": 100, "ping": 1, **_handshake(calls)}
    assert (cache.hits, cache.misses, cache.writes) == (100, 100, 100)


def _handshake(calls: dict[str, int]) -> dict[str, int]:
    """What redis-py sends when it opens a connection (CLIENT SETINFO, HELLO...), by version."""
    return {name: count for name, count in calls.items() if name.startswith(("client|", "hello", "select"))}


async def test_set_many_before_any_read_fetches_the_generation_once(redis_server: RedisServer) -> None:
    async with open_cache(redis_server) as cache:
        await cache.set_many(entries(3))
        await cache.set_many(entries(5))  # the generation is known from now on
        assert await cache.get_many([0, 1, 2, 3, 4]) == [f"value-{key}" for key in range(5)]
    calls = redis_server.command_calls()
    assert (calls.get("get"), calls.get("set"), calls.get("mget")) == (1, 8, 1)


async def test_empty_calls_send_nothing(redis_server: RedisServer) -> None:
    async with open_cache(redis_server) as cache:
        assert await cache.get_many([]) == []
        await cache.set_many([])
        await cache.delete_many([])
    assert redis_server.command_calls() == {}


async def test_none_is_a_cached_value_not_a_miss(redis_server: RedisServer) -> None:
    async with open_cache(redis_server) as cache:
        await cache.set_many([("absent", None)])
        assert await cache.get_many(["absent", "other"]) == [None, MISS]


# ---------------------------------------------------------------- TTL


async def test_every_key_is_written_with_the_ttl(redis_server: RedisServer) -> None:
    async with open_cache(redis_server, ttl=100) as cache:
        await cache.set_many(entries(50))
    admin = redis_server.admin()
    ttls = [admin.pttl(f"{NAMESPACE}:i:{key}") for key in range(50)]
    assert all(0 < ttl <= 100_000 for ttl in ttls), ttls
    assert admin.ttl(f"{NAMESPACE}:") == -2  # no generation key until the first clear()


async def test_the_generation_never_expires(redis_server: RedisServer) -> None:
    async with open_cache(redis_server, ttl=100) as cache:
        await cache.clear()
    assert redis_server.admin().ttl(f"{NAMESPACE}:") == -1


async def test_ttl_jitter_shortens_ttls_within_the_fraction(redis_server: RedisServer) -> None:
    written = time.monotonic()
    async with open_cache(redis_server, ttl=100, ttl_jitter=0.5) as cache:
        await cache.set_many(entries(200))
    ttls = [redis_server.admin().pttl(f"{NAMESPACE}:i:{key}") for key in range(200)]
    # Measured after the reads: a TTL read late has lost the time those reads took too.
    elapsed_ms = math.ceil((time.monotonic() - written) * 1000)
    # Drawn from [50 s, 100 s]; time has passed since the write, never more than measured.
    assert all(50_000 - elapsed_ms - 1 <= ttl <= 100_000 for ttl in ttls), (min(ttls), max(ttls))
    assert len(set(ttls)) > 1  # jittered: 200 equal draws from a 50 000 ms range do not happen


async def test_ttl_accepts_a_timedelta_and_fractions_of_a_second(redis_server: RedisServer) -> None:
    async with open_cache(redis_server, ttl=datetime.timedelta(minutes=2)) as cache:
        assert cache.ttl == 120.0
        await cache.set_many([(1, "one")])
    assert 0 < redis_server.admin().pttl(f"{NAMESPACE}:i:1") <= 120_000


async def test_an_expired_entry_is_a_miss(redis_server: RedisServer) -> None:
    async with open_cache(redis_server, ttl=0.05) as cache:
        await cache.set_many([(1, "one")])
        admin = redis_server.admin()
        for _ in range(500):  # until Redis expired it (50 ms), bounded
            if not admin.exists(f"{NAMESPACE}:i:1"):
                break
            await asyncio.sleep(0.01)
        assert await cache.get_many([1]) == [MISS]


# ---------------------------------------------------------------- clear, generations, delete


async def test_clear_makes_every_entry_unreachable_without_scanning(redis_server: RedisServer) -> None:
    async with open_cache(redis_server) as cache, open_cache(redis_server) as other_process:
        await cache.set_many(entries(10))
        assert await other_process.get_many([0, 9]) == ["value-0", "value-9"]
        await cache.clear()
        assert await cache.get_many(list(range(10))) == [MISS] * 10
        assert await other_process.get_many([0, 9]) == [MISS, MISS]
        assert cache.stale == 10 and other_process.stale == 2
        await other_process.set_many([(0, "new")])
        assert await cache.get_many([0, 1]) == ["new", MISS]
    calls = redis_server.command_calls()
    assert calls["incrby"] == 1
    assert not {"scan", "keys", "del", "unlink", "flushdb", "flushall"} & set(calls), calls
    assert redis_server.admin().get(f"{NAMESPACE}:") == b"1"


async def test_a_value_read_before_a_clear_is_written_unreachable(redis_server: RedisServer) -> None:
    """A load that missed before clear() ends after it: its value must not become current."""
    async with open_cache(redis_server) as cache:
        assert await cache.get_many([1, 2]) == [MISS, MISS]  # batch A misses 1 and 2, loads them...
        await cache.clear()  # ...while the data changes and the cache is cleared...
        assert await cache.get_many([3]) == [MISS]  # ...and batch B reads under the new generation
        await cache.set_many([(1, "old"), (2, "old"), (3, "new")])  # A's old values, B's new one
        assert await cache.get_many([1, 2, 3]) == [MISS, MISS, "new"]


async def test_delete_many_removes_the_entries(redis_server: RedisServer) -> None:
    async with open_cache(redis_server) as cache:
        await cache.set_many(entries(3))
        await cache.delete_many([0, 2, 99])
        assert await cache.get_many([0, 1, 2]) == [MISS, "value-1", MISS]
    assert redis_server.command_calls()["del"] == 1
    assert redis_server.admin().exists(f"{NAMESPACE}:i:0", f"{NAMESPACE}:i:2") == 0


async def test_a_value_loading_while_its_key_is_deleted_is_not_written(redis_server: RedisServer) -> None:
    async with open_cache(redis_server) as cache:
        assert await cache.get_many([1, 2]) == [MISS, MISS]  # loads of 1 and 2 in flight
        await cache.delete_many([1])  # invalidate(1): the load of 1 read the old row
        await cache.set_many([(1, "old"), (2, "two")])
        assert await cache.get_many([1, 2]) == [MISS, "two"]
        await cache.set_many([(1, "fresh")])  # the next load of 1 is written again
        assert await cache.get_many([1]) == ["fresh"]


# ---------------------------------------------------------------- corrupt entries


@pytest.mark.parametrize(
    ("stored", "counter"),
    [
        ("garbage without a generation", "corrupt"),
        ("0:{not json", "corrupt"),
        ("0:", "corrupt"),
        ("", "corrupt"),
        ('0:"a","b"', "corrupt"),  # valid inside a JSON array: must not shift the neighbours' values
        ('7:"from another generation"', "stale"),
    ],
)
async def test_a_corrupt_entry_is_a_miss_and_the_next_write_replaces_it(
    redis_server: RedisServer, stored: str, counter: str
) -> None:
    async with open_cache(redis_server) as cache:
        await cache.set_many([(0, "zero"), (2, "two")])
        redis_server.cli("SET", f"{NAMESPACE}:i:1", stored)
        assert await cache.get_many([0, 1, 2, 3]) == ["zero", MISS, "two", MISS]
        assert getattr(cache, counter) == 1 and cache.failures == 0
        assert (cache.hits, cache.misses) == (2, 2)
        await cache.set_many([(1, "one")])
        assert await cache.get_many([0, 1, 2]) == ["zero", "one", "two"]
    assert redis_server.cli("GET", f"{NAMESPACE}:i:1") == '0:"one"'


async def test_a_corrupt_generation_makes_every_key_a_miss(redis_server: RedisServer) -> None:
    async with open_cache(redis_server) as cache:
        await cache.set_many([(1, "one")])
        redis_server.cli("SET", f"{NAMESPACE}:", "not a number")
        assert await cache.get_many([1]) == [MISS]
        assert cache.failures == 1


# ---------------------------------------------------------------- Redis in trouble


async def test_a_paused_server_gives_misses_within_the_timeout(redis_server: RedisServer) -> None:
    async with open_cache(redis_server, timeout=0.05) as cache:
        await cache.set_many(entries(5))
        redis_server.pause()
        try:
            async with asyncio.timeout(10):  # a hang guard, far above the 50 ms timeout
                assert await cache.get_many(list(range(5))) == [MISS] * 5
                await cache.set_many([(9, "late")])  # returns; whether it lands after SIGCONT is open
        finally:
            redis_server.resume()
        assert (cache.failures, cache.timeouts, cache.writes) == (2, 2, 5)
        # The timed-out commands' connections were dropped; the next ones are answered right.
        assert await cache.get_many(list(range(5))) == [f"value-{key}" for key in range(5)]
        assert await cache.get_many([9]) in ([MISS], ["late"])


async def test_the_clients_own_socket_timeout_counts_as_a_timeout(redis_server: RedisServer) -> None:
    async with open_cache(redis_server, client_options={"socket_timeout": 0.05}, timeout=None) as cache:
        await cache.client.ping()
        redis_server.pause()
        try:
            async with asyncio.timeout(10):
                assert await cache.get_many([1]) == [MISS]
        finally:
            redis_server.resume()
        assert (cache.failures, cache.timeouts) == (1, 1)


async def test_a_killed_server_gives_misses_then_is_skipped(redis_server: RedisServer) -> None:
    async with open_cache(redis_server, failure_threshold=2, cooldown=3600) as cache:
        await cache.set_many(entries(2))
        redis_server.kill()
        async with asyncio.timeout(10):
            assert await cache.get_many([0, 1]) == [MISS, MISS]
            assert not cache.skipping
            assert await cache.get_many([0, 1]) == [MISS, MISS]
            assert cache.skipping and cache.consecutive_failures == 2
        assert cache.failures == 2
        redis_server.start()  # Redis is back, but the cache does not look for an hour
        assert await cache.get_many([0]) == [MISS]
        await cache.set_many([(0, "skipped")])
        assert cache.skipped == 2 and cache.failures == 2
        assert redis_server.command_calls() == {}


async def test_after_the_cooldown_redis_is_used_again(redis_server: RedisServer) -> None:
    async with open_cache(redis_server, failure_threshold=1, cooldown=0.05) as cache:
        await cache.client.ping()
        redis_server.kill()
        assert await cache.get_many([1]) == [MISS]
        assert cache.failures == 1 and cache.consecutive_failures == 1  # skipping, for 50 ms
        redis_server.start()
        for _ in range(1000):  # bounded wait for the 50 ms cooldown
            if not cache.skipping:
                break
            await asyncio.sleep(0.01)
        await cache.set_many([(1, "one")])  # the probe: it reaches the restarted server
        assert await cache.get_many([1]) == ["one"]
        assert not cache.skipping and cache.consecutive_failures == 0


async def test_delete_and_clear_raise_when_redis_fails(redis_server: RedisServer) -> None:
    import redis.exceptions

    async with open_cache(redis_server) as cache:
        await cache.client.ping()
        redis_server.pause()
        try:
            with pytest.raises(TimeoutError):
                await cache.delete_many([1])
            with pytest.raises(TimeoutError):
                await cache.clear()
        finally:
            redis_server.resume()
        redis_server.kill()
        with pytest.raises((redis.exceptions.ConnectionError, TimeoutError)):
            await cache.delete_many([1])
        with pytest.raises((redis.exceptions.ConnectionError, TimeoutError)):
            await cache.clear()
        assert cache.failures == 4 and cache.timeouts >= 2


async def test_failures_are_logged_at_a_limited_rate(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dloader.redis")
    async with open_cache(redis_server, failure_threshold=1000) as cache:
        redis_server.kill()
        for _ in range(20):
            assert await cache.get_many([1]) == [MISS]
    records = [record for record in caplog.records if record.name == "dloader.redis"]
    assert cache.failures == 20
    assert len(records) == 1 and "get_many" in records[0].getMessage()


async def test_skipping_is_logged_once_when_it_starts_and_when_it_ends(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dloader.redis")
    async with open_cache(redis_server, failure_threshold=3, cooldown=0) as cache:
        await cache.client.ping()
        redis_server.kill()
        for _ in range(3):
            await cache.get_many([1])
        redis_server.start()
        assert await cache.get_many([1]) == [MISS]  # the probe succeeds: a real miss
    messages = [record.getMessage() for record in caplog.records if record.name == "dloader.redis"]
    assert len(messages) == 3, messages  # the first failure, skipping starts, Redis answers again
    assert "skipping Redis" in messages[1] and "answers again" in messages[2]


# ---------------------------------------------------------------- cancellation mid-command


async def test_cancelling_a_command_in_flight_leaves_the_pool_usable(redis_server: RedisServer) -> None:
    """The CVE-2023-28858 class: a cancelled MGET's reply must never reach the next command."""
    if not redis_server.can_count_unread_requests():
        pytest.skip("needs Linux's /proc/net/tcp to see that the commands reached the server")
    async with open_cache(redis_server, timeout=None) as cache:
        await cache.set_many([(key, f"value-{key}") for key in range(20)])
        # Eleven open connections, so that every command below is sent at once (a new
        # connection would wait for its handshake instead, and never send the command).
        await asyncio.gather(*(cache.client.ping() for _ in range(11)))
        redis_server.admin().config_resetstat()
        redis_server.pause()
        try:
            waiting = [asyncio.create_task(cache.get_many([key, key + 1])) for key in range(0, 20, 2)]
            writing = asyncio.create_task(cache.set_many([(100, "written")]))
            # Until the eleven commands sit unread in the server's sockets (at least: connections
            # other tests left open on the shared server may hold unread bytes too).
            for _ in range(1000):
                if redis_server.connections_with_unread_requests() >= 11:
                    break
                await asyncio.sleep(0.01)
            assert redis_server.connections_with_unread_requests() >= 11
            for task in [*waiting, writing]:
                task.cancel()
            for task in [*waiting, writing]:
                with pytest.raises(asyncio.CancelledError):
                    await task
        finally:
            redis_server.resume()
        # Every later command on the same pool gets its own reply, not a cancelled one's.
        for first in range(19):
            keys = [first + 1, first]
            assert await cache.get_many(keys) == [f"value-{first + 1}", f"value-{first}"]
        await cache.set_many([(101, "after")])
        assert await cache.get_many([101]) == ["after"]
        assert cache.failures == 0
    # The cancelled commands had been sent: the server ran them after SIGCONT.
    calls = redis_server.command_calls()
    assert (calls["mget"], calls["set"]) == (10 + 19 + 1, 1 + 1)


# ---------------------------------------------------------------- codecs


@dataclasses.dataclass(frozen=True)
class Book:
    title: str
    published: datetime.date


TYPICAL_VALUES = [
    None,
    True,
    0,
    -(2**70),
    3.25,
    "",
    "plain",
    "unicode: é ☃ 😀",
    [],
    [1, "two", None, [3.5]],
    {},
    {"id": 7, "name": "ada", "tags": ["a", "b"], "address": {"city": "Paris", "zip": None}},
]


async def test_json_round_trips_typical_values(redis_server: RedisServer) -> None:
    async with open_cache(redis_server) as cache:
        await cache.set_many(list(enumerate(TYPICAL_VALUES)))
        assert await cache.get_many(list(range(len(TYPICAL_VALUES)))) == TYPICAL_VALUES


async def test_json_refuses_what_it_cannot_represent_and_writes_the_rest(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dloader.redis")
    async with open_cache(redis_server) as cache:
        await cache.set_many([(1, {1, 2}), (2, object()), (3, math.nan), (4, "fine")])
        assert await cache.get_many([1, 2, 3, 4]) == [MISS, MISS, MISS, "fine"]
        assert cache.encode_errors == 3 and cache.failures == 0
    assert redis_server.command_calls()["set"] == 1


def test_json_turns_tuples_into_lists_and_dict_keys_into_strings() -> None:
    codec = JsonCodec()
    assert codec.decode(codec.encode((1, 2))) == [1, 2]
    assert codec.decode(codec.encode({1: "a"})) == {"1": "a"}
    assert codec.encode({"a": [1, None]}) == b'{"a":[1,null]}'


def test_pickle_needs_an_explicit_opt_in() -> None:
    with pytest.raises(ValueError, match="executes code"):
        PickleCodec()
    with pytest.raises(ValueError, match="executes code"):
        PickleCodec(i_understand_this_executes_code=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="protocol"):
        PickleCodec(i_understand_this_executes_code=True, protocol=99)
    assert "Unpickling runs code" in (PickleCodec.__doc__ or "")


async def test_pickle_round_trips_what_json_cannot(redis_server: RedisServer) -> None:
    values = [Book("Dune", datetime.date(1965, 8, 1)), (1, 2), {1: "a"}, {"set"}, b"\x00bytes"]
    codec = PickleCodec(i_understand_this_executes_code=True)
    async with open_cache(redis_server, codec=codec) as cache:
        await cache.set_many(list(enumerate(values)))
        assert await cache.get_many(list(range(len(values)))) == values


class Latin1Codec:
    """A custom codec: strings only, stored as Latin-1 with a marker byte."""

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise TypeError("strings only")
        return b"L" + value.encode("latin-1")

    def decode(self, data: bytes) -> Any:
        if not data.startswith(b"L"):
            raise ValueError("not ours")
        return data[1:].decode("latin-1")


async def test_a_custom_codec_is_used_for_both_directions(redis_server: RedisServer) -> None:
    assert isinstance(Latin1Codec(), Codec)
    async with open_cache(redis_server, codec=Latin1Codec()) as cache:
        await cache.set_many([(1, "café"), (2, 42)])
        assert await cache.get_many([1, 2]) == ["café", MISS]
        assert cache.encode_errors == 1
    assert redis_server.admin().get(f"{NAMESPACE}:i:1") == b"0:L" + "café".encode("latin-1")


async def test_a_codec_returning_text_is_an_encode_error(redis_server: RedisServer) -> None:
    class TextCodec(JsonCodec):
        def encode(self, value: Any) -> bytes:
            return "text"  # type: ignore[return-value]

    async with open_cache(redis_server, codec=TextCodec()) as cache:
        await cache.set_many([(1, "one")])
        assert cache.encode_errors == 1 and cache.writes == 0


# ---------------------------------------------------------------- keys


class Color(enum.IntEnum):
    RED = 1


TRICKY_KEYS: list[Any] = [
    1,
    "1",
    1.0,
    True,
    False,
    0,
    b"1",
    None,
    "n",
    "",
    "i:1",
    -0.0,
    0.0,
    math.inf,
    (),
    (1,),
    ("1",),
    (1, 2),
    ((1,), 2),
    (1, (2,)),
    ("a:b",),
    ("a", "b"),
    ("1:s:a",),
    ("", ""),
    ("",),
    uuid.UUID(int=1),
    str(uuid.UUID(int=1)),
]


def _typed(key: Any) -> Any:
    """The key with its type: equal for exactly the keys that must share an entry."""
    if isinstance(key, tuple):
        return ("tuple", tuple(_typed(item) for item in key))
    base = next(kind for kind in (bool, int, float, str, bytes, uuid.UUID, type(None)) if isinstance(key, kind))
    return (base.__name__, repr(key) if base is float else key)


def test_the_default_key_to_str_is_injective_on_tricky_keys() -> None:
    texts = {default_key_to_str(key): _typed(key) for key in TRICKY_KEYS}
    assert len(texts) == len(TRICKY_KEYS)
    assert default_key_to_str(1) == "i:1" and default_key_to_str("1") == "s:1"
    assert default_key_to_str(Color.RED) == default_key_to_str(1)  # an IntEnum is its int, as in a dict


_key_strategy = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.binary() | st.floats(allow_nan=False),
    lambda children: st.tuples(children) | st.tuples(children, children) | st.lists(children).map(tuple),
    max_leaves=8,
)


@given(st.lists(_key_strategy, max_size=12))
def test_the_default_key_to_str_never_maps_two_keys_to_one_string(keys: list[Any]) -> None:
    seen: dict[str, Any] = {}
    for key in keys:
        text = default_key_to_str(key)
        assert seen.setdefault(text, _typed(key)) == _typed(key), (text, key)


@pytest.mark.parametrize("key", [object(), [1], {"a": 1}, frozenset(), (1, [2]), Book("x", datetime.date.min)])
def test_the_default_key_to_str_refuses_other_types_clearly(key: Any) -> None:
    with pytest.raises(TypeError, match="key_to_str="):
        default_key_to_str(key)


async def test_an_unencodable_key_raises_type_error_not_a_miss(redis_server: RedisServer) -> None:
    async with open_cache(redis_server) as cache:
        with pytest.raises(TypeError, match="key_to_str"):
            await cache.get_many([1, object()])
        with pytest.raises(TypeError, match="key_to_str"):
            await cache.set_many([([1], "value")])
        assert cache.failures == 0
    assert redis_server.command_calls() == {}


async def test_a_custom_key_to_str_names_the_redis_keys(redis_server: RedisServer) -> None:
    async with open_cache(redis_server, namespace="books:v2", key_to_str=lambda book: book.title) as cache:
        await cache.set_many([(Book("Dune", datetime.date.min), "cached")])
        assert cache.redis_key(Book("Dune", datetime.date.max)) == "books:v2:Dune"
        assert await cache.get_many([Book("Dune", datetime.date.max)]) == ["cached"]
        with pytest.raises(TypeError, match="non-empty str"):
            await cache.get_many([Book("", datetime.date.min)])
    assert redis_server.admin().exists("books:v2:Dune") == 1


# ---------------------------------------------------------------- construction


async def test_construction_validates_every_option(redis_server: RedisServer) -> None:
    client = redis_asyncio.Redis.from_url(redis_server.url)
    try:
        with pytest.raises(TypeError, match="ttl is required"):
            RedisValueCache(client, namespace="n")
        for ttl in (0, -1, 0.0001, math.inf, math.nan):
            with pytest.raises(ValueError, match="ttl"):
                RedisValueCache(client, namespace="n", ttl=ttl)
        with pytest.raises(TypeError, match="ttl"):
            RedisValueCache(client, namespace="n", ttl="60")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="namespace"):
            RedisValueCache(client, namespace="", ttl=1)
        for jitter in (1, -0.1, True):
            with pytest.raises(ValueError, match="ttl_jitter"):
                RedisValueCache(client, namespace="n", ttl=1, ttl_jitter=jitter)
        for timeout in (0, -1, math.inf):
            with pytest.raises(ValueError, match="timeout"):
                RedisValueCache(client, namespace="n", ttl=1, timeout=timeout)
        with pytest.raises(TypeError, match="codec"):
            RedisValueCache(client, namespace="n", ttl=1, codec=json_module_is_not_a_codec)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="key_to_str"):
            RedisValueCache(client, namespace="n", ttl=1, key_to_str="str")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="failure_threshold"):
            RedisValueCache(client, namespace="n", ttl=1, failure_threshold=0)
        with pytest.raises(ValueError, match="cooldown"):
            RedisValueCache(client, namespace="n", ttl=1, cooldown=-1)
        with pytest.raises(TypeError, match=r"redis\.asyncio\.Redis"):
            RedisValueCache(object(), namespace="n", ttl=1)  # type: ignore[arg-type]
    finally:
        await client.aclose()
    decoding = redis_asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses=False"):
            RedisValueCache(decoding, namespace="n", ttl=1)
    finally:
        await decoding.aclose()


json_module_is_not_a_codec = object()


async def test_it_implements_the_value_cache_protocol(redis_server: RedisServer) -> None:
    async with open_cache(redis_server, timeout=0.2) as cache:
        assert isinstance(cache, ValueCache)
        assert cache.timeout == 0.2
        assert repr(cache).startswith("<RedisValueCache namespace='test' ttl=300 active")
    assert repr(MISS) == "<MISS>"

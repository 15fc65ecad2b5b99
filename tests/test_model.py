"""Random programs of loads, load_many, prime, clear and cancellations, checked against a model.

A program runs in rounds. In each round callers request keys (some cancel at
once), the test waits until every batch is running (load_fn is held at a
gate), then primes, clears and cancels while the keys are in flight (a batch
nobody waits for any more is cancelled), and finally releases every other batch
with values, per-key exceptions or a whole-batch failure. The model predicts
exactly which keys are fetched, what every caller gets, and what the cache holds
afterwards.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

KEYS = st.integers(0, 5)

MODEL_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Batch:
    index: int
    keys: list[Any]
    gate: asyncio.Future[Any]
    outcomes: dict[Any, Any] = field(default_factory=dict)  # key -> value or exception
    error: BaseException | None = None


@dataclass
class Request:
    keys: list[Any]
    many: bool
    return_exceptions: bool
    future: asyncio.Future[Any]
    cached: dict[int, Any]  # position -> value served from the cache
    cancelled: bool = False


class Program:
    def __init__(self, loader_cls: type, data: Any, max_batch_size: int | None, cache: bool) -> None:
        self.data = data
        self.max_batch_size = max_batch_size
        self.cache = cache
        self.batches: list[Batch] = []
        self.model_cache: dict[Any, Any] = {}
        self.primes = 0
        self.requests: list[Request] = []
        self.loader = loader_cls(self.load_fn, max_batch_size=max_batch_size, cache=cache, name="model")

    async def load_fn(self, keys: list[Any]) -> Any:
        batch = Batch(len(self.batches), list(keys), asyncio.get_running_loop().create_future())
        self.batches.append(batch)
        kind, payload = await batch.gate
        if kind == "raise":
            raise payload
        return payload

    def draw(self, strategy: Any, label: str) -> Any:
        return self.data.draw(strategy, label=label)

    # ------------------------------------------------------------ mutations with their model

    def mutate(self, label: str, in_flight: set[Any], detached: set[Any]) -> None:
        for operation in self.draw(st.lists(st.sampled_from(["prime", "clear", "clear_all"]), max_size=3), label):
            if operation == "clear_all":
                self.loader.clear_all()
                self.model_cache.clear()
                detached |= in_flight
                continue
            key = self.draw(KEYS, f"{operation} key")
            if operation == "prime":
                self.primes += 1
                value = f"{key}:primed{self.primes}"
                self.loader.prime(key, value)
                self.model_cache[key] = value
            else:
                self.loader.clear(key)
                self.model_cache.pop(key, None)
            if key in in_flight:
                detached.add(key)

    # ------------------------------------------------------------ one round

    async def round(self, number: int) -> None:
        requests: list[Request] = []
        live: dict[Any, None] = {}  # keys this round must fetch, in first live request order
        self.mutate("idle mutations", set(), set())
        first_batch = len(self.batches)

        for _request in range(self.draw(st.integers(1, 7), "requests")):
            for _ in range(self.draw(st.integers(0, 2), "yields")):
                await asyncio.sleep(0)
            if self.draw(st.booleans(), "many?"):
                keys = self.draw(st.lists(KEYS, max_size=4), "many keys")
                return_exceptions = self.draw(st.booleans(), "return_exceptions")
                future = self.loader.load_many(keys, return_exceptions=return_exceptions)
                request = Request(keys, True, return_exceptions, future, {})
            else:
                key = self.draw(KEYS, "key")
                request = Request([key], False, False, self.loader.load(key), {})
                # Cancelled at once: certainly before any dispatch can see it.
                if self.draw(st.integers(0, 3), "cancel now?") == 0:
                    # A cache hit is already done: cancel() then does nothing.
                    request.cancelled = request.future.cancel()
            for position, key in enumerate(request.keys):
                if self.cache and key in self.model_cache:
                    request.cached[position] = self.model_cache[key]
                elif not request.cancelled:
                    live[key] = None
            requests.append(request)
            self.requests.append(request)

        # Every key with a live, uncached request is fetched exactly once; nothing else is.
        expected = set(live)
        for _ in range(200):
            if {key for batch in self.batches[first_batch:] for key in batch.keys} >= expected:
                break
            await asyncio.sleep(0)
        for _ in range(12):
            await asyncio.sleep(0)
        batches = self.batches[first_batch:]
        fetched = [key for batch in batches for key in batch.keys]
        assert sorted(fetched) == sorted(expected), f"round {number}: fetched {fetched}, expected {sorted(expected)}"
        for batch in batches:
            assert batch.keys, "load_fn called with no keys"
            if self.max_batch_size is not None:
                assert len(batch.keys) <= self.max_batch_size, batch.keys
        if not any(request.cancelled for request in requests):
            # Without early cancellations the order of the keys is the order of first request.
            assert fetched == list(live)

        # While every batch runs: prime, clear and cancel.
        in_flight = set(fetched)
        detached: set[Any] = set()
        self.mutate("in-flight mutations", in_flight, detached)
        for request in requests:
            if not request.future.done() and self.draw(st.integers(0, 4), "cancel in flight?") == 0:
                request.future.cancel()
                request.cancelled = True

        # A batch that no live request waits for any more is cancelled (its load_fn sees
        # CancelledError at the gate); every other batch keeps running.
        for _ in range(4):
            await asyncio.sleep(0)
        for batch in batches:
            wanted = any(
                not request.cancelled
                and any(
                    key in batch.keys and position not in request.cached for position, key in enumerate(request.keys)
                )
                for request in requests
            )
            assert batch.gate.cancelled() == (not wanted), f"round {number}: batch {batch.keys}, wanted={wanted}"

        # Release every batch.
        for batch in batches:
            if batch.gate.cancelled():
                batch.error = asyncio.CancelledError()
                continue
            if self.draw(st.integers(0, 5), "batch fails?") == 0:
                batch.error = ValueError(f"batch {batch.index} failed")
                batch.gate.set_result(("raise", batch.error))
                continue
            results = []
            for key in batch.keys:
                if self.draw(st.integers(0, 4), "key fails?") == 0:
                    result: Any = LookupError(f"{key} failed in batch {batch.index}")
                else:
                    result = f"{key}:batch{batch.index}"
                batch.outcomes[key] = result
                results.append(result)
            batch.gate.set_result(("return", results))
        futures = [request.future for request in requests]
        for _ in range(200):
            if all(future.done() for future in futures):
                break
            await asyncio.sleep(0)
        assert all(future.done() for future in futures), "a caller was left pending"
        for _ in range(3):  # let detached fetches and cache writes settle
            await asyncio.sleep(0)

        outcome_of: dict[Any, Any] = {}
        for batch in batches:
            for key in batch.keys:
                outcome_of[key] = batch.error if batch.error is not None else batch.outcomes[key]
        for request in requests:
            self.check(request, outcome_of)

        # The cache: successful, attached fetches were stored.
        if self.cache:
            for key, result in outcome_of.items():
                if key not in detached and not isinstance(result, BaseException):
                    self.model_cache[key] = result
        assert dict(self.loader.cache_map) == self.model_cache
        assert repr(self.loader).endswith("queued=0 in_flight=0>"), repr(self.loader)

    def check(self, request: Request, outcome_of: dict[Any, Any]) -> None:
        future = request.future
        if request.cancelled:
            assert future.cancelled()
            return
        assert not future.cancelled(), request
        expected = [
            request.cached[position] if position in request.cached else outcome_of[key]
            for position, key in enumerate(request.keys)
        ]
        failures = [result for result in expected if isinstance(result, BaseException)]
        if not request.many:
            if failures:
                assert future.exception() is failures[0]
            else:
                assert future.result() == expected[0]
        elif request.return_exceptions or not failures:
            result = future.result()
            assert len(result) == len(expected)
            for got, want in zip(result, expected):
                if isinstance(want, BaseException):
                    assert got is want
                else:
                    assert got == want
        else:
            assert any(future.exception() is failure for failure in failures)

    async def run(self) -> None:
        try:
            for number in range(self.draw(st.integers(1, 4), "rounds")):
                await self.round(number)
            assert await self.loader.shutdown() is None
        finally:
            # Hypothesis may abort an example mid-draw: leave nothing pending or unretrieved.
            await self.cleanup()

    async def cleanup(self) -> None:
        for batch in self.batches:
            if not batch.gate.done():
                batch.gate.set_result(("raise", ValueError("example aborted")))
        for _ in range(5):
            await asyncio.sleep(0)
        await self.loader.shutdown()
        for request in self.requests:
            if not request.future.cancel() and not request.future.cancelled():
                request.future.exception()


@MODEL_SETTINGS
@given(data=st.data(), max_batch_size=st.one_of(st.none(), st.integers(1, 3)), cache=st.booleans())
def test_random_programs_match_the_model(
    loader_cls: type, loop_factory: Any, data: Any, max_batch_size: int | None, cache: bool
) -> None:
    program = Program(loader_cls, data, max_batch_size, cache)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(program.run())

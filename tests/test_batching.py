"""Batching, key order, adaptive dispatch and max_batch_size.

The contract: README, Semantics: Batching.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest


async def after_yields(loader: Any, key: Any, yields: int) -> Any:
    for _ in range(yields):
        await asyncio.sleep(0)
    return await loader.load(key)


# ---------------------------------------------------------------- one batch, in order, once per key


async def test_concurrent_loads_make_one_batch(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    values = await asyncio.gather(*(loader.load(key) for key in range(10)))
    assert values == [f"value-of-{key}" for key in range(10)]
    assert recorder.batches == [list(range(10))]


async def test_keys_in_first_request_order_each_once(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder, cache=False)
    keys = ["b", "a", "b", "c", "a", "b"]
    values = await asyncio.gather(*(loader.load(key) for key in keys))
    assert values == [f"value-of-{key!r}" for key in keys]
    assert recorder.batches == [["b", "a", "c"]]


async def test_equal_keys_are_one_key(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    # 1, 1.0 and True are equal and hash alike: one dict key.
    await asyncio.gather(loader.load(1), loader.load(1.0), loader.load(True), loader.load((1, 2)), loader.load((1, 2)))
    assert recorder.batches == [[1, (1, 2)]]


async def test_sequential_awaits_make_one_batch_each(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    for key in range(4):
        assert await loader.load(key) == f"value-of-{key}"
    assert recorder.batches == [[0], [1], [2], [3]]


async def test_load_many_and_load_share_a_batch(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    one = loader.load(1)
    many = loader.load_many([2, 1, 3])
    four = loader.load(4)
    assert await asyncio.gather(one, many, four) == [
        "value-of-1",
        ["value-of-2", "value-of-1", "value-of-3"],
        "value-of-4",
    ]
    assert recorder.batches == [[1, 2, 3, 4]]


# ---------------------------------------------------------------- adaptive dispatch


async def test_lone_load_is_dispatched_within_two_iterations(loader_cls: type, iteration_counter: Any) -> None:
    seen_at: list[int] = []

    async def fetch(keys: list[int]) -> list[int]:
        seen_at.append(counter.count)
        return keys

    loader = loader_cls(fetch)
    counter = iteration_counter().start()
    try:
        assert await loader.load(1) == 1
    finally:
        counter.stop()
    assert seen_at and seen_at[0] <= 2, f"load_fn called after {seen_at[0]} loop iterations"


async def test_lone_load_answer_within_three_iterations(loader_cls: type, iteration_counter: Any) -> None:
    async def fetch(keys: list[int]) -> list[int]:
        return keys

    loader = loader_cls(fetch)
    counter = iteration_counter().start()
    try:
        await loader.load(1)
        elapsed = counter.count
    finally:
        counter.stop()
    assert elapsed <= 3, f"a lone load took {elapsed} loop iterations"


@pytest.mark.parametrize("yields", list(itertools.permutations([0, 1, 2])), ids=str)
async def test_tasks_yielding_up_to_twice_share_one_batch(
    loader_cls: type, make_recorder: Any, yields: tuple[int, ...]
) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    keys = [f"k{count}" for count in yields]
    values = await asyncio.gather(*(after_yields(loader, key, count) for key, count in zip(keys, yields)))
    assert values == [f"value-of-{key!r}" for key in keys]
    assert len(recorder.batches) == 1, recorder.batches
    # Keys arrive in the order of their requests in time, not of the gather.
    assert recorder.batches[0] == sorted(keys, key=lambda key: int(key[1:]))


async def test_many_tasks_with_mixed_yields_share_one_batch(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    yields = [2, 0, 1, 1, 0, 2, 2, 1, 0] * 3
    await asyncio.gather(*(after_yields(loader, index, count) for index, count in enumerate(yields)))
    assert len(recorder.batches) == 1
    assert sorted(recorder.batches[0]) == list(range(len(yields)))


async def test_yielding_tasks_share_a_batch_with_a_cache_hit_first(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    loader.prime("cached", "from cache")
    results = await asyncio.gather(
        after_yields(loader, "cached", 0), after_yields(loader, "a", 1), after_yields(loader, "b", 2)
    )
    assert results == ["from cache", "value-of-'a'", "value-of-'b'"]
    assert recorder.batches == [["a", "b"]]


async def test_dispatch_is_bounded_under_a_stream_of_loads(loader_cls: type, make_recorder: Any) -> None:
    progress = {"requested": 0}
    seen_at: list[int] = []

    async def fetch(keys: list[int]) -> list[int]:
        seen_at.append(progress["requested"])
        return keys

    loader = loader_cls(fetch)
    futures = []
    for key in range(40):
        futures.append(loader.load(key))
        progress["requested"] = key + 1
        await asyncio.sleep(0)
    assert await asyncio.gather(*futures) == list(range(40))
    # A new key every iteration: the dispatch still goes out after a bounded wait.
    assert seen_at, "load_fn never called"
    assert seen_at[0] <= 12, f"first batch waited for {seen_at[0]} keys"
    assert len(seen_at) >= 3


async def test_keys_requested_while_a_batch_runs_go_to_a_later_batch(
    loader_cls: type, make_recorder: Any, spin: Any
) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder)
    first = [loader.load(1), loader.load(2)]
    await spin(lambda: recorder.calls == 1)
    second = [loader.load(3), loader.load(1)]  # 1 is in flight: joined, not requested again
    await spin(lambda: recorder.calls == 2)
    assert recorder.batches == [[1, 2], [3]]
    recorder.release(1)
    assert await second[0] == "value-of-3"
    assert not second[1].done()
    recorder.release(0)
    assert await asyncio.gather(*first, second[1]) == ["value-of-1", "value-of-2", "value-of-1"]


async def test_batches_do_not_wait_for_each_other(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder)
    slow = loader.load("slow")
    await spin(lambda: recorder.calls == 1)
    fast = loader.load("fast")
    await spin(lambda: recorder.calls == 2)
    recorder.release(1)
    assert await fast == "value-of-'fast'"
    assert not slow.done()
    recorder.release(0)
    assert await slow == "value-of-'slow'"


# ---------------------------------------------------------------- max_batch_size


@pytest.mark.parametrize(
    ("size", "count", "expected"),
    [
        (3, 7, [[0, 1, 2], [3, 4, 5], [6]]),
        (3, 6, [[0, 1, 2], [3, 4, 5]]),
        (1, 3, [[0], [1], [2]]),
        (5, 2, [[0, 1]]),
        (2, 2, [[0, 1]]),
    ],
)
async def test_max_batch_size_splits_in_order(
    loader_cls: type, make_recorder: Any, size: int, count: int, expected: list[list[int]]
) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder, max_batch_size=size)
    values = await asyncio.gather(*(loader.load(key) for key in range(count)))
    assert values == [f"value-of-{key}" for key in range(count)]
    assert recorder.batches == expected


async def test_max_batch_size_counts_distinct_keys(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder, max_batch_size=2)
    await asyncio.gather(*(loader.load(key) for key in [0, 0, 1, 1, 2, 0]))
    assert recorder.batches == [[0, 1], [2]]


async def test_max_batch_size_with_load_many(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder, max_batch_size=4)
    assert await loader.load_many(range(10)) == [f"value-of-{key}" for key in range(10)]
    assert recorder.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


async def test_split_batches_run_concurrently(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder, max_batch_size=2)
    futures = [loader.load(key) for key in range(5)]
    # Every split batch is running before any of them finishes.
    await spin(lambda: recorder.calls == 3)
    assert recorder.batches == [[0, 1], [2, 3], [4]]
    for index in (2, 0, 1):
        recorder.release(index)
    assert await asyncio.gather(*futures) == [f"value-of-{key}" for key in range(5)]


async def test_max_batch_size_under_a_stream_of_yielding_tasks(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder, max_batch_size=3)
    await asyncio.gather(*(after_yields(loader, key, key % 3) for key in range(20)))
    assert all(1 <= len(batch) <= 3 for batch in recorder.batches)
    assert sorted(recorder.keys) == list(range(20))


# ---------------------------------------------------------------- round trips in a resolver tree


async def test_nested_resolvers_make_one_call_per_level(loader_cls: type, make_recorder: Any) -> None:
    """A GraphQL-like tree: every resolver may await something else before calling load."""
    users = make_recorder(lambda key: {"id": key, "friends": [key * 10 + offset for offset in range(3)]})
    posts = make_recorder(lambda key: {"id": key, "author": key % 7})
    user_loader = loader_cls(users, name="users")
    post_loader = loader_cls(posts, name="posts")

    async def unrelated_await(depth: int) -> None:
        for _ in range(depth):
            await asyncio.sleep(0)

    async def resolve_post(post_id: int) -> Any:
        await unrelated_await(post_id % 3)
        post = await post_loader.load(post_id)
        await unrelated_await((post_id + 1) % 3)
        author = await user_loader.load(post["author"] + 1000)
        return post["id"], author["id"]

    async def resolve_friend(friend_id: int) -> Any:
        await unrelated_await(friend_id % 3)
        friend = await user_loader.load(friend_id)
        return friend["id"], await asyncio.gather(*(resolve_post(post_id) for post_id in friend["friends"][:2]))

    async def resolve_user(user_id: int) -> Any:
        await unrelated_await(user_id % 2)
        user = await user_loader.load(user_id)
        return await asyncio.gather(*(resolve_friend(friend_id) for friend_id in user["friends"]))

    result = await asyncio.gather(*(resolve_user(user_id) for user_id in range(1, 5)))
    assert len(result) == 4
    # Level 1: users 1-4; level 2: their friends; level 3: posts; level 4: post authors.
    assert len(users.batches) == 3, users.batches
    assert len(posts.batches) == 1, posts.batches


async def test_a_task_factory_set_by_the_application_starts_the_batches(loader_cls: type) -> None:
    """Batches honour loop.set_task_factory (tracing libraries install one)."""
    loop = asyncio.get_running_loop()
    made: list[asyncio.Task[Any]] = []

    def factory(loop: asyncio.AbstractEventLoop, coroutine: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coroutine, loop=loop, **kwargs)
        made.append(task)
        return task

    async def double(keys: list[int]) -> list[int]:
        return [key * 2 for key in keys]

    loop.set_task_factory(factory)
    try:
        loader = loader_cls(double, name="factoried")
        assert await asyncio.gather(loader.load(1), loader.load(2)) == [2, 4]
    finally:
        loop.set_task_factory(None)
    assert [task.get_name() for task in made] == ["dloader:factoried:batch-1"]

"""Issue 9 items 5 and 8: public attributes are validated when assigned (as in the constructor), huge
max_batch_size values work, and copy/deepcopy/pickle are refused, identically in both twins."""

from __future__ import annotations

import asyncio
import copy
import pickle
from typing import Any

import pytest
from conftest import SETTLE_LIMIT, Recorder, assert_idle, settle


async def fetch(keys: list[Any]) -> list[Any]:
    return [f"value-of-{key!r}" for key in keys]


async def fetch_upper(keys: list[Any]) -> list[Any]:
    return [str(key).upper() for key in keys]


BAD_ASSIGNMENTS = [
    ("max_batch_size", 0, ValueError),
    ("max_batch_size", -1, ValueError),
    ("max_batch_size", 2.5, TypeError),
    ("max_batch_size", "3", TypeError),
    ("max_batch_size", True, TypeError),
    ("load_fn", 3, TypeError),
    ("cache", "yes", TypeError),
    ("cache_map", [], TypeError),
    ("cache_key_fn", 5, TypeError),
    ("name", 5, TypeError),
]
BAD_IDS = [f"{attribute}={value!r}" for attribute, value, _ in BAD_ASSIGNMENTS]


@pytest.mark.parametrize(("attribute", "value", "error"), BAD_ASSIGNMENTS, ids=BAD_IDS)
def test_bad_assignment_is_refused_and_changes_nothing(
    loader_cls: type, attribute: str, value: Any, error: type[Exception]
) -> None:
    loader = loader_cls(fetch, max_batch_size=3, name="users")
    before = getattr(loader, attribute)
    with pytest.raises(error) as info:
        setattr(loader, attribute, value)
    assert attribute in str(info.value)
    assert getattr(loader, attribute) is before


@pytest.mark.parametrize(("attribute", "value", "error"), BAD_ASSIGNMENTS, ids=BAD_IDS)
def test_bad_assignment_errors_are_the_same_in_both_twins(
    compiled_cls: type, python_cls: type, attribute: str, value: Any, error: type[Exception]
) -> None:
    outcomes = []
    for cls in (compiled_cls, python_cls):
        loader = cls(fetch, max_batch_size=3, name="users")
        with pytest.raises(error) as info:
            setattr(loader, attribute, value)
        outcomes.append((type(info.value), str(info.value)))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("size", [5, 2**63, 2**100])
def test_large_and_small_max_batch_sizes_are_accepted_by_assignment(loader_cls: type, size: int) -> None:
    loader = loader_cls(fetch)
    loader.max_batch_size = size
    assert loader.max_batch_size == size
    loader.max_batch_size = None
    assert loader.max_batch_size is None


async def test_assigned_max_batch_size_splits_the_next_batch(loader_cls: type) -> None:
    recorder = Recorder()
    loader = loader_cls(recorder)
    loader.max_batch_size = 5
    async with asyncio.timeout(SETTLE_LIMIT):
        await loader.load_many(range(12))
    assert recorder.batches == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]
    loader.max_batch_size = None
    async with asyncio.timeout(SETTLE_LIMIT):
        await loader.load_many(range(12, 20))
    assert recorder.batches[3:] == [list(range(12, 20))]


@pytest.mark.parametrize("size", [2**63, 2**100], ids=["2**63", "2**100"])
@pytest.mark.parametrize("how", ["constructor", "assignment"])
async def test_huge_max_batch_size_loads_in_one_batch(loader_cls: type, size: int, how: str) -> None:
    recorder = Recorder()
    if how == "constructor":
        loader = loader_cls(recorder, max_batch_size=size)
    else:
        loader = loader_cls(recorder)
        loader.max_batch_size = size
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await loader.load_many([1, 2, 3]) == ["value-of-1", "value-of-2", "value-of-3"]
        assert await loader.load(4) == "value-of-4"
    assert recorder.batches == [[1, 2, 3], [4]]
    await settle(loader)
    assert_idle(loader)


async def test_valid_assignments_take_effect(loader_cls: type) -> None:
    loader = loader_cls(fetch, name="users")
    loader.load_fn = fetch_upper
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await loader.load("a") == "A"
    replacement: dict[Any, Any] = {"b": "from the new cache_map"}
    loader.cache_map = replacement
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await loader.load("b") == "from the new cache_map"
        assert await loader.load("c") == "C"
    assert replacement == {"b": "from the new cache_map", "c": "C"}
    loader.cache = False
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await loader.load("b") == "B"  # neither read nor written
    assert replacement["b"] == "from the new cache_map"
    loader.cache = True
    loader.cache_key_fn = lambda key: key["id"]
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await loader.load({"id": "b"}) == "from the new cache_map"
    loader.cache_key_fn = None
    loader.name = "accounts"
    assert loader.name == "accounts"
    assert "'accounts'" in repr(loader)
    names: list[str] = []

    async def named(keys: list[Any]) -> list[Any]:
        task = asyncio.current_task()
        assert task is not None
        names.append(task.get_name())
        await asyncio.sleep(0)  # under a task factory the name may come after the first step
        names.append(task.get_name())
        return keys

    loader.load_fn = named
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await loader.load("d") == "d"
    assert names[-1].startswith("dloader:accounts:")


@pytest.mark.parametrize("value", [None, 7])
def test_assignment_of_none_and_ints_round_trips(loader_cls: type, value: int | None) -> None:
    loader = loader_cls(fetch, max_batch_size=3)
    loader.max_batch_size = value
    assert loader.max_batch_size == value


@pytest.mark.parametrize(
    "duplicate",
    [copy.copy, copy.deepcopy, pickle.dumps, lambda loader: pickle.dumps(loader, protocol=0)],
    ids=["copy", "deepcopy", "pickle", "pickle-protocol-0"],
)
def test_copy_and_pickle_are_refused(loader_cls: type, duplicate: Any) -> None:
    loader = loader_cls(fetch, name="users")
    with pytest.raises(TypeError):
        duplicate(loader)


@pytest.mark.parametrize("duplicate", [copy.copy, copy.deepcopy, pickle.dumps], ids=["copy", "deepcopy", "pickle"])
def test_copy_and_pickle_errors_are_the_same_in_both_twins(
    compiled_cls: type, python_cls: type, duplicate: Any
) -> None:
    outcomes = []
    for cls in (compiled_cls, python_cls):
        with pytest.raises(TypeError) as info:
            duplicate(cls(fetch, name="users"))
        outcomes.append(str(info.value))
    assert outcomes[0] == outcomes[1]

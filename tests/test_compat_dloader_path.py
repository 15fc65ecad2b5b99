"""Upstream dloader 2025.7's import path, ``dloader.dataloader``, gives dloader's own DataLoader.

Code written for 2025.7 keeps working unchanged: same class, same module-level names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import dloader
import dloader.dataloader


def test_upstream_path_is_the_core_class() -> None:
    from dloader.dataloader import DataLoader

    assert DataLoader is dloader.DataLoader
    assert dloader.dataloader.__all__ == ("DataLoader",)
    assert dloader.dataloader.LoadFunction is dloader.LoadFunction
    assert dloader.dataloader.Key.__bound__ is not None  # 2025.7's TypeVars, for annotations


async def test_code_written_for_2025_7_runs() -> None:
    from dloader.dataloader import DataLoader

    calls: list[list[int]] = []

    async def load_users(user_ids: Sequence[int]) -> Sequence[str]:
        calls.append(list(user_ids))
        return [f"user_{user_id}" for user_id in user_ids]

    # 2025.7's docstring example: an async context manager, load, load_many and a cache hit.
    async with DataLoader(load_users) as loader:
        results = await asyncio.gather(loader.load(1), loader.load(2), loader.load_many([2, 3]))
        assert [*results, await loader.load(1)] == ["user_1", "user_2", ["user_2", "user_3"], "user_1"]
    assert calls == [[1, 2, 3]]

"""A typed user program: checked with ``mypy --strict`` (see .ci/release_checks.sh), run by tests.

It uses the public API the way an application would; a typing regression in
``dloader`` (a lost generic parameter, ``load()`` typed as ``V | Exception``,
an untyped method) makes mypy fail here.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from dloader import IMPLEMENTATION, DataLoader, LoaderRegistry, LoadFunction
from dloader.compat import aiodataloader as aiodataloader_compat
from dloader.compat import strawberry as strawberry_compat


@dataclass(frozen=True)
class User:
    id: int
    name: str


async def load_users(keys: list[int]) -> Sequence[User | Exception]:
    return [User(key, f"user-{key}") if key >= 0 else KeyError(key) for key in keys]


async def load_names(keys: list[str]) -> Mapping[str, int]:
    return {key: len(key) for key in keys}


def tag_identity(key: dict[str, int]) -> Hashable:
    return tuple(sorted(key.items()))


async def load_tagged(keys: list[dict[str, int]]) -> list[str]:
    return [",".join(f"{k}={v}" for k, v in sorted(key.items())) for key in keys]


async def load_posts(author_ids: list[int], *, status: str) -> list[list[str]]:
    return [[f"{status} post by {author_id}"] for author_id in author_ids]


async def main() -> dict[str, object]:
    users: DataLoader[int, User] = DataLoader(load_users, max_batch_size=100, name="users")
    future: asyncio.Future[User] = users.load(1)
    user: User = await future
    name: str = user.name

    many: list[User] = await users.load_many([1, 2, 3])
    # Typed list[User] today; exceptions stand in the failed positions at run time.
    with_errors = await users.load_many([4, -1], return_exceptions=True)

    users.prime(7, User(7, "primed"))
    users.prime_many({8: User(8, "eight")})
    users.prime(9, User(9, "kept"), overwrite=False)
    users.clear(7)
    users.clear_many([8])
    users.clear_all()

    lengths = DataLoader[str, int](load_names, cache_map=OrderedDict())
    length: int = await lengths.load("four")

    function: LoadFunction[int, User] = load_users
    async with DataLoader(function) as scoped:
        scoped_user: User = await scoped.load(5)

    tagged = DataLoader[dict[str, int], str](load_tagged, cache_key_fn=tag_identity)
    label: str = await tagged.load({"b": 2, "a": 1})

    async with LoaderRegistry(max_batch_size=50, options={load_users: {"cache": False}}) as loaders:
        registry_users: DataLoader[int, User] = loaders.get(load_users)
        drafts: DataLoader[int, list[str]] = loaders.get(load_posts, status="draft")
        draft_titles: list[str] = await drafts.load(1)
        registry_user: User = await registry_users.load(2)
    registry_problems: ExceptionGroup[Exception] | None = await loaders.shutdown()

    # The drop-in shims keep their upstream signatures and dloader's types.
    strawberry_users = strawberry_compat.DataLoader[int, User](load_fn=load_users, max_batch_size=10)
    strawberry_users.prime(10, User(10, "ten"), force=True)
    strawberry_user: User = await strawberry_users.load(10)
    aiodataloader_users = aiodataloader_compat.DataLoader[int, User](load_users, batch=True, cache=True)
    chained: aiodataloader_compat.DataLoader[int, User] = aiodataloader_users.prime(11, User(11, "eleven")).clear(12)
    aiodataloader_user: User = await chained.load(11)

    problems: ExceptionGroup[Exception] | None = await users.shutdown()
    return {
        "implementation": IMPLEMENTATION,
        "name": name,
        "many": [u.id for u in many],
        "errors": [type(u).__name__ for u in with_errors],
        "length": length,
        "scoped": scoped_user.id,
        "label": label,
        "problems": problems,
        "registry": [registry_user.id, draft_titles, registry_problems],
        "repr": repr(users),
        "compat": [strawberry_user.id, aiodataloader_user.id],
    }


if __name__ == "__main__":
    print(asyncio.run(main()))

"""The demo's schema written with strawberry, the round-trip check's second executor.

Every resolver delegates to dloader.demo's (they read ``info.context``, which strawberry provides too).
"""

from __future__ import annotations

from typing import Any

import strawberry

from dloader import demo


@strawberry.type
class User:
    id: int
    name: str

    @strawberry.field
    async def friends(root: strawberry.Parent[Any], info: strawberry.Info) -> list[User]:
        return await demo.resolve_friends(root, info)  # type: ignore[no-any-return]

    @strawberry.field
    def reviews(root: strawberry.Parent[Any], info: strawberry.Info) -> list[Review]:
        return demo.resolve_user_reviews(root, info)  # type: ignore[no-any-return]

    @strawberry.field
    async def favorite_author(root: strawberry.Parent[Any], info: strawberry.Info) -> Author:
        return await demo.resolve_favorite_author(root, info)  # type: ignore[no-any-return]


@strawberry.type
class Author:
    id: int
    name: str

    @strawberry.field
    async def books(root: strawberry.Parent[Any], info: strawberry.Info) -> list[Book]:
        return await demo.resolve_author_books(root, info)  # type: ignore[no-any-return]


@strawberry.type
class Book:
    id: int
    title: str

    @strawberry.field
    def author(root: strawberry.Parent[Any], info: strawberry.Info) -> Author:
        return demo.resolve_book_author(root, info)  # type: ignore[no-any-return]

    @strawberry.field
    def reviews(root: strawberry.Parent[Any], info: strawberry.Info) -> list[Review]:
        return demo.resolve_book_reviews(root, info)  # type: ignore[no-any-return]


@strawberry.type
class Review:
    id: int
    rating: int

    @strawberry.field
    async def book(root: strawberry.Parent[Any], info: strawberry.Info) -> Book:
        return await demo.resolve_review_book(root, info)  # type: ignore[no-any-return]

    @strawberry.field
    async def reviewer(root: strawberry.Parent[Any], info: strawberry.Info) -> User:
        return await demo.resolve_reviewer(root, info)  # type: ignore[no-any-return]


@strawberry.type
class Query:
    @strawberry.field
    def books(self, info: strawberry.Info, first: int) -> list[Book]:
        return demo.resolve_books(None, info, first)  # type: ignore[return-value]

    @strawberry.field
    def authors(self, info: strawberry.Info, first: int) -> list[Author]:
        return demo.resolve_authors(None, info, first)  # type: ignore[return-value]

    @strawberry.field
    def users(self, info: strawberry.Info, first: int) -> list[User]:
        return demo.resolve_users(None, info, first)  # type: ignore[return-value]

    @strawberry.field
    def reviews(self, info: strawberry.Info, first: int) -> list[Review]:
        return demo.resolve_reviews(None, info, first)  # type: ignore[return-value]

    @strawberry.field
    async def user(self, info: strawberry.Info, id: int) -> User | None:
        return await demo.resolve_user(None, info, id)  # type: ignore[no-any-return]


def build_strawberry_schema() -> Any:
    return strawberry.Schema(query=Query)

"""The same schema written with strawberry; resolvers delegate to the shared ones."""

from __future__ import annotations

from typing import Any

import strawberry

from . import workload as w
from .data import AuthorRow, BookRow, ReviewRow, UserRow

__all__ = ("build_strawberry_schema",)


@strawberry.type
class User:
    id: int
    name: str

    @strawberry.field
    async def friends(root: strawberry.Parent[UserRow], info: strawberry.Info) -> list[User]:
        return await w.user_friends(root, info.context)  # type: ignore[return-value]

    @strawberry.field
    def reviews(root: strawberry.Parent[UserRow], info: strawberry.Info) -> list[Review]:
        return w.user_reviews(root, info.context)  # type: ignore[no-any-return]

    @strawberry.field
    async def favorite_author(root: strawberry.Parent[UserRow], info: strawberry.Info) -> Author:
        return await w.user_favorite_author(root, info.context)  # type: ignore[return-value]


@strawberry.type
class Author:
    id: int
    name: str

    @strawberry.field
    async def books(root: strawberry.Parent[AuthorRow], info: strawberry.Info) -> list[Book]:
        return await w.author_books(root, info.context)  # type: ignore[return-value]


@strawberry.type
class Book:
    id: int
    title: str

    @strawberry.field
    def author(root: strawberry.Parent[BookRow], info: strawberry.Info) -> Author:
        return w.book_author(root, info.context)  # type: ignore[no-any-return]

    @strawberry.field
    def reviews(root: strawberry.Parent[BookRow], info: strawberry.Info) -> list[Review]:
        return w.book_reviews(root, info.context)  # type: ignore[no-any-return]


@strawberry.type
class Review:
    id: int
    rating: int

    @strawberry.field
    async def book(root: strawberry.Parent[ReviewRow], info: strawberry.Info) -> Book:
        return await w.review_book(root, info.context)  # type: ignore[return-value]

    @strawberry.field
    async def reviewer(root: strawberry.Parent[ReviewRow], info: strawberry.Info) -> User:
        return await w.review_reviewer(root, info.context)  # type: ignore[return-value]


@strawberry.type
class Query:
    @strawberry.field
    def books(self, info: strawberry.Info, first: int) -> list[Book]:
        return w.query_books(info.context, first)  # type: ignore[return-value]

    @strawberry.field
    def authors(self, info: strawberry.Info, first: int) -> list[Author]:
        return w.query_authors(info.context, first)  # type: ignore[return-value]

    @strawberry.field
    def users(self, info: strawberry.Info, first: int) -> list[User]:
        return w.query_users(info.context, first)  # type: ignore[return-value]

    @strawberry.field
    def reviews(self, info: strawberry.Info, first: int) -> list[Review]:
        return w.query_reviews(info.context, first)  # type: ignore[return-value]

    @strawberry.field
    async def user(self, info: strawberry.Info, id: int) -> User | None:
        return await w.query_user(info.context, id)  # type: ignore[return-value]


def build_strawberry_schema() -> Any:
    return strawberry.Schema(query=Query)

"""The demo's schema written with strawberry, the round-trip check's second executor.

Every field's resolver is dloader.demo's (they read ``info.context``, which strawberry provides too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry

from dloader import demo


def via(resolve: Callable[..., Any]) -> Any:
    """A field resolved by ``resolve(parent, info)``, whose value (or awaitable) strawberry takes as is."""

    def resolver(root: strawberry.Parent[Any], info: strawberry.Info) -> Any:
        return resolve(root, info)

    return strawberry.field(resolver=resolver)


def first(resolve: Callable[..., Any]) -> Any:
    """A root list field with a ``first: Int!`` argument."""

    def resolver(info: strawberry.Info, first: int) -> Any:
        return resolve(None, info, first)

    return strawberry.field(resolver=resolver)


def by_id(info: strawberry.Info, id: int) -> Any:
    return demo.resolve_user(None, info, id)


@strawberry.type
class User:
    id: int
    name: str
    friends: list[User] = via(demo.resolve_friends)
    reviews: list[Review] = via(demo.resolve_user_reviews)
    favorite_author: Author = via(demo.resolve_favorite_author)


@strawberry.type
class Author:
    id: int
    name: str
    books: list[Book] = via(demo.resolve_author_books)


@strawberry.type
class Book:
    id: int
    title: str
    author: Author = via(demo.resolve_book_author)
    reviews: list[Review] = via(demo.resolve_book_reviews)


@strawberry.type
class Review:
    id: int
    rating: int
    book: Book = via(demo.resolve_review_book)
    reviewer: User = via(demo.resolve_reviewer)


@strawberry.type
class Query:
    books: list[Book] = first(demo.resolve_books)
    authors: list[Author] = first(demo.resolve_authors)
    users: list[User] = first(demo.resolve_users)
    reviews: list[Review] = first(demo.resolve_reviews)
    user: User | None = strawberry.field(resolver=by_id)


def build_strawberry_schema() -> Any:
    return strawberry.Schema(query=Query)

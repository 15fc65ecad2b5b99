"""The workload's schema for graphql-core: SDL plus the shared resolvers."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLObjectType, GraphQLSchema, build_schema

from . import workload as w

__all__ = ("SDL", "build_graphql_core_schema")

SDL = """
type Query {
  books(first: Int!): [Book!]!
  authors(first: Int!): [Author!]!
  users(first: Int!): [User!]!
  reviews(first: Int!): [Review!]!
  user(id: Int!): User
}
type User {
  id: Int!
  name: String!
  friends: [User!]!
  reviews: [Review!]!
  favoriteAuthor: Author!
}
type Author {
  id: Int!
  name: String!
  books: [Book!]!
}
type Book {
  id: Int!
  title: String!
  author: Author!
  reviews: [Review!]!
}
type Review {
  id: Int!
  rating: Int!
  book: Book!
  reviewer: User!
}
"""


def _root(fn: Any) -> Any:
    def resolve(_root: Any, info: Any, **args: Any) -> Any:
        return fn(info.context, **args)

    return resolve


def _field(fn: Any) -> Any:
    def resolve(obj: Any, info: Any) -> Any:
        return fn(obj, info.context)

    return resolve


def _async_root(fn: Any) -> Any:
    async def resolve(_root: Any, info: Any, **args: Any) -> Any:
        return await fn(info.context, **args)

    return resolve


def _async_field(fn: Any) -> Any:
    async def resolve(obj: Any, info: Any) -> Any:
        return await fn(obj, info.context)

    return resolve


def build_graphql_core_schema() -> GraphQLSchema:
    schema = build_schema(SDL)

    def fields(type_name: str) -> Any:
        object_type = schema.type_map[type_name]
        assert isinstance(object_type, GraphQLObjectType)
        return object_type.fields

    query = fields("Query")
    query["books"].resolve = _root(w.query_books)
    query["authors"].resolve = _root(w.query_authors)
    query["users"].resolve = _root(w.query_users)
    query["reviews"].resolve = _root(w.query_reviews)
    query["user"].resolve = _async_root(w.query_user)
    fields("User")["friends"].resolve = _async_field(w.user_friends)
    fields("User")["reviews"].resolve = _field(w.user_reviews)  # sync, returns the future
    fields("User")["favoriteAuthor"].resolve = _async_field(w.user_favorite_author)
    fields("Author")["books"].resolve = _async_field(w.author_books)
    fields("Book")["author"].resolve = _field(w.book_author)  # sync, returns the future
    fields("Book")["reviews"].resolve = _field(w.book_reviews)  # sync, returns the future
    fields("Review")["book"].resolve = _async_field(w.review_book)
    fields("Review")["reviewer"].resolve = _async_field(w.review_reviewer)
    return schema

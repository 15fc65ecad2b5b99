"""The benchmark queries and the theoretical minimum number of round trips for each.

The minimum is computed from the query's shape, not measured. Walking the selection
tree from the root, a field whose resolver calls loaders (``dloader.demo.LOADER_CHAINS``)
puts each of them one *dependency level* deeper than the previous one: a loader's keys
are only known once the parent object, itself loaded at the level above, has arrived.
``User.friends`` calls two loaders in a chain (``friend_ids`` then ``users.load_many``),
so it spans two levels. A loader used at levels {1, 3} must make at least two calls:
the keys of level 3 do not exist when level 1 is dispatched, and the level-1 keys
cannot wait for level 3 without delaying everything below them. So

    minimum(loader) = number of distinct dependency levels the loader appears at,

per request (times the number of concurrent requests, as each has its own loaders).
The queries are chosen so that every level brings keys not already cached.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from graphql import (
    FieldNode,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    parse,
)

from dloader.demo import LOADER_CHAINS


@dataclass(frozen=True)
class Query:
    name: str
    text: str
    about: str
    minimum: dict[str, int] = field(default_factory=dict, compare=False)


QUERIES_TEXT: tuple[tuple[str, str, str], ...] = (
    (
        "book_author",
        "{ books(first: 40) { id title author { id name } } }",
        "sync resolver returning loader.load (one level)",
    ),
    (
        "author_tree",
        "{ authors(first: 15) { name books { title reviews { rating reviewer { name } } } } }",
        "one-to-many x2, then an auth-gated load (3 levels)",
    ),
    (
        "friends2",
        "{ users(first: 20) { name friends { name friends { name } } } }",
        "auth + friend ids + load_many, twice (4 levels)",
    ),
    (
        "review_mix",
        "{ reviews(first: 60) { rating book { title author { name books { title } } }"
        " reviewer { name friends { name } } } }",
        "sibling branches with 0/1/2 yields; users at levels 1 and 3",
    ),
    (
        "converge",
        "{ reviews(first: 50) { book { author { name } } reviewer { favoriteAuthor { name } } } }",
        "authors at level 2, fed by two different level-1 loaders",
    ),
    (
        "user_deep",
        "{ user(id: 7) { name reviews { rating book { title author { name } } }"
        " friends { name reviews { rating } } } }",
        "root load, then 4 levels over 2 branches",
    ),
)


def _fields(selection_set: SelectionSetNode | None) -> Iterator[FieldNode]:
    if selection_set is None:
        return
    for selection in selection_set.selections:
        if not isinstance(selection, FieldNode):
            raise NotImplementedError("the minimum is computed for plain field selections only")
        yield selection


def loader_levels(schema: GraphQLSchema, text: str) -> dict[str, set[int]]:
    """For each loader, the dependency levels (1 = first round) it is used at."""
    document = parse(text)
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    levels: dict[str, set[int]] = {}

    def walk(parent: GraphQLObjectType, selection_set: SelectionSetNode | None, depth: int) -> None:
        for node in _fields(selection_set):
            name = node.name.value
            if name.startswith("__"):
                continue
            chain = LOADER_CHAINS.get((parent.name, name), ())
            for offset, loader in enumerate(chain, start=1):
                levels.setdefault(loader, set()).add(depth + offset)
            child = get_named_type(parent.fields[name].type)
            if isinstance(child, GraphQLObjectType):
                walk(child, node.selection_set, depth + len(chain))

    assert schema.query_type is not None
    walk(schema.query_type, operation.selection_set, 0)
    return levels


def minimum_round_trips(schema: GraphQLSchema, text: str) -> dict[str, int]:
    return {loader: len(depths) for loader, depths in sorted(loader_levels(schema, text).items())}


def build_queries(schema: GraphQLSchema) -> tuple[Query, ...]:
    return tuple(Query(name, text, about, minimum_round_trips(schema, text)) for name, text, about in QUERIES_TEXT)

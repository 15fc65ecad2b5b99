"""The benchmark's database: an in-memory SQLite library of users, authors, books, reviews.

Built from a fixed seed, so every run (and every implementation) sees the same rows.
Rows come back as small frozen dataclasses; the batch functions in ``workload`` issue
exactly one ``SELECT ... WHERE x IN (...)`` per batch.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass

__all__ = (
    "AuthorRow",
    "BookRow",
    "ReviewRow",
    "UserRow",
    "build_database",
)

SEED = 20_240_611
N_USERS = 300
N_AUTHORS = 60
N_BOOKS = 400
N_REVIEWS = 1500
FRIENDS_PER_USER = (2, 5)  # each user befriends this many others (friendship is symmetric)


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    name: str
    favorite_author_id: int


@dataclass(frozen=True, slots=True)
class AuthorRow:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class BookRow:
    id: int
    title: str
    author_id: int


@dataclass(frozen=True, slots=True)
class ReviewRow:
    id: int
    rating: int
    book_id: int
    user_id: int


_SCHEMA = """
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, favorite_author_id INTEGER NOT NULL);
CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, author_id INTEGER NOT NULL);
CREATE TABLE reviews (
    id INTEGER PRIMARY KEY, rating INTEGER NOT NULL, book_id INTEGER NOT NULL, user_id INTEGER NOT NULL
);
CREATE TABLE friendships (user_id INTEGER NOT NULL, friend_id INTEGER NOT NULL, PRIMARY KEY (user_id, friend_id));
CREATE INDEX books_by_author ON books (author_id);
CREATE INDEX reviews_by_book ON reviews (book_id);
CREATE INDEX reviews_by_user ON reviews (user_id);
"""


def build_database(seed: int = SEED) -> sqlite3.Connection:
    """Create and fill the in-memory database; deterministic for a given seed."""
    rng = random.Random(seed)
    db = sqlite3.connect(":memory:")
    db.executescript(_SCHEMA)
    db.executemany(
        "INSERT INTO authors VALUES (?, ?)",
        [(i, f"Author {i}") for i in range(1, N_AUTHORS + 1)],
    )
    db.executemany(
        "INSERT INTO users VALUES (?, ?, ?)",
        [(i, f"User {i}", rng.randint(1, N_AUTHORS)) for i in range(1, N_USERS + 1)],
    )
    db.executemany(
        "INSERT INTO books VALUES (?, ?, ?)",
        [(i, f"Book {i}", rng.randint(1, N_AUTHORS)) for i in range(1, N_BOOKS + 1)],
    )
    db.executemany(
        "INSERT INTO reviews VALUES (?, ?, ?, ?)",
        [(i, rng.randint(1, 5), rng.randint(1, N_BOOKS), rng.randint(1, N_USERS)) for i in range(1, N_REVIEWS + 1)],
    )
    pairs: set[tuple[int, int]] = set()
    for user in range(1, N_USERS + 1):
        for friend in rng.sample(range(1, N_USERS + 1), rng.randint(*FRIENDS_PER_USER)):
            if friend != user:
                pairs.add((user, friend))
                pairs.add((friend, user))
    db.executemany("INSERT INTO friendships VALUES (?, ?)", sorted(pairs))
    db.commit()
    return db

"""The second-level cache protocol: a batched async cache a loader consults once per batch.

Placeholder until the full protocol module lands.
"""

from __future__ import annotations

from typing import Any


class _Miss:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<MISS>"


MISS: Any = _Miss()

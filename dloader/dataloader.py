"""Upstream dloader 2025.7's import path: ``from dloader.dataloader import DataLoader`` keeps working.

``DataLoader`` here is dloader's own class (the same object as ``dloader.DataLoader``).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TypeVar

from ._common import LoadFunction as LoadFunction
from ._loader import DataLoader

__all__ = ("DataLoader",)

# The type variables 2025.7 defined beside its class (LoadFunction, imported above, too).
Key = TypeVar("Key", bound=Hashable)
Result = TypeVar("Result")

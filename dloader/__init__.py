"""dloader: a batching, caching DataLoader for asyncio.

Collects the keys that concurrent coroutines ask for, loads them with one call
of a batch function, caches the results and hands each caller its value.
"""

from ._common import LoaderStats, LoadFunction
from ._loader import IMPLEMENTATION, DataLoader
from .registry import LoaderRegistry

__version__ = "2026.12.0"

__all__ = ("IMPLEMENTATION", "DataLoader", "LoadFunction", "LoaderRegistry", "LoaderStats", "__version__")

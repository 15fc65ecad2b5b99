"""dloader: a batching, caching DataLoader for asyncio.

Collects the keys that concurrent coroutines ask for, loads them with one call
of a batch function, caches the results and hands each caller its value.
"""

from ._common import LoadFunction
from ._loader import IMPLEMENTATION, DataLoader
from .registry import LoaderRegistry

__version__ = "0.2.0"

__all__ = ("IMPLEMENTATION", "DataLoader", "LoadFunction", "LoaderRegistry", "__version__")

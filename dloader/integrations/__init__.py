"""Framework integrations: each module gives requests or operations their own LoaderRegistry.

``dloader.integrations.strawberry`` (extra ``strawberry``) and ``dloader.integrations.fastapi``
(extra ``fastapi``); each imports its framework, so import only the one you use.
"""

from __future__ import annotations

import logging

from ..registry import LoaderRegistry

__all__ = ("log_shutdown_errors",)

logger = logging.getLogger("dloader.integrations")


def log_shutdown_errors(registry: LoaderRegistry, errors: ExceptionGroup[Exception] | None, where: str) -> None:
    """Report what a registry's shutdown returned: an integration has nobody to return it to."""
    if errors is not None:
        logger.warning("%s: shutting down %r: load functions raised while cancelled", where, registry, exc_info=errors)

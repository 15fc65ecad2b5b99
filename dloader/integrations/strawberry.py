"""Strawberry integration: a schema extension that gives each GraphQL operation its own LoaderRegistry.

``strawberry.Schema(query=Query, extensions=[LoaderExtension])``; resolvers then call
``info.context.loaders.get(load_fn).load(key)`` (``info.context["loaders"]`` for dict contexts).
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable, MutableMapping
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from ..registry import LoaderRegistry
from . import log_shutdown_errors

__all__ = ("LoaderExtension",)

# How many running operations use each registry: operations that share one context (a
# batched HTTP request) share its registry, and the last one to end shuts it down.
_operations_using: weakref.WeakKeyDictionary[LoaderRegistry, int] = weakref.WeakKeyDictionary()
# The registries this extension put into a context, and takes out again at the end.
_attached_here: weakref.WeakSet[LoaderRegistry] = weakref.WeakSet()


class LoaderExtension(SchemaExtension):
    """Creates a LoaderRegistry when an operation starts and shuts it down when it ends.

    The registry goes into the context under ``attribute`` (default ``"loaders"``): as a key
    when the context is a dict (strawberry's default ASGI and FastAPI contexts), otherwise as
    an attribute; with no context at all, the context becomes ``{"loaders": registry}``.
    A registry already there (put by a context getter) is used instead, and shut down too
    when the operation ends (shutting down twice is harmless). Options:
    ``extensions=[lambda: LoaderExtension(create_loaders)]``, where ``create_loaders()``
    returns a configured ``LoaderRegistry``.
    """

    def __init__(
        self,
        registry_factory: Callable[[], LoaderRegistry] = LoaderRegistry,
        *,
        attribute: str = "loaders",
        execution_context: ExecutionContext | None = None,
    ) -> None:
        if not callable(registry_factory):
            raise TypeError(
                f"LoaderExtension: registry_factory must be callable (e.g. LoaderRegistry), "
                f"got {type(registry_factory).__name__}"
            )
        if not isinstance(attribute, str) or not attribute.isidentifier():
            raise TypeError(f"LoaderExtension: attribute must be an identifier string, got {attribute!r}")
        super().__init__(execution_context=execution_context)
        self.registry_factory = registry_factory
        self.attribute = attribute
        if execution_context is not None:  # strawberry sets it per operation; older signatures pass it here
            self.execution_context = execution_context

    async def on_operation(self) -> AsyncIterator[None]:
        execution_context = self.execution_context
        context = execution_context.context
        if context is None:
            context = execution_context.context = {}
        registry = _attached(context, self.attribute)
        if registry is None:
            registry = _attach_new(context, self.attribute, self.registry_factory)
            _attached_here.add(registry)
        _operations_using[registry] = _operations_using.get(registry, 0) + 1
        try:
            yield
        finally:
            remaining = _operations_using[registry] - 1
            if remaining:
                _operations_using[registry] = remaining
            else:
                del _operations_using[registry]
                if registry in _attached_here:
                    _attached_here.discard(registry)
                    _detach(context, self.attribute, registry)
                log_shutdown_errors(registry, await registry.shutdown(), "LoaderExtension")


def _attached(context: Any, attribute: str) -> LoaderRegistry | None:
    found = context.get(attribute) if isinstance(context, MutableMapping) else getattr(context, attribute, None)
    if found is None or isinstance(found, LoaderRegistry):
        return found
    raise TypeError(
        f"LoaderExtension: the context already holds {attribute!r} = {type(found).__name__} object, "
        "not a LoaderRegistry; pass LoaderExtension(attribute=...) to use another name"
    )


def _attach_new(context: Any, attribute: str, registry_factory: Callable[[], LoaderRegistry]) -> LoaderRegistry:
    registry = registry_factory()
    if not isinstance(registry, LoaderRegistry):
        raise TypeError(f"LoaderExtension: registry_factory returned {type(registry).__name__}, not a LoaderRegistry")
    if isinstance(context, MutableMapping):
        context[attribute] = registry
        return registry
    try:
        setattr(context, attribute, registry)
    except AttributeError as error:  # __slots__ without it, a frozen dataclass, a read-only property
        del registry  # the error's traceback keeps this frame: it must not keep the registry too
        raise TypeError(
            f"LoaderExtension cannot set {attribute!r} on the context ({type(context).__name__}: {error}); "
            f"give the context class a writable {attribute!r} attribute (e.g. a dataclass field "
            f"'{attribute}: LoaderRegistry | None = None'), or use a dict context"
        ) from None
    return registry


def _detach(context: Any, attribute: str, registry: LoaderRegistry) -> None:
    # The context may outlive the operation (a test keeps it, a batched request reuses it):
    # it must not keep the shut-down registry and the loaders' caches alive.
    if isinstance(context, MutableMapping):
        if context.get(attribute) is registry:
            del context[attribute]
    elif getattr(context, attribute, None) is registry:
        try:
            setattr(context, attribute, None)
        except AttributeError:
            pass

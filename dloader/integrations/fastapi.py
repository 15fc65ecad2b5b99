"""FastAPI integration: a dependency that yields a LoaderRegistry per request and shuts it down at the end.

When the client disconnects mid-request, the registry is shut down at once, which cancels
the request's running batches (Starlette does not cancel a handler on disconnect by itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.types import Receive

from ..registry import LoaderRegistry
from . import log_shutdown_errors

__all__ = ("CLIENT_CLOSED_REQUEST", "Loaders", "get_loaders", "loader_registry_dependency")

#: The status of a request whose client left (nginx's convention); nobody receives it.
CLIENT_CLOSED_REQUEST = 499


class _Disconnect:
    __slots__ = ("happened",)

    def __init__(self) -> None:
        self.happened = False


def loader_registry_dependency(
    registry_factory: Callable[[], LoaderRegistry] = LoaderRegistry, *, cancel_on_disconnect: bool = True
) -> Callable[[HTTPConnection], AsyncIterator[LoaderRegistry]]:
    """A FastAPI dependency yielding ``registry_factory()`` per request, shut down when the request ends.

    With ``cancel_on_disconnect`` (HTTP requests only), a client disconnect shuts the
    registry down at once: running and queued batches are cancelled and the loads waiting
    for them raise CancelledError, which ends a GraphQL execution or an endpoint awaiting
    them; the request then ends quietly with status 499 (to nobody). Loads the handler
    starts after that run as usual: the registry, like its loaders, stays usable.
    To watch for the disconnect, the dependency reads the request body first (it is
    cached on the request, so the handler still reads it as usual).
    """
    if not callable(registry_factory):
        raise TypeError(
            f"loader_registry_dependency: registry_factory must be callable (e.g. LoaderRegistry), "
            f"got {type(registry_factory).__name__}"
        )

    async def loader_registry(connection: HTTPConnection) -> AsyncIterator[LoaderRegistry]:
        if not cancel_on_disconnect or not isinstance(connection, Request):  # a WebSocket: its app owns receive
            async with registry_factory() as registry:
                yield registry
            return
        try:
            # The watcher below reads the receive channel; the body must be off it (and cached) first.
            await connection.body()
        except RuntimeError:  # "Stream consumed": FastAPI read it already (a form), only the disconnect is left
            pass
        registry = registry_factory()
        disconnect = _Disconnect()
        watcher = asyncio.create_task(
            _shut_down_on_disconnect(connection.receive, registry, disconnect), name="dloader:disconnect-watcher"
        )
        try:
            yield registry
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if disconnect.happened and (task is None or not task.cancelling()):
                # The handler failed because its loads were cancelled for a client that left:
                # answer it (nobody listens) instead of logging an "Exception in ASGI application".
                raise HTTPException(CLIENT_CLOSED_REQUEST, "client disconnected") from None
            raise
        finally:
            watcher.cancel()
            log_shutdown_errors(registry, await registry.shutdown(), "dloader.integrations.fastapi")
            await asyncio.wait([watcher])

    return loader_registry


async def _shut_down_on_disconnect(receive: Receive, registry: LoaderRegistry, disconnect: _Disconnect) -> None:
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception:  # a server whose receive fails once the response is over: nothing to watch
        return
    disconnect.happened = True
    log_shutdown_errors(registry, await registry.shutdown(), "dloader.integrations.fastapi (client disconnected)")


#: The default dependency: ``loaders: LoaderRegistry = Depends(get_loaders)``.
get_loaders = loader_registry_dependency()

#: ``async def endpoint(loaders: Loaders)``: the registry is shut down when the endpoint
#: returns (scope="function"), before the response is sent.
Loaders = Annotated[LoaderRegistry, Depends(get_loaders, scope="function")]

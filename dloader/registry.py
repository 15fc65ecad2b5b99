"""LoaderRegistry: the DataLoaders of one request, created on first use and shut down together.

``loaders.get(load_fn, **kwargs)`` gives one loader per function and argument set, so
resolvers never build loaders by hand and nothing cached outlives the request.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, TypeVar

from ._loader import DataLoader

__all__ = ("KeywordLoadFunction", "LoaderRegistry", "LoaderStatsSnapshot")

_K = TypeVar("_K")
_V = TypeVar("_V")
_V_co = TypeVar("_V_co", covariant=True)


class KeywordLoadFunction(Protocol[_K, _V_co]):
    """A batch function that may take keyword arguments after the keys: ``load_fn(keys, **kwargs)``.

    Any ``LoadFunction`` fits; so does ``async def posts(keys: list[int], *, status: str)``.
    """

    def __call__(
        self, keys: list[_K], /, *args: Any, **kwargs: Any
    ) -> Awaitable[Sequence[_V_co | BaseException] | Mapping[Any, _V_co | BaseException]]: ...


class LoaderStatsSnapshot(Protocol):
    """What ``loader.stats`` returns when a loader was created with ``stats=True``."""

    def __add__(self, other: Any, /) -> Any: ...

    def as_dict(self) -> dict[str, Any]: ...


# Options that name one loader, or that hold state one loader must own, cannot be
# shared registry-wide as they are: a registry creates many loaders from them.
_PER_FUNCTION_ONLY = ("name", "value_cache")
_NOT_OPTIONS = ("load_fn",)
_MAX_NAMES_IN_REPR = 5


class LoaderRegistry:
    """The loaders of one request (or one GraphQL operation), keyed by function and arguments.

    ``get(load_fn, **kwargs)`` returns the loader for ``load_fn`` and those keyword
    arguments, creating it on first use; it calls ``load_fn(keys, **kwargs)``.
    Keyword arguments given to the registry are defaults for every loader it
    creates; ``options={load_fn: {...}}`` (or ``configure``) sets a function's own.
    Any DataLoader option goes; ``cache_map`` is given as a factory (each loader
    needs its own map). ``async with`` (or ``await shutdown()``) shuts every loader
    down; the registry, like its loaders, stays usable afterwards.
    """

    __slots__ = ("_loader_cls", "_defaults", "_function_options", "_loaders", "_entered", "__weakref__")

    def __init__(
        self,
        *,
        loader_cls: Callable[..., DataLoader[Any, Any]] | None = None,
        options: Mapping[Callable[..., Any], Mapping[str, Any]] | None = None,
        **defaults: Any,
    ) -> None:
        if loader_cls is not None and not callable(loader_cls):
            raise TypeError(f"LoaderRegistry: loader_cls must be a DataLoader class, got {type(loader_cls).__name__}")
        for option in _NOT_OPTIONS:
            if option in defaults:
                raise TypeError(f"LoaderRegistry: {option!r} is not an option; pass the function to get()")
        for option in _PER_FUNCTION_ONLY:
            if option in defaults:
                raise TypeError(
                    f"LoaderRegistry: {option!r} cannot be a default for every loader of the registry "
                    f"(each function needs its own); set it per function: options={{load_fn: {{{option!r}: ...}}}}"
                )
        _check_cache_map("LoaderRegistry", defaults)
        self._loader_cls: Callable[..., DataLoader[Any, Any]] = DataLoader if loader_cls is None else loader_cls
        self._defaults: dict[str, Any] = defaults
        self._function_options: dict[Callable[..., Any], dict[str, Any]] = {}
        self._loaders: dict[Any, DataLoader[Any, Any]] = {}
        self._entered = False
        if options is not None:
            if not isinstance(options, Mapping):
                raise TypeError(
                    "LoaderRegistry: options must be a mapping from load function to a mapping of DataLoader "
                    f"options, got {type(options).__name__}"
                )
            for load_fn, function_options in options.items():
                if not isinstance(function_options, Mapping):
                    raise TypeError(
                        f"LoaderRegistry: options[{_function_label(load_fn)}] must be a mapping of DataLoader "
                        f"options, got {type(function_options).__name__}"
                    )
                self.configure(load_fn, **function_options)

    def configure(self, load_fn: Callable[..., Any], /, **options: Any) -> None:
        """Set ``load_fn``'s own DataLoader options (over the registry's defaults).

        Call it before the first ``get(load_fn, ...)``: options reach only the
        loaders created afterwards, so a late call raises RuntimeError.
        """
        label = _function_label(load_fn)
        if not callable(load_fn):
            raise TypeError(f"LoaderRegistry.configure: load_fn must be callable, got {type(load_fn).__name__}")
        for option in _NOT_OPTIONS:
            if option in options:
                raise TypeError(f"LoaderRegistry.configure({label}): {option!r} is not an option")
        _check_cache_map(f"LoaderRegistry.configure({label})", options)
        created = [loader.name for key, loader in self._loaders.items() if _function_of(key) == load_fn]
        if created:
            raise RuntimeError(
                f"LoaderRegistry.configure({label}) after its loaders were created ({', '.join(created)}); "
                "options reach only loaders created later: configure a function before its first get()"
            )
        self._function_options[load_fn] = {**self._function_options.get(load_fn, {}), **options}

    def get(self, load_fn: KeywordLoadFunction[_K, _V], /, **kwargs: Hashable) -> DataLoader[_K, _V]:
        """The loader calling ``load_fn(keys, **kwargs)``, created on first use.

        Each distinct set of keyword arguments (compared by value and type, so
        ``1`` and ``True`` differ) has its own loader, batches and cache.
        """
        if not kwargs:
            try:
                return self._loaders[load_fn]
            except KeyError:
                registry_key: Any = load_fn
            except TypeError:  # an unhashable callable
                raise TypeError(
                    f"LoaderRegistry.get: load_fn must be hashable (a function or bound method), "
                    f"got {type(load_fn).__name__} {load_fn!r}"
                ) from None
        else:
            frozen = tuple((name, type(value), value) for name, value in sorted(kwargs.items()))
            registry_key = (load_fn, frozen)
            try:
                return self._loaders[registry_key]
            except KeyError:
                pass
            except TypeError:
                raise _unhashable_argument_error(load_fn, kwargs) from None
        return self._create(registry_key, load_fn, kwargs)

    def _create(self, registry_key: Hashable, load_fn: Any, kwargs: dict[str, Any]) -> DataLoader[Any, Any]:
        if not callable(load_fn):
            raise TypeError(
                f"LoaderRegistry.get: load_fn must be an async callable taking a list of keys, "
                f"got {type(load_fn).__name__} {load_fn!r}"
            )
        options = {**self._defaults, **self._function_options.get(load_fn, {})}
        base_name = options.pop("name", None)
        if base_name is None:
            base_name = _function_label(load_fn)
        name = _loader_name(base_name, kwargs) if isinstance(base_name, str) else base_name
        cache_map_factory = options.get("cache_map")
        if cache_map_factory is not None:
            options["cache_map"] = cache_map_factory()
        value_cache = options.get("value_cache")
        if value_cache is not None and kwargs:
            if hasattr(value_cache, "get_many"):
                raise ValueError(
                    f"LoaderRegistry.get: {name}: a value_cache is keyed by the load keys alone, so the "
                    f"loaders of {_function_label(load_fn)} with different keyword arguments would share "
                    "its entries; give value_cache as a factory called with the keyword arguments "
                    "(value_cache=lambda kwargs: ...) that returns a cache with its own namespace"
                )
            options["value_cache"] = value_cache(dict(kwargs))
        elif value_cache is not None and not hasattr(value_cache, "get_many") and callable(value_cache):
            options["value_cache"] = value_cache({})
        bound = functools.partial(load_fn, **kwargs) if kwargs else load_fn
        loader = self._loader_cls(bound, name=name, **options)
        self._loaders[registry_key] = loader
        return loader

    async def shutdown(self) -> ExceptionGroup[Exception] | None:
        """Shut every loader down (see ``DataLoader.shutdown``); idempotent.

        Returns an ExceptionGroup of the loaders' shutdown errors (one nested
        group per loader whose load_fn raised while being cancelled), or None.
        If the calling task is cancelled meanwhile, the other loaders are still
        shut down before the cancellation propagates.
        """
        errors: list[Exception] = []
        cancelled: BaseException | None = None
        finished: set[int] = set()
        task = asyncio.current_task()
        cancel_requests = task.cancelling() if task is not None else 0
        while True:
            # Loaders created while others shut down (a load_fn calling get()) are shut down too.
            pending = [loader for loader in self._loaders.values() if id(loader) not in finished]
            if not pending:
                break
            for loader in pending:
                finished.add(id(loader))
                try:
                    group = await loader.shutdown()
                except asyncio.CancelledError as cancellation:  # the caller's task: finish first
                    cancelled = cancellation
                    continue
                except Exception as error:
                    errors.append(error)
                    continue
                if group is not None:
                    errors.append(group)
        if cancelled is None and task is not None and task.cancelling() > cancel_requests:
            # A loader's shutdown() absorbed the CancelledError meant for this task (it awaits
            # its batch tasks and ignores their cancellation): the request still stands.
            cancelled = asyncio.CancelledError()
        if cancelled is not None:
            raise cancelled
        if not errors:
            return None
        summary = f"LoaderRegistry: {len(errors)} of {len(self._loaders)} loaders failed to shut down"
        return ExceptionGroup(summary, errors)

    def stats(self, load_fn: Callable[..., Any] | None = None) -> LoaderStatsSnapshot | None:
        """The statistics of the loaders (of ``load_fn`` only, if given) added together.

        Only loaders created with ``stats=True`` count; None when there is none.
        """
        combined: Any = None
        for registry_key, loader in self._loaders.items():
            if load_fn is not None and _function_of(registry_key) != load_fn:
                continue
            snapshot = getattr(loader, "stats", None)
            if snapshot is None:
                continue
            combined = snapshot if combined is None else combined + snapshot
        return combined  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return len(self._loaders)

    def __iter__(self) -> Iterator[DataLoader[Any, Any]]:
        """The loaders created so far, in creation order."""
        return iter(list(self._loaders.values()))

    async def __aenter__(self) -> LoaderRegistry:
        if self._entered:
            raise RuntimeError("LoaderRegistry is already entered by an 'async with' block; it cannot be re-entered")
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._entered = False
        await self.shutdown()

    def __repr__(self) -> str:
        names = [loader.name for loader in self._loaders.values()]
        shown = ", ".join(names[:_MAX_NAMES_IN_REPR])
        if len(names) > _MAX_NAMES_IN_REPR:
            shown += f", … {len(names) - _MAX_NAMES_IN_REPR} more"
        return f"<LoaderRegistry loaders={len(names)}{': ' + shown if names else ''}>"


def _function_of(registry_key: Hashable) -> Any:
    return registry_key[0] if type(registry_key) is tuple else registry_key


def _function_label(load_fn: Any) -> str:
    qualname = getattr(load_fn, "__qualname__", None)
    return qualname if isinstance(qualname, str) else repr(load_fn)


def _loader_name(base_name: str, kwargs: Mapping[str, Any]) -> str:
    if not kwargs:
        return base_name
    arguments = ", ".join(f"{name}={value!r}" for name, value in sorted(kwargs.items()))
    return f"{base_name}({arguments})"


def _check_cache_map(where: str, options: Mapping[str, Any]) -> None:
    cache_map = options.get("cache_map")
    if cache_map is None:
        return
    if isinstance(cache_map, type) or (callable(cache_map) and not hasattr(cache_map, "__getitem__")):
        return
    raise TypeError(
        f"{where}: cache_map must be a factory returning a new mapping for each loader "
        f"(cache_map=dict, or cache_map=lambda: LRUCache(maxsize=1000)), not a {type(cache_map).__name__} "
        "instance: one map shared by several loaders would mix their keys"
    )


def _unhashable_argument_error(load_fn: Any, kwargs: Mapping[str, Any]) -> TypeError:
    for name, value in kwargs.items():
        try:
            hash(value)
        except TypeError:
            return TypeError(
                f"LoaderRegistry.get({_function_label(load_fn)}, {name}=...): keyword argument {name!r} is "
                f"unhashable ({type(value).__name__}); loaders are keyed by their arguments: pass a tuple, "
                "frozenset or other hashable value"
            )
    return TypeError(f"LoaderRegistry.get: load_fn must be hashable, got {type(load_fn).__name__} {load_fn!r}")

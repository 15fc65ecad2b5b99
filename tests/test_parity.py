"""The compiled and pure-Python twins expose the same surface and fail the same way.

Each test takes both classes at once; with ``--no-extensions`` they are deselected.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import weakref
from collections.abc import Callable
from typing import Any

import pytest

PUBLIC_METHODS = ("load", "load_many", "clear", "clear_many", "clear_all", "prime", "prime_many", "shutdown")
PROTOCOL_METHODS = ("__init__", "__repr__", "__aenter__", "__aexit__", "__class_getitem__")
ATTRIBUTES = ("load_fn", "max_batch_size", "cache", "cache_map", "cache_key_fn", "name")


async def fetch(keys: list[Any]) -> list[Any]:
    return keys


def public_names(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def bare_signature(target: Any) -> inspect.Signature:
    """The signature without annotations: the compiled twin has no string annotations to show.

    ``self`` counts as positional-only in both: the compiled twin's methods are C method
    descriptors (they check that ``self`` is a DataLoader), whose ``self`` is positional-only.
    """
    signature = inspect.signature(target)
    parameters = [parameter.replace(annotation=inspect.Parameter.empty) for parameter in signature.parameters.values()]
    if parameters and parameters[0].name == "self":
        parameters[0] = parameters[0].replace(kind=inspect.Parameter.POSITIONAL_ONLY)
    return signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty)


def normalized_doc(target: Any, name: str) -> str | None:
    doc = inspect.getdoc(target)
    if doc is None:
        return None
    # Cython's embedsignature may prefix "name(args)" (and a "--" line): not part of the prose.
    doc = re.sub(rf"^{re.escape(name)}\(.*?\)(\s*->\s*[^\n]+)?\n(--\n)?\n?", "", doc, flags=re.DOTALL)
    return doc.strip()


def scrub(message: str) -> str:
    return re.sub(r"0x[0-9a-fA-F]+", "0x…", message)


def outcome(action: Callable[[], Any]) -> tuple[type[BaseException] | None, str]:
    try:
        action()
    except BaseException as error:
        return type(error), scrub(str(error))
    return None, ""


# ---------------------------------------------------------------- surface


def test_same_public_names(compiled_cls: type, python_cls: type) -> None:
    assert public_names(compiled_cls) == public_names(python_cls)
    assert public_names(python_cls) >= set(PUBLIC_METHODS)


def test_same_protocol_methods(compiled_cls: type, python_cls: type) -> None:
    for name in PROTOCOL_METHODS:
        assert hasattr(compiled_cls, name) == hasattr(python_cls, name), name


def test_same_constructor_signature(compiled_cls: type, python_cls: type) -> None:
    assert bare_signature(compiled_cls) == bare_signature(python_cls)


@pytest.mark.parametrize("method", [*PUBLIC_METHODS, "__aenter__", "__aexit__"])
def test_same_method_signatures(compiled_cls: type, python_cls: type, method: str) -> None:
    assert bare_signature(getattr(compiled_cls, method)) == bare_signature(getattr(python_cls, method))


@pytest.mark.parametrize("method", [*PUBLIC_METHODS, "__aenter__", "__aexit__"])
def test_same_method_kinds(compiled_cls: type, python_cls: type, method: str) -> None:
    compiled, python = getattr(compiled_cls, method), getattr(python_cls, method)
    assert inspect.iscoroutinefunction(compiled) == inspect.iscoroutinefunction(python)


@pytest.mark.parametrize("method", [None, *PUBLIC_METHODS])
def test_same_docstrings(compiled_cls: type, python_cls: type, method: str | None) -> None:
    if method is None:
        compiled, python, name = compiled_cls, python_cls, "DataLoader"
    else:
        compiled, python, name = getattr(compiled_cls, method), getattr(python_cls, method), method
    python_doc = normalized_doc(python, name)
    assert python_doc, f"{name} has no docstring"
    assert normalized_doc(compiled, name) == python_doc


def test_same_names_and_module_shape(compiled_cls: type, python_cls: type) -> None:
    assert compiled_cls.__name__ == python_cls.__name__ == "DataLoader"
    assert compiled_cls.__qualname__ == python_cls.__qualname__
    assert compiled_cls.__module__ == "dloader._loader_c"
    assert python_cls.__module__ == "dloader._loader_py"


def test_same_attributes_after_construction(compiled_cls: type, python_cls: type) -> None:
    def key_fn(key: Any) -> Any:
        return key

    options = {"max_batch_size": 5, "cache": False, "cache_key_fn": key_fn, "name": "users"}
    compiled, python = compiled_cls(fetch, **options), python_cls(fetch, **options)
    for attribute in ATTRIBUTES:
        assert getattr(compiled, attribute) == getattr(python, attribute), attribute
    assert public_names(type(compiled)) == public_names(type(python))


def test_same_weakref_support(compiled_cls: type, python_cls: type) -> None:
    for cls in (compiled_cls, python_cls):
        loader = cls(fetch)
        assert weakref.ref(loader)() is loader


def test_same_generic_subscription(compiled_cls: type, python_cls: type) -> None:
    assert isinstance(compiled_cls[int, str](fetch), compiled_cls)
    assert isinstance(python_cls[int, str](fetch), python_cls)


def test_same_repr(compiled_cls: type, python_cls: type) -> None:
    for name in (None, "users", 'it\'s "quoted"'):
        assert repr(compiled_cls(fetch, name=name)) == repr(python_cls(fetch, name=name))


# ---------------------------------------------------------------- failures

# (args, kwargs): validation errors come from the shared module, so the messages match too.
BAD_CONSTRUCTOR_ARGUMENTS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((None,), {}),
    ((42,), {"name": "users"}),
    ((fetch,), {"max_batch_size": 0}),
    ((fetch,), {"max_batch_size": -3, "name": "users"}),
    ((fetch,), {"max_batch_size": 1.5}),
    ((fetch,), {"max_batch_size": "3"}),
    ((fetch,), {"max_batch_size": True}),
    ((fetch,), {"cache": 1}),
    ((fetch,), {"cache": None}),
    ((fetch,), {"cache_map": object()}),
    ((fetch,), {"cache_map": []}),
    ((fetch,), {"cache_key_fn": "id"}),
    ((fetch,), {"name": 3}),
    ((fetch,), {"loop": "loop"}),
]

# Argument-parsing errors: the same type; the wording is the interpreter's or Cython's.
BAD_CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((fetch, None, True, None, None, None), {}),
    ((fetch,), {"unknown": 1}),
    ((), {}),
    ((fetch,), {"load_fn": fetch}),
]


@pytest.mark.parametrize(("args", "kwargs"), BAD_CONSTRUCTOR_ARGUMENTS)
def test_same_constructor_errors(
    compiled_cls: type, python_cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    compiled = outcome(lambda: compiled_cls(*args, **kwargs))
    python = outcome(lambda: python_cls(*args, **kwargs))
    assert python[0] in (TypeError, ValueError)
    assert compiled == python


@pytest.mark.parametrize(("args", "kwargs"), BAD_CALLS)
def test_same_argument_parsing_errors(
    compiled_cls: type, python_cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    compiled = outcome(lambda: compiled_cls(*args, **kwargs))
    python = outcome(lambda: python_cls(*args, **kwargs))
    assert python[0] is TypeError
    assert compiled[0] is TypeError, compiled


@pytest.mark.parametrize(
    "call",
    [
        lambda loader: loader.load(),
        lambda loader: loader.load(1, 2),
        lambda loader: loader.load_many([1], True),
        lambda loader: loader.load_many([1], unknown=True),
        lambda loader: loader.prime(1),
        lambda loader: loader.clear(),
        lambda loader: loader.prime_many(),
    ],
)
def test_same_method_argument_errors(compiled_cls: type, python_cls: type, call: Any) -> None:
    assert outcome(lambda: call(compiled_cls(fetch)))[0] is outcome(lambda: call(python_cls(fetch)))[0] is TypeError


def test_same_errors_without_a_loop(compiled_cls: type, python_cls: type) -> None:
    for action in ("load", "load_many"):
        compiled = outcome(lambda: getattr(compiled_cls(fetch, name="u"), action)([1]))
        python = outcome(lambda: getattr(python_cls(fetch, name="u"), action)([1]))
        assert python[0] is RuntimeError
        assert compiled == python


async def test_same_unhashable_key_errors(compiled_cls: type, python_cls: type) -> None:
    for call in (lambda loader: loader.load([1]), lambda loader: loader.load_many([1, [2]])):
        compiled = outcome(lambda: call(compiled_cls(fetch, name="u")))
        python = outcome(lambda: call(python_cls(fetch, name="u")))
        assert python[0] is TypeError
        assert compiled == python


async def _batch_error(cls: type, load_fn: Any) -> tuple[type[BaseException], str]:
    loader = cls(load_fn, name="users")
    (error,) = await asyncio.gather(loader.load_many(["a", "b"]), return_exceptions=True)
    assert isinstance(error, BaseException)
    return type(error), scrub(str(error))


def _returns(value: Any) -> Any:
    async def load_fn(keys: list[Any]) -> Any:
        return value

    return load_fn


def _plain(keys: list[Any]) -> list[Any]:
    return keys


@pytest.mark.parametrize(
    "load_fn",
    [_returns([1]), _returns([1, 2, 3]), _returns(None), _returns(7), _returns("ab"), _returns({}), _plain],
    ids=["short", "long", "None", "int", "str", "missing-key", "plain-def"],
)
async def test_same_bad_result_errors(compiled_cls: type, python_cls: type, load_fn: Any) -> None:
    assert await _batch_error(compiled_cls, load_fn) == await _batch_error(python_cls, load_fn)


async def test_same_loop_errors(compiled_cls: type, python_cls: type, spin: Any) -> None:
    messages = []
    for cls in (compiled_cls, python_cls):
        loader = cls(fetch, name="users")
        async with loader:
            with pytest.raises(RuntimeError) as info:
                await loader.__aenter__()
            messages.append(str(info.value))
    assert messages[0] == messages[1]


async def test_same_shutdown_error_group(compiled_cls: type, python_cls: type, spin: Any) -> None:
    results = []
    for cls in (compiled_cls, python_cls):
        started: list[int] = []

        async def stubborn(keys: list[int]) -> list[int]:
            started.append(1)
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                raise ValueError("cleanup") from None
            return keys  # pragma: no cover

        loader = cls(stubborn, name="users")
        future = loader.load(1)
        await spin(lambda: started)
        group = await loader.shutdown()
        assert future.done()
        results.append((type(group), str(group), [repr(error) for error in group.exceptions]))
    assert results[0] == results[1]

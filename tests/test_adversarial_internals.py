"""Issue 9 item 9: nothing Python code can reach crashes the interpreter. A subprocess calls every
private callable of each class and module with malformed arguments, and must exit normally."""

from __future__ import annotations

import subprocess
import sys

#: Pokes every "_"-named callable with garbage; prints each call first, so the last line before a
#: crash names the culprit. Awaitables that come back are driven briefly, then dropped.
POKE_SCRIPT = r"""
import asyncio, importlib, inspect, sys

module_name = sys.argv[1]
module = importlib.import_module(module_name)
DataLoader = module.DataLoader

GARBAGE = [
    (),
    (None,),
    ((object(), 1, "x"),),
    ([1, 2, 3],),
    (None, None, None),
    ((None, 1), [object()], (object(),)),
    ([(None, 0)], [1], [(object(), "x")]),
    ([], [], [], []),
]
# Object protocol hooks that take a class, not garbage; nothing of the loader runs in them.
NOT_POKED = {"__init_subclass__", "__subclasshook__"}


def say(text):
    print(text, flush=True)


async def fetch(keys):
    return list(keys)


async def drive(result):
    if not inspect.isawaitable(result):
        return

    async def wait_for_it():
        return await result

    try:
        await asyncio.wait_for(wait_for_it(), 0.2)
    except BaseException:
        pass


async def poke(target, label):
    for name in sorted(dir(target)):
        if not name.startswith("_") or name in NOT_POKED:
            continue
        try:
            attribute = getattr(target, name)
        except BaseException:
            continue
        if not callable(attribute):
            continue
        for arguments in GARBAGE:
            say(f"{label}.{name}{arguments!r}")
            try:
                result = attribute(*arguments)
            except BaseException:
                continue
            await drive(result)


async def use(loader, label):
    # A loader that went through the above must still fail cleanly, if at all.
    say(f"{label}: use afterwards")
    for action in (
        lambda: repr(loader),
        lambda: loader.load(1),
        lambda: loader.load_many([1, 2]),
        lambda: loader.prime(3, 3),
        lambda: loader.clear(3),
        lambda: loader.clear_all(),
        lambda: loader.shutdown(),
        lambda: getattr(loader, "_debug_state", lambda: None)(),
    ):
        try:
            result = action()
        except BaseException:
            continue
        await drive(result)


def private_module_objects():
    for name in sorted(vars(module)):
        value = vars(module)[name]
        if name.startswith("_") and not name.startswith("__") and getattr(value, "__module__", None) == module_name:
            yield name, value


async def main():
    for name in [name for name in dir(DataLoader) if name.startswith("_")]:
        loader = DataLoader(fetch, max_batch_size=2, name="poked")
        loader.load(0)  # something queued while it is poked
        await poke_one(loader, name)
        await use(loader, f"loader after {name}")
    await poke(DataLoader, "DataLoader")
    blank = DataLoader.__new__(DataLoader)  # __init__ never ran
    await use(blank, "uninitialized loader")
    await poke(blank, "uninitialized loader")
    for name, value in private_module_objects():
        if isinstance(value, type):
            await poke(value, name)
            try:
                instance = value.__new__(value)
            except BaseException:
                continue
            await poke(instance, f"uninitialized {name}")
            for method in [method for method in dir(instance) if not method.startswith("__")]:
                for arguments in GARBAGE:
                    say(f"uninitialized {name}.{method}{arguments!r}")
                    try:
                        await drive(getattr(instance, method)(*arguments))
                    except BaseException:
                        pass
        elif callable(value):
            for arguments in GARBAGE:
                say(f"{name}{arguments!r}")
                try:
                    await drive(value(*arguments))
                except BaseException:
                    pass


async def poke_one(loader, name):
    attribute = getattr(loader, name, None)
    if attribute is None or not callable(attribute) or name in NOT_POKED:
        return
    for arguments in GARBAGE:
        say(f"loader.{name}{arguments!r}")
        try:
            result = attribute(*arguments)
        except BaseException:
            continue
        await drive(result)


asyncio.run(main())
say("finished")
"""


def run_poke(module: str) -> subprocess.CompletedProcess[str]:
    # -P: the installed package is imported, never a source checkout in the working directory.
    return subprocess.run(
        [sys.executable, "-P", "-X", "faulthandler", "-c", POKE_SCRIPT, module],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_private_callables_never_crash_the_interpreter(loader_cls: type) -> None:
    completed = run_poke(loader_cls.__module__)
    last_lines = "\n".join(completed.stdout.splitlines()[-5:])
    assert completed.returncode == 0, (
        f"exit code {completed.returncode}; last calls:\n{last_lines}\nstderr:\n{completed.stderr[-3000:]}"
    )
    assert completed.stdout.splitlines()[-1] == "finished", last_lines

"""Issue 9 items 4 and 7: KeyboardInterrupt/SystemExit from a split batch on a busy loop, and other
BaseExceptions from load_fn, each in a subprocess (an interrupt must not disturb the test runner)."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from typing import Any

import pytest

try:
    import uvloop
except ImportError:
    uvloop = None

#: Runs every scenario on one loop kind for one class; prints one JSON object per scenario.
SCENARIOS_SCRIPT = r"""
import asyncio, gc, importlib, json, logging, re, sys

module_name, loop_name = sys.argv[1], sys.argv[2]
DataLoader = importlib.import_module(module_name).DataLoader


class Collected(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


asyncio_log = Collected()
logging.getLogger("asyncio").addHandler(asyncio_log)


class CustomBaseException(BaseException):
    pass


def new_loop():
    if loop_name == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def outcome(future):
    if not future.done():
        return ["pending"]
    if future.cancelled():
        return ["cancelled"]
    error = future.exception()
    if error is None:
        return ["value", future.result()]
    cause = error.__cause__
    return ["error", type(error).__name__, type(cause).__name__ if cause is not None else None, str(error)]


def busy_parts(loader):
    probe = getattr(loader, "_debug_state", None)
    if probe is not None:
        return {part: value for part, value in probe().items() if value}
    match = re.search(r"queued=(\d+) in_flight=(\d+)>$", repr(loader))
    return {part: int(value) for part, value in zip(("queued", "in_flight"), match.groups()) if int(value)}


async def spin():
    while True:
        await asyncio.sleep(0)


def finish(loop, report, loader, spinners):
    async def stop_spinners():
        for spinner in spinners:
            spinner.cancel()
        await asyncio.gather(*spinners, return_exceptions=True)

    async def fresh_load():
        return await asyncio.wait_for(loader.load_many([100, 101]), 5)

    loop.run_until_complete(stop_spinners())
    try:
        report["fresh"] = loop.run_until_complete(fresh_load())
    except BaseException as error:
        report["fresh"] = repr(error)
    report["busy_after_fresh"] = busy_parts(loader)
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    gc.collect()
    report["logged"] = list(asyncio_log.messages)
    asyncio_log.messages.clear()


def interrupt_from_a_split_batch(interrupt_type, suspends_first):
    # max_batch_size=2 splits keys 0..5 into [0, 1], [2, 3], [4, 5]; the middle one is interrupted
    # (in its first step, or after one suspension) on a loop kept busy by other tasks.
    loop = new_loop()
    calls = []

    async def load_fn(keys):
        calls.append(list(keys))
        if suspends_first:
            await asyncio.sleep(0)
        if 2 in keys and len(calls) <= 3:
            raise interrupt_type("from load_fn")
        await asyncio.sleep(0)
        return [key * 10 for key in keys]

    loader = DataLoader(load_fn, max_batch_size=2, name="interrupted")
    futures, spinners = [], []

    async def main():
        spinners.extend(asyncio.ensure_future(spin()) for _ in range(2))
        await asyncio.sleep(0)
        futures.extend(loader.load(key) for key in range(6))
        await asyncio.wait(futures, timeout=5)

    report = {}
    try:
        loop.run_until_complete(main())
        report["propagated"] = None
    except BaseException as error:
        report["propagated"] = type(error).__name__

    # The program caught the interrupt and keeps running the loop.
    async def settle():
        if futures:
            await asyncio.wait(futures, timeout=5)
        for _ in range(20):
            await asyncio.sleep(0)
        others = asyncio.all_tasks() - {asyncio.current_task(), *spinners}
        return sorted(task.get_name() for task in others)

    report["pending_tasks"] = loop.run_until_complete(settle())
    report["calls"] = calls
    report["outcomes"] = [outcome(future) for future in futures]
    report["busy"] = busy_parts(loader)
    finish(loop, report, loader, spinners)
    return report


def base_exception_from_load_fn(exception_type):
    loop = new_loop()
    calls = []

    async def load_fn(keys):
        calls.append(list(keys))
        await asyncio.sleep(0)
        if len(calls) == 1:
            raise exception_type("from load_fn")
        return [key * 10 for key in keys]

    loader = DataLoader(load_fn, name="raising")
    report = {}

    async def main():
        futures = [loader.load(1), loader.load(2), loader.load_many([2, 3])]
        await asyncio.wait(futures, timeout=5)
        for _ in range(20):
            await asyncio.sleep(0)
        report["outcomes"] = [outcome(future) for future in futures]
        others = asyncio.all_tasks() - {asyncio.current_task()}
        report["pending_tasks"] = sorted(task.get_name() for task in others)
        report["busy"] = busy_parts(loader)

    try:
        loop.run_until_complete(main())
        report["propagated"] = None
    except BaseException as error:
        report["propagated"] = type(error).__name__
    report["calls"] = calls
    finish(loop, report, loader, [])
    return report


SCENARIOS = {
    "KeyboardInterrupt-first-step": lambda: interrupt_from_a_split_batch(KeyboardInterrupt, False),
    "KeyboardInterrupt-after-a-suspension": lambda: interrupt_from_a_split_batch(KeyboardInterrupt, True),
    "SystemExit-first-step": lambda: interrupt_from_a_split_batch(SystemExit, False),
    "SystemExit-after-a-suspension": lambda: interrupt_from_a_split_batch(SystemExit, True),
    "CustomBaseException": lambda: base_exception_from_load_fn(CustomBaseException),
    "GeneratorExit": lambda: base_exception_from_load_fn(GeneratorExit),
}
for name, scenario in SCENARIOS.items():
    try:
        report = scenario()
    except BaseException as error:
        report = {"script_error": repr(error)}
    print(json.dumps({"scenario": name, **report}, default=repr), flush=True)
"""


@functools.cache
def run_scenarios(module: str, loop_name: str) -> dict[str, dict[str, Any]]:
    # -P: the installed package is imported, never a source checkout in the working directory.
    completed = subprocess.run(
        [sys.executable, "-P", "-c", SCENARIOS_SCRIPT, module, loop_name],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    reports = {}
    for line in completed.stdout.splitlines():
        if line.startswith("{"):
            report = json.loads(line)
            reports[report.pop("scenario")] = report
    reports["_process"] = {"returncode": completed.returncode, "stderr": completed.stderr[-3000:]}
    return reports


def scenario_report(loader_cls: type, loop_name: str, scenario: str) -> dict[str, Any]:
    if loop_name == "uvloop" and uvloop is None:
        pytest.skip("uvloop is not installed on this platform")
    reports = run_scenarios(loader_cls.__module__, loop_name)
    process = reports["_process"]
    assert process["returncode"] == 0, process
    assert scenario in reports, process
    report = reports[scenario]
    assert "script_error" not in report, report
    return report


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
@pytest.mark.parametrize("when", ["first-step", "after-a-suspension"])
@pytest.mark.parametrize("interrupt", ["KeyboardInterrupt", "SystemExit"])
def test_interrupt_from_a_split_batch_leaves_no_waiter_pending(
    loader_cls: type, loop_name: str, when: str, interrupt: str
) -> None:
    report = scenario_report(loader_cls, loop_name, f"{interrupt}-{when}")
    assert report["propagated"] == interrupt, report
    # [4, 5] may fail without a load_fn call; the batches that did start started in order.
    assert report["calls"][:2] == [[0, 1], [2, 3]], report
    outcomes = report["outcomes"]
    assert len(outcomes) == 6, report
    for key, key_outcome in enumerate(outcomes):
        if key in (2, 3):  # the interrupted batch's keys fail, caused by the interrupt
            assert key_outcome[:3] == ["error", "RuntimeError", interrupt], report
        else:  # the other sub-batches delivered, or failed the same way
            assert key_outcome in (["value", key * 10],) or key_outcome[:3] == ["error", "RuntimeError", interrupt], (
                report
            )
    assert report["pending_tasks"] == [], report
    assert report["busy"] == {}, report
    assert report["fresh"] == [1000, 1010], report
    assert report["busy_after_fresh"] == {}, report


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
@pytest.mark.parametrize("exception", ["CustomBaseException", "GeneratorExit"])
def test_other_base_exceptions_fail_every_waiter_quietly(loader_cls: type, loop_name: str, exception: str) -> None:
    report = scenario_report(loader_cls, loop_name, exception)
    assert report["propagated"] is None, report
    assert report["calls"][0] == [1, 2, 3], report
    for key_outcome in report["outcomes"]:
        assert key_outcome[:3] == ["error", "RuntimeError", exception], report
    assert report["pending_tasks"] == [], report
    assert report["busy"] == {}, report
    assert report["logged"] == [], report
    assert report["fresh"] == [1000, 1010], report
    assert report["busy_after_fresh"] == {}, report

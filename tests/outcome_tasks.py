"""Tasks for tests/test_outcomes.py: one for each way Huey can end a job."""
from __future__ import annotations

import os
import sys
import threading
import time

import tq

LOCK = "outcome-test-lock"
_lock = threading.Lock()
handled: dict[str, list] = {}  # handler key -> what each call received (thread workers)


@tq.task()
def echo_when(when, *, until=None):
    return [when.isoformat(), until.total_seconds() if until is not None else None]


@tq.task()
def under_lock() -> str:
    with tq.current().queue("default").lock_task(LOCK):
        return "ran"


@tq.task(retries=1)
def under_lock_with_retry() -> str:
    with tq.current().queue("default").lock_task(LOCK):
        return "ran"


@tq.task(retries=2)
def fail_with_retries(message: str = "broken") -> None:
    raise ValueError(message)


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this exception cannot be printed")


@tq.task(retries=1)
def fail_unprintably() -> None:
    raise UnprintableError()


@tq.task()
def on_failure(key: str, error) -> str:
    with _lock:
        handled.setdefault(key, []).append(error)
    return type(error).__name__


@tq.task()
def failing_handler(key: str, error) -> None:
    with _lock:
        handled.setdefault(key, []).append(error)
    raise RuntimeError("the error handler itself failed")


@tq.task(retries=2)
def quick(value: int = 0) -> int:
    return value


@tq.task()
def exits() -> None:
    sys.exit(3)


@tq.task()
def nap(seconds: float = 30.0) -> float:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return seconds


@tq.task()
def first_naps(path: str) -> str:
    """The first attempt naps until `path`.go exists (60 s at most); a later
    attempt returns at once. A job that is surely still running when its
    consumer stops, however slow the machine, and quick when run again."""
    if not os.path.exists(path):
        open(path, "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(path + ".go") and time.monotonic() < deadline:
            time.sleep(0.05)
    return path


@tq.task()
def pid() -> int:
    return os.getpid()


@tq.task()
def touch(path: str) -> str:
    with open(path, "w") as handle:
        handle.write("ran")
    return path


# --- results (tests/test_results.py) ---------------------------------------------------

@tq.task()
def give(value=None):
    """Returns its argument: a dict, list, str, None or int comes back as the result."""
    return value


@tq.task(retries=2)
def give_special(kind: str, size: int = 0):
    """Results JSON cannot carry or history will not keep."""
    if kind == "nan":
        return {"x": float("nan")}
    if kind == "inf":
        return [float("inf")]
    if kind == "set":
        return {1, 2}
    if kind == "int_keys":
        return {1: "a"}
    if kind == "big":
        return "x" * size
    if kind == "deep":
        value: list = []
        for _ in range(size):
            value = [value]
        return value
    raise ValueError(f"no such kind {kind}")


@tq.task()
def sleep_then_give(seconds: float, value=None):
    time.sleep(seconds)
    return value


@tq.task(priority="high")
def urgent_by_default() -> str:
    """A task whose default priority is a name (tests/test_priority_names.py)."""
    return "ok"


@tq.task()
def describe(*args, **kwargs) -> str:
    """What the task received, types and all (tests/test_huey_api_on_tq.py)."""
    return repr((args, kwargs))

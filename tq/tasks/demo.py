"""Demo tasks: enough to see every state a job can reach."""
from __future__ import annotations

import random
import time
from typing import Any

import tq


@tq.task()
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Return what it was given; the smallest job that succeeds."""
    return {"args": list(args), "kwargs": kwargs}


@tq.task()
def sleep(seconds: float = 1.0) -> float:
    """Sleep in small steps, so `tq cancel` stops it within a tenth of a second."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        tq.check_cancel()
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
    return seconds


@tq.task(retries=3)
def flaky(p_fail: float = 0.5) -> str:
    """Fail with probability p_fail; with retries it usually succeeds in the end."""
    if random.random() < p_fail:
        raise RuntimeError(f"flaky failure (p_fail={p_fail})")
    return "ok"


@tq.task()
def fail(message: str = "this job always fails") -> None:
    """Always raise, to see a failed job with its traceback."""
    raise RuntimeError(message)


@tq.task(timeout=1)
def slow(seconds: float = 5.0) -> float:
    """Run past its 1 s timeout (plain sleep: only a process worker can stop it)."""
    time.sleep(seconds)
    return seconds

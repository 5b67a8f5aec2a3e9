"""Tasks used by the tests (listed in [tasks] modules by the tests that need them)."""
from __future__ import annotations

import os
import threading
import time

import tq

_calls: dict[str, int] = {}
_lock = threading.Lock()


def calls(job_id: str) -> int:
    with _lock:
        return _calls.get(job_id, 0)


@tq.task(retries=3)
def fail_twice_then_succeed() -> str:
    job_id = tq.current_job_id()
    with _lock:
        _calls[job_id] = _calls.get(job_id, 0) + 1
        count = _calls[job_id]
    if count <= 2:
        raise ValueError(f"failure number {count}")
    return "ok"


@tq.task(retries=1)
def always_fail() -> None:
    raise ValueError("always")


@tq.task()
def record_start(index: int) -> int:
    return index


@tq.task(retries=2)
def fail_first_attempt_if(fail: bool) -> None:
    """Load test: a chosen share of jobs fails once, then succeeds on retry."""
    if fail and tq.current_attempt() == 1:
        raise RuntimeError("planned first-attempt failure")


@tq.task()
def log_run(path: str, seconds: float = 0.0) -> None:
    """Appends the job id to `path` each time it runs (an execution log that
    several processes share: O_APPEND writes of one short line do not mix)."""
    with open(path, "a") as log:
        log.write(tq.current_job_id() + "\n")
    time.sleep(seconds)


@tq.task()
def wait_for_file(path: str, timeout: float = 60.0) -> None:
    """Runs until `path` exists: a job that is running for as long as the test
    needs, then finishes when the test says so (fails after `timeout`)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.05)

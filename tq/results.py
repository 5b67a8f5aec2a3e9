"""`tq.result(job_id)`: a job's return value in Python, waiting for it if need be.

A task's return value is kept with its job in history (records.result_json),
so any process that reaches the history database can ask for it by id, long
after the worker that ran the job is gone, until retention prunes the job.

What it returns or raises, and why:
  - succeeded: the value the task returned (decoded JSON: a dict, list, str,
    number, bool or None);
  - failed, canceled or expired: JobFailed, carrying the job's id, state and
    error (type, message, traceback): the caller's `except` sees why, in the
    terms tq show gives;
  - requeued: the job was retired for a copy (`tq requeue`), so the answer is
    the copy's (followed to the newest copy): an operator's requeue of a failed
    job gives the caller the value once the copy runs;
  - still running when `timeout` seconds have passed: ResultTimeout (a
    TimeoutError), carrying the id and the state it was in; timeout=None waits
    as long as it takes;
  - an id history does not know: UnknownJob (a KeyError), once it has stayed
    unknown for a short grace (queries.unknown_jobs: a job submitted a moment
    ago may still be on its way to history).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tq.runtime import Runtime

MAX_COPIES = 100  # requeued copies followed at most (a requeue loop cannot spin for ever)


class UnknownJob(KeyError):
    """History has no job with this id (never submitted here, or pruned)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id

    def __str__(self) -> str:  # KeyError's own str() is the repr of its argument
        return f"no job {self.job_id!r} in history"


class JobFailed(Exception):
    """The job ended without a value: failed, canceled or expired."""

    def __init__(self, job_id: str, state: str, error_type: str, error_message: str,
                 traceback: str) -> None:
        super().__init__(f"job {job_id} {state}: {error_type}: {error_message}"
                         if error_type else f"job {job_id} {state}")
        self.job_id = job_id
        self.state = state
        self.error_type = error_type
        self.error_message = error_message
        self.traceback = traceback


class ResultTimeout(TimeoutError):
    """The job had not ended when the timeout passed; it may still end later."""

    def __init__(self, job_id: str, timeout: float, state: str) -> None:
        super().__init__(f"job {job_id} still {state} after {timeout:g} s")
        self.job_id = job_id
        self.timeout = timeout
        self.state = state


def result(job_id: str, timeout: float | None = None, *, runtime: Runtime | None = None,
           poll: float = 1.0) -> Any:
    """The return value of job `job_id`, once it has ended (see the module doc
    for what is raised instead). `timeout`: seconds to wait at most (None: no
    limit, 0: do not wait); `poll`: the longest pause between looks."""
    from tq import queries
    from tq.runtime import current

    runtime = runtime or current()
    deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
    for _ in range(MAX_COPIES):
        if queries.unknown_jobs(runtime, [job_id]):  # catch_up, and a grace period
            raise UnknownJob(job_id)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        ended = queries.wait_jobs(runtime, [job_id], left, poll=poll).get(job_id)
        if ended is None:
            latest = queries.job_detail(runtime, job_id)
            raise ResultTimeout(job_id, timeout or 0.0,
                                latest["state"] if latest else "unknown")
        if ended["state"] == "succeeded":
            return ended["result"]
        if ended["state"] == "requeued" and ended["requeued_to"]:
            job_id = ended["requeued_to"][-1]
            continue
        raise JobFailed(job_id, ended["state"], ended.get("error_type") or "",
                        ended.get("error_message") or "", ended.get("traceback") or "")
    raise JobFailed(job_id, "requeued", "Requeued",
                    f"requeued more than {MAX_COPIES} times", "")


__all__ = ["JobFailed", "ResultTimeout", "UnknownJob", "result"]

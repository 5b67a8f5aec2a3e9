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
  - an id history does not know: UnknownJob (a KeyError), once neither history
    nor any outbox holds it (queries.unknown_jobs: a job submitted a moment ago
    may still be on its way to history, in a consumer's writer).

JobFailed is also Huey's TaskException and ResultTimeout also Huey's
ResultTimeout, so code written for Huey's `Result.get()` catches them as it
did. JobHandle is that `Result` for a job on tq's own queues: what TqHuey's
`enqueue` returns (a task called, `huey.enqueue`, a `.then()` pipeline's
ResultGroup), reading the value with `result` above, so there is one way of
waiting. It differs from Huey's in two ways a caller can see: reading a
value does not consume it (history keeps it: `preserve` changes nothing),
and a job enqueued through Huey's API has no history row until a worker
starts it, so to a handle an id history does not know yet is "not ended".
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from huey.api import Result
from huey.constants import EmptyData
from huey.exceptions import ResultTimeout as HueyResultTimeout
from huey.exceptions import TaskException
from huey.utils import Error

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


class JobFailed(TaskException):
    """The job ended without a value: failed, canceled or expired. Also Huey's
    TaskException, its `metadata` the keys Huey fills (`error` in the form of
    Huey's repr, from the text history keeps: "ValueError('disk full')")."""

    def __init__(self, job_id: str, state: str, error_type: str, error_message: str,
                 traceback: str) -> None:
        text = (f"job {job_id} {state}: {error_type}: {error_message}"
                if error_type else f"job {job_id} {state}")
        metadata = {"error": f"{error_type}({error_message!r})" if error_type else state,
                    "traceback": traceback, "task_id": job_id, "retries": 0}
        super().__init__(metadata, text)
        self.job_id = job_id
        self.state = state
        self.error_type = error_type
        self.error_message = error_message
        self.traceback = traceback

    def __str__(self) -> str:  # TaskException's is metadata["error"] alone
        return str(self.args[0])


class ResultTimeout(TimeoutError, HueyResultTimeout):
    """The job had not ended when the timeout passed; it may still end later."""

    def __init__(self, job_id: str, timeout: float, state: str) -> None:
        super().__init__(f"job {job_id} still {state} after {timeout:g} s")
        self.job_id = job_id
        self.timeout = timeout
        self.state = state


def result(job_id: str, timeout: float | None = None, *, runtime: Runtime | None = None,
           poll: float = 1.0, enqueued: bool = False) -> Any:
    """The return value of job `job_id`, once it has ended (see the module doc
    for what is raised instead). `timeout`: seconds to wait at most (None: no
    limit, 0: do not wait); `poll`: the longest pause between looks;
    `enqueued`: the caller enqueued the job, so an id history does not know
    yet is a job not started yet, not an UnknownJob (JobHandle)."""
    from tq import queries
    from tq.runtime import current

    runtime = runtime or current()
    deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
    for _ in range(MAX_COPIES):
        if not enqueued and queries.unknown_jobs(runtime, [job_id]):
            raise UnknownJob(job_id)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        ended = queries.wait_jobs(runtime, [job_id], left, poll=poll).get(job_id)
        if ended is None:
            latest = queries.job_detail(runtime, job_id)
            raise ResultTimeout(job_id, timeout or 0.0, latest["state"] if latest else
                                "queued" if enqueued else "unknown")
        if ended["state"] == "succeeded":
            return ended["result"]
        if ended["state"] == "requeued" and ended["requeued_to"]:
            job_id = ended["requeued_to"][-1]
            enqueued = False  # a copy is in history from its requeue on
            continue
        raise JobFailed(job_id, ended["state"], ended.get("error_type") or "",
                        ended.get("error_message") or "", ended.get("traceback") or "")
    raise JobFailed(job_id, "requeued", "Requeued",
                    f"requeued more than {MAX_COPIES} times", "")


class JobHandle(Result):
    """Huey's Result for a job on tq's queues, read from history (module doc).
    `get()` as Huey's: the value; None when not ended and not blocking;
    ResultTimeout when blocking past `timeout`; JobFailed (a TaskException)
    when the job failed, was canceled or expired. The outcome is kept once
    read (`reset()` forgets it), as Huey's Result does."""

    def __init__(self, huey: Any, task: Any) -> None:
        super().__init__(huey, task)
        self._result: Any = EmptyData
        self._failure: JobFailed | None = None
        self._timed_out: ResultTimeout | None = None

    def _look(self, timeout: float | None, poll: float = 1.0) -> Any:
        """The outcome once ended (the value, or Huey's Error for a failure),
        else EmptyData after `timeout` seconds (0: one look)."""
        if self._result is EmptyData:
            try:
                self._result = result(self.id, timeout, runtime=self.huey.runtime, poll=poll,
                                      enqueued=True)
            except ResultTimeout as exc:
                self._timed_out = exc
                return EmptyData
            except JobFailed as exc:
                self._failure = exc
                self._result = Error(exc.metadata)
        return self._result

    def _get(self, preserve: bool = False) -> Any:  # what is_ready and as_completed ask
        return self._look(0)

    def get_raw_result(self, blocking: bool = False, timeout: float | None = None,
                       backoff: float = 1.15, max_delay: float = 1.0,
                       revoke_on_timeout: bool = False, preserve: bool = False) -> Any:
        outcome = self._look(timeout if blocking else 0, poll=max_delay)
        if outcome is not EmptyData:
            return outcome
        if not blocking:
            return None
        if revoke_on_timeout:
            self.revoke()
        raise self._timed_out or ResultTimeout(self.id, timeout or 0.0, "queued")

    def get(self, blocking: bool = False, timeout: float | None = None,
            backoff: float = 1.15, max_delay: float = 1.0, revoke_on_timeout: bool = False,
            preserve: bool = False) -> Any:
        outcome = self.get_raw_result(blocking, timeout, backoff, max_delay,
                                      revoke_on_timeout, preserve)
        if isinstance(outcome, Error) and self._failure is not None:
            raise self._failure
        return outcome

    def reset(self) -> None:
        self._result = EmptyData
        self._failure = None


__all__ = ["JobFailed", "JobHandle", "ResultTimeout", "UnknownJob", "result"]

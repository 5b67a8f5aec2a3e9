"""History records: their shapes, and the one place they are built.

A record says what happened to a job or to one attempt of it; the history
writer (tq/history.py) upserts it. Its wire format is a JSON object:
{"kind": "job", "id", "state", "seq", ...columns} or {"kind": "attempt",
"job_id", "attempt", ...columns} (audit entries, the third kind, are built by
tq/audit.py), encoded for the outboxes by serializer.encode_record (signed
by RecordSigner) and read back by serializer.decode_record. Invariants the
builders keep, which the writer relies on:

  - `seq` is models.state_seq(state, attempt): the writer keeps the state of
    the record with the highest seq, so records may arrive in any order;
  - a column a record does not carry and a column it carries as null mean the
    same ("unknown here"): nothing is ever cleared by a record, so a builder
    leaves out what it does not know;
  - error columns come together, as `error()` makes them: an empty string is
    a value (it replaces an earlier error: `no_error()` for an attempt that
    succeeded), a column left out keeps what is stored.

They are TypedDicts, not dataclasses: a record is built on the hot paths
(a submit builds one per job, a worker about four), and a TypedDict costs
what the dict it is does; a frozen dataclass cost 60-70% more to build and
encode (100k records: measured with timeit).
"""
from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

from tq.models import state_seq

Outcome = Literal["succeeded", "failed", "canceled", "interrupted", "lost"]


class Error(TypedDict):
    error_type: str
    error_message: str
    traceback: NotRequired[str]


class JobRecord(TypedDict):
    kind: Literal["job"]
    id: str
    state: str
    seq: int
    # Identity: filled once, never changed (the writer keeps the first it sees).
    queue: NotRequired[str]
    task: NotRequired[str]
    args: NotRequired[str]  # tagged JSON, as the message carries them
    kwargs: NotRequired[str]
    priority: NotRequired[int]
    max_retries: NotRequired[int | None]
    enqueued_at: NotRequired[float | None]
    requeued_from: NotRequired[str | None]
    # State: follows the record with the highest seq.
    attempts: NotRequired[int]
    eta: NotRequired[float]
    started_at: NotRequired[float]
    finished_at: NotRequired[float]
    updated_at: NotRequired[float]
    worker: NotRequired[str]
    error_type: NotRequired[str]
    error_message: NotRequired[str]
    traceback: NotRequired[str]


class AttemptRecord(TypedDict):
    kind: Literal["attempt"]
    job_id: str
    attempt: int
    worker: NotRequired[str | None]
    started_at: NotRequired[float | None]
    finished_at: NotRequired[float]
    outcome: NotRequired[Outcome]
    error_type: NotRequired[str]
    error_message: NotRequired[str]
    traceback: NotRequired[str]


Record = JobRecord | AttemptRecord


def error(error_type: str, message: str, traceback: str | None = "") -> Error:
    """The error columns. traceback None leaves it out: a job's earlier
    traceback is kept ("" would clear it, as a new attempt's does)."""
    if traceback is None:
        return {"error_type": error_type, "error_message": message}
    return {"error_type": error_type, "error_message": message, "traceback": traceback}


def no_error() -> Error:
    """The error columns of an attempt that succeeded."""
    return {"error_type": "", "error_message": "", "traceback": ""}


# --- job records ------------------------------------------------------------------

def job(job_id: str, state: str, attempt: int, *, queue: str, task: str, args: str,
        kwargs: str, priority: int, max_retries: int | None, enqueued_at: float | None,
        requeued_from: str | None, updated_at: float, eta: float | None = None,
        started_at: float | None = None, finished_at: float | None = None,
        worker: str | None = None, failure: Error | None = None) -> JobRecord:
    """A job's whole record: its identity, and its state after `attempt`
    attempts (a state change of a job tq has as a Huey task)."""
    record: JobRecord = {
        "kind": "job", "id": job_id, "state": state, "seq": state_seq(state, attempt),
        "queue": queue, "task": task, "args": args, "kwargs": kwargs, "priority": priority,
        "max_retries": max_retries, "enqueued_at": enqueued_at,
        "requeued_from": requeued_from, "attempts": attempt, "updated_at": updated_at,
    }
    if eta is not None:
        record["eta"] = eta
    if started_at is not None:
        record["started_at"] = started_at
    if finished_at is not None:
        record["finished_at"] = finished_at
    if worker is not None:
        record["worker"] = worker
    if failure is not None:
        record.update(failure)
    return record


def canceled(job_id: str, attempts: int, at: float) -> JobRecord:
    """An operator canceled a job that was not running (`tq cancel`)."""
    record: JobRecord = {"kind": "job", "id": job_id, "state": "canceled",
                         "seq": state_seq("canceled", attempts), "finished_at": at,
                         "updated_at": at}
    record.update(error("Canceled", "canceled by operator", None))
    return record


def requeued(job_id: str, attempts: int) -> JobRecord:
    """A job retired by `tq requeue`: its copy runs under a new id."""
    return {"kind": "job", "id": job_id, "state": "requeued",
            "seq": state_seq("requeued", attempts)}


# --- attempt records --------------------------------------------------------------

def attempt_started(job_id: str, attempt: int, worker: str, started_at: float
                    ) -> AttemptRecord:
    return {"kind": "attempt", "job_id": job_id, "attempt": attempt, "worker": worker,
            "started_at": started_at}


def attempt_ended(job_id: str, attempt: int, worker: str | None, started_at: float | None,
                  finished_at: float, outcome: Outcome, failure: Error | None
                  ) -> AttemptRecord:
    """How an attempt ended; `failure` is no_error() for one that succeeded
    (None: not known, the columns are left out)."""
    if failure is None:
        return {"kind": "attempt", "job_id": job_id, "attempt": attempt, "worker": worker,
                "started_at": started_at, "finished_at": finished_at, "outcome": outcome}
    return {"kind": "attempt", "job_id": job_id, "attempt": attempt, "worker": worker,
            "started_at": started_at, "finished_at": finished_at, "outcome": outcome,
            **failure}

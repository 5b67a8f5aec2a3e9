"""History records: their shapes, and the one place they are built.

A record says what happened to a job or to one attempt of it; the history
writer (tq/history.py) upserts it. Its wire format is a JSON object:
{"kind": "job", "id", "state", "seq", ...columns} or {"kind": "attempt",
"job_id", "attempt", ...columns} (audit entries, the third kind, are built by
tq/audit.py), encoded for the outboxes by serializer.encode_record (signed
by RecordSigner) and read back by serializer.decode_record. Invariants the
builders keep, which the writer relies on:

  - `seq` is models.state_seq(state, attempt): the writer keeps the state of
    the record with the highest seq, so records may arrive in any order
    (`run_now`'s record: state_seq(..., moved=True));
  - a column a record does not carry and a column it carries as null mean the
    same ("unknown here"): nothing is ever cleared by a record, so a builder
    leaves out what it does not know;
  - error columns come together, as `error()` makes them: an empty string is
    a value (it replaces an earlier error: `no_error()` for an attempt that
    succeeded), a column left out keeps what is stored.

A job's result (`succeeded` records only) is `result_json(value, limit)`: the
one encoder of results, strict JSON text (no NaN or Infinity, which JSON
cannot carry and an HTTP client could not parse; plain values, no tq tags,
so what a task returns is what every reader gets), at most `[history]
result_limit` UTF-8 bytes and MAX_DEPTH levels deep. What it refuses fails
the job with the reason (ResultRefused), so nothing is ever silently lost.

They are TypedDicts, not dataclasses: a record is built on the hot paths
(a submit builds one per job, a worker about four), and a TypedDict costs
what the dict it is does; a frozen dataclass cost 60-70% more to build and
encode (100k records: measured with timeit).
"""
from __future__ import annotations

import json
from typing import Any, Literal, NotRequired, TypedDict

from tq.jobspec import MAX_DEPTH
from tq.models import state_seq
from tq.strictjson import depth_exceeds

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
    result: NotRequired[str]  # result_json(): JSON text; a succeeded job's only


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


# --- results ----------------------------------------------------------------------

class ResultRefused(ValueError):
    """A task's return value history will not keep; the message says why in one line."""


# One encoder built once (json.dumps builds one per call with options).
_RESULT_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False,
                                   separators=(",", ":"))


def _kb(size: int, up: bool = False) -> str:
    """4,097 bytes; 68 KB (`up`: rounded up, so a size over a limit never reads as it)."""
    if size < 10 * 1024:
        return f"{size:,} bytes"
    return f"{(-(-size // 1024) if up else size // 1024):,} KB"


def result_json(value: Any, limit: int) -> str:
    """A task's return value as the JSON text history keeps, or ResultRefused:
    not JSON (a set, an object, NaN/Infinity, a non-string key JSON would
    coerce), deeper than MAX_DEPTH, or over `limit` UTF-8 bytes."""
    try:
        text = _RESULT_ENCODER.encode(_checked_keys(value, 0))
    except RecursionError:
        raise ResultRefused(f"result is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        if "float" in str(exc) or "Out of range" in str(exc):
            raise ResultRefused("result is not JSON: NaN and Infinity have no JSON form "
                                "(return None or a string instead)") from None
        raise ResultRefused(f"result is not JSON: {str(exc).splitlines()[0][:200]}") from None
    except TypeError as exc:
        raise ResultRefused(f"result is not JSON: {str(exc).splitlines()[0][:200]}") from None
    if depth_exceeds(text, MAX_DEPTH):
        raise ResultRefused(f"result is nested deeper than {MAX_DEPTH} levels")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise ResultRefused(f"result is {_kb(size, up=True)}, over [history] result_limit "
                            f"{_kb(limit)}")
    return text


def _checked_keys(value: Any, depth: int) -> Any:
    """`value`, or TypeError for a mapping key JSON would turn into a string
    ({1: "a"} would come back as {"1": "a"}: not what the task returned)."""
    if depth > MAX_DEPTH:
        raise RecursionError
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"keys must be strings, not {type(key).__name__}")
            _checked_keys(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _checked_keys(item, depth + 1)
    return value


# --- job records ------------------------------------------------------------------

def job(job_id: str, state: str, attempt: int, *, queue: str, task: str, args: str,
        kwargs: str, priority: int, max_retries: int | None, enqueued_at: float | None,
        requeued_from: str | None, updated_at: float, eta: float | None = None,
        started_at: float | None = None, finished_at: float | None = None,
        worker: str | None = None, failure: Error | None = None,
        result: str | None = None) -> JobRecord:
    """A job's whole record: its identity, and its state after `attempt`
    attempts (a state change of a job tq has as a Huey task). `result`:
    result_json() of a succeeded job's return value."""
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
    if result is not None:
        record["result"] = result
    return record


def canceled(job_id: str, attempts: int, at: float) -> JobRecord:
    """An operator canceled a job that was not running (`tq cancel`)."""
    record: JobRecord = {"kind": "job", "id": job_id, "state": "canceled",
                         "seq": state_seq("canceled", attempts), "finished_at": at,
                         "updated_at": at}
    record.update(error("Canceled", "canceled by operator", None))
    return record


def run_now(job_id: str, attempts: int, retrying: bool, at: float) -> JobRecord:
    """An operator moved a job off the schedule (`tq run-now`) after `attempts`
    attempts: due `at`, now. A scheduled job becomes `queued`; a retrying one
    stays `retrying` (its next attempt is still its next), its eta now. Ranked
    above the scheduled and retrying records it replaces, below its next
    attempt's running record (models.state_seq, moved=True). Merged over the
    job's whole record by a caller that has one."""
    state = "retrying" if retrying else "queued"
    return {"kind": "job", "id": job_id, "state": state,
            "seq": state_seq(state, attempts, moved=True),
            "attempts": attempts, "eta": at, "updated_at": at}


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

"""The storage contract: what every queue backend implements, as Protocols.

Two backends (redis.py, sqlite.py) implement the same two interfaces, and
nothing above this package may rely on anything else of theirs:

  - QueueStorage: one queue. Huey's storage (its BaseStorage: enqueue,
    dequeue, queue_size, the schedule, the flag store) plus what tq adds
    beside the queue: the durable in-flight record of a claimed job (claim,
    settle, release, put_back), tasks held while their type is paused, the
    quarantine of unreadable messages, and enqueues that carry their history
    record (and, for submit_once, a dedupe marker) in the same atomic step.
  - Control: the state shared by every queue and every consumer, on the same
    backend because every consumer on every machine already talks to it:
    pause flags, heartbeats, cancel requests, periodic-tick claims and run
    info, loss counters, the outboxes of history records, and reading and
    purging the quarantine.

Invariants every implementation keeps (tests/test_storage_contract.py checks
that both classes have every method here with the same signature; the
behaviour is checked by the tests that run on both backends):

  - "Atomic" means one Lua script or MULTI on Redis, one transaction on
    SQLite: another client sees all of the step or none of it.
  - Durable means in the backend, not in this process's memory: a consumer
    killed right after a method returns loses nothing that method wrote.
  - Liveness is judged by the backend's clock only (Control.now): heartbeats
    and in-flight records carry the time the backend stamped on them, never
    the writing host's. Other expiries (dedupe markers, cancel requests, tick
    claims) need no agreement between hosts and may use either.
  - Whatever is read back is parsed entry by entry (tq/control.py): junk
    written into the backend by hand is reported once and skipped, or for an
    in-flight entry, returned as Malformed; it never raises.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypedDict

DEDUPE_TTL = 7 * 86400
SUBMITTED = "@submitted"  # outbox owner of submitted jobs' first records; never "alive"
WAKE_MAX = 16  # wake-up tokens kept per queue: at most this many idle workers woken at once
QUARANTINE_LIMIT = 10_000  # entries kept; the oldest go first
QUARANTINE_DATA = 65_536  # bytes of a message kept (its full size is recorded)

# An in-flight record's handle: the queue member on Redis (bytes), a uuid on
# SQLite (str). Only ever passed back to the backend that handed it out.
Token = bytes | str


@dataclass
class Inflight:
    token: Token
    data: bytes
    priority: int
    worker: str
    taken: float  # when it was claimed, by the backend's clock


@dataclass
class Malformed:
    """An entry of the in-flight records that no claim wrote: set aside by
    recovery (to the quarantine), skipped by every other reader."""
    token: Token
    data: bytes
    reason: str


@dataclass
class Finished:
    """What a worker still owes the backend for the jobs it finished: their
    in-flight records to drop, their outcome records (JSON) for its outbox and
    the Huey flags (revocations) to clear. Settled in the same atomic step as
    the worker's next claim, so a job costs one round trip here, not three."""
    tokens: list[Token] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.tokens or self.records or self.flags)

    def clear(self) -> None:
        self.tokens.clear()
        self.records.clear()
        self.flags.clear()


@dataclass
class Claimed:
    token: Token
    data: bytes
    flags: bool  # the queue's Huey flag store (revocations, locks) is not empty


class QuarantineEntry(TypedDict):
    """One quarantined message as both backends return it."""
    id: int
    queue: str | None
    worker: str | None
    at: float | None
    reason: str | None
    size: int  # of the whole message; `data` keeps at most QUARANTINE_DATA bytes
    data: bytes


def quarantine_entry(entry_id: int, queue: str | None, worker: str | None, at: float | None,
                     reason: str | None, size: int | None, data: bytes) -> QuarantineEntry:
    """One quarantined message as both backends return it."""
    return {"id": int(entry_id), "queue": queue, "worker": worker, "at": at, "reason": reason,
            "size": size if size is not None else len(data), "data": data}


class QueueStorage(Protocol):
    """One queue of one backend: Huey's storage plus tq's in-flight records.

    A claimed job is never only in a worker's memory: from the claim until its
    outcome is handed over it has an in-flight record naming its consumer
    (that is the at-least-once guarantee, see recovery.py)."""

    queue: str  # the tq queue name (Huey's `name` is "<prefix>.<queue>")

    # --- enqueue: message and history record in one step ----------------------
    def enqueue_many(self, items: list[tuple[bytes, int]], dedupe_ids: list[str] | None = None,
                     records: list[str] | None = None) -> list[bool]:
        """Enqueue (message, priority) pairs in FIFO order within a priority,
        each job's history record (JSON, aligned with items) to the SUBMITTED
        outbox, all in one atomic step. With dedupe_ids, a job whose id was
        enqueued within DEDUPE_TTL is skipped, record and all (False in the
        result). Wakes idle workers where the backend can."""
        ...

    def submit_once(self, jobs: list[tuple[str, bytes, int, datetime | None, str | None]]
                    ) -> list[bool]:
        """Enqueue (job id, message, priority, eta or None, record) jobs, each
        only if no job with its id was submitted within DEDUPE_TTL of its eta
        (the marker is set in the same step, so "exists" is decided
        atomically); a job with an eta goes to the schedule. One atomic step
        for the batch; True per job enqueued."""
        ...

    def schedule_many(self, items: list[tuple[bytes, datetime]], records: list[str] | None = None
                      ) -> None:
        """Schedule (message, naive UTC eta) pairs, `records` to the SUBMITTED
        outbox, in one atomic step (no items: the records alone)."""
        ...

    def remove_scheduled(self, raw: bytes) -> bool:
        """Take one message off the schedule; False if it was not there (a
        scheduler or another operator took it first)."""
        ...

    def wake_workers(self) -> None:
        """Wake this queue's idle workers now (a resume, a consumer stopping);
        a no-op where idle workers poll."""
        ...

    # --- claim and settle: the in-flight record ---------------------------------
    def claim(self, worker: str, finished: Finished | None = None, take: bool = True
              ) -> Claimed | None:
        """Settle `finished` (see settle), then unless take=False pop the next
        message (highest priority, then FIFO) and write its in-flight record
        naming `worker`, stamped with the backend's clock. One atomic step,
        which also checks the queue's pause flag: None when empty or paused,
        so no job is handed out after a pause returns."""
        ...

    def settle(self, worker: str, finished: Finished) -> None:
        """In one atomic step: drop the finished jobs' in-flight records, push
        their outcome records to `worker`'s outbox, clear their Huey flags."""
        ...

    def release(self, token: Token, outbox: str | None = None, records: Sequence[str] = ()
                ) -> None:
        """Drop an in-flight record, and push `records` to the `outbox` owner
        (required when records are given) in the same atomic step: an outcome
        is durable the moment its job stops being in flight."""
        ...

    def put_back(self, token: Token, data: bytes | None = None, priority: int | None = None,
                 drop: bool = False, outbox: str | None = None, records: Sequence[str] = ()
                 ) -> bool:
        """Return an in-flight message to the queue (`data` replacing it if
        given) where it was: its priority (the record's unless given) and its
        place ahead of every job enqueued after it. drop=True removes the
        record and re-queues nothing. `records` go to `outbox` in the same
        atomic step. Only if the record is still there: of two consumers
        recovering one job, one wins (True), the other gets False."""
        ...

    def inflight(self) -> list[Inflight]:
        """This queue's well-formed in-flight records."""
        ...

    def inflight_records(self) -> tuple[list[Inflight], list[Malformed]]:
        """The in-flight records, and beside them the entries no claim wrote."""
        ...

    def inflight_count(self) -> int:
        """How many jobs of this queue are running (0 for junk in their place)."""
        ...

    # --- held: claimed jobs of a paused task type -------------------------------
    def hold(self, token: Token, task: str) -> None:
        """Move a claimed message of a paused task type from in flight to the
        task's held set, atomically, keeping its priority."""
        ...

    def unhold(self, task: str) -> int:
        """Put the task's held messages back on the queue (priority and order
        kept) in one atomic step; returns how many."""
        ...

    def held_count(self) -> int:
        ...

    # --- quarantine: messages a consumer cannot run -----------------------------
    def quarantine(self, token: Token | None, data: bytes, reason: str,
                   worker: str | None = None) -> int:
        """Set a message aside with its reason, dropping its in-flight record
        (if `token`) in the same atomic step; keeps the newest QUARANTINE_LIMIT
        entries and QUARANTINE_DATA bytes of each. Returns its id, never
        reused, stable until the entry is purged or requeued."""
        ...


class Control(Protocol):
    """The state shared by all queues and consumers, on the queue backend."""

    def ping(self) -> None:
        """Raise if the backend cannot be reached."""
        ...

    def now(self) -> float:
        """The backend's clock (Redis TIME; on SQLite, the one host's): the
        only clock liveness is judged by."""
        ...

    # --- pause flags --------------------------------------------------------------
    def set_paused(self, target: str, paused: bool, info: dict[str, Any] | None = None) -> None:
        """Set or clear the pause flag of a queue ("q") or task type ("q/task");
        `info` (who, when, why) is shown only. Durable at once: a claim that
        starts after this returns sees a paused queue."""
        ...

    def paused(self) -> dict[str, dict[str, Any]]:
        """Every pause flag: target -> info."""
        ...

    # --- heartbeats ---------------------------------------------------------------
    def heartbeat(self, worker_id: str, info: dict[str, Any]) -> None:
        """Register or refresh a consumer. The backend stamps the beat with its
        own clock in the same step as `info` (shown only)."""
        ...

    def workers(self) -> list[dict[str, Any]]:
        """Consumers that heartbeated, each with `beat` (the backend's time of
        the last one) and `heartbeat_age` (by the backend's clock too)."""
        ...

    def forget_worker(self, worker_id: str) -> None:
        """Deregister a consumer (its in-flight records are then never
        recovered: callers forget only consumers with none)."""
        ...

    # --- cancel requests ----------------------------------------------------------
    def request_cancel(self, job_ids: Iterable[str]) -> None:
        """Ask the running jobs to stop (they check cooperatively); a request
        expires after a day."""
        ...

    def cancel_requested(self, job_id: str) -> bool:
        ...

    # --- periodic tasks -----------------------------------------------------------
    def claim_tick(self, name: str, tick: int, ttl: int) -> bool:
        """True for exactly one caller per (name, tick) across all consumers
        (an atomic set-if-absent), kept for at least max(ttl, 60) seconds."""
        ...

    def record_periodic(self, name: str, info: dict[str, Any]) -> None:
        """A periodic task's last run info (shown only)."""
        ...

    def periodic_runs(self) -> dict[str, dict[str, Any]]:
        ...

    # --- lost jobs ----------------------------------------------------------------
    def count_loss(self, job_id: str) -> int:
        """Count one more loss of the job (its consumer died while running it)
        atomically; returns the count (junk in its place counts from 1)."""
        ...

    # --- quarantine (written by QueueStorage.quarantine) --------------------------
    def quarantined(self, limit: int = 100) -> list[QuarantineEntry]:
        """The newest quarantined messages first, each with its id."""
        ...

    def quarantine_count(self) -> int:
        ...

    def quarantine_get(self, entry_id: int) -> QuarantineEntry | None:
        ...

    def quarantine_drop(self, entry_ids: Iterable[int] | None = None) -> int:
        """Remove entries (all of them with None); returns how many were removed."""
        ...

    # --- outboxes: history records waiting for the history database ---------------
    # Each owner (a consumer, SUBMITTED, an adopted "<owner>+<tag>") appends
    # records; only its owner reads and trims it, so read-then-done removes
    # exactly what was read, in order.
    def outbox_read(self, owner: str, limit: int) -> tuple[list[str], int | None]:
        """The oldest `limit` records of an outbox (undecodable bytes kept as
        surrogate escapes, for the writer to set aside) and a marker for
        outbox_done (None: nothing to mark)."""
        ...

    def outbox_done(self, owner: str, marker: int | None) -> None:
        """Remove what outbox_read returned with `marker`, nothing appended since."""
        ...

    def outbox_owners(self) -> list[str]:
        """Owners that pushed to an outbox (it may be empty by now)."""
        ...

    def outbox_adopt(self, dead: str, owner: str) -> str | None:
        """Take over a dead owner's outbox, atomically: returns the new owner
        name ("<owner>+<tag>"), or None when it is empty or another consumer
        adopted it first."""
        ...

    def outbox_size(self) -> int:
        """Records waiting in every outbox."""
        ...


def backend_unreachable(exc: BaseException) -> bool:
    """Whether `exc` means a queue storage cannot be reached (Redis down or
    silent, SQLite locked or gone): what stops a batch as an outage, and what
    an attached app's storage raising makes its queue "unreachable". The
    drivers load only when asked.

    Only errors of asking count: no connection, no answer in time, a server
    that answers but cannot serve now (loading, a read-only replica after a
    failover, out of memory, a cluster slot moving), SQLite locked, gone or
    not a database. An answer that refuses the command itself (WRONGTYPE on a
    key of another type, a bad argument, a constraint) is a defect or a forged
    key, and is said as what it is, never as "unreachable"."""
    import sqlite3

    import redis
    from redis import exceptions as e
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, e.ReadOnlyError,
                        e.ClusterDownError, e.TryAgainError, e.OutOfMemoryError,
                        e.SlotNotCoveredError)):
        return True
    if isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError:
        return True  # locked, busy, cannot open, disk I/O; "not a database"
    return isinstance(exc, OSError)

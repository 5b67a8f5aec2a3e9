"""Summaries: the job and event history rolled up per minute, and its retention.

`tq stats`, `tq metrics` and the console read these small tables, never the raw
history. One row per (minute, queue, task) holds that minute's arrivals
(enqueued, by enqueue time), starts (attempts, by start time), outcomes
(succeeded/failed/canceled/expired, by the job's finish time), retries
(attempts that ended without success and were not the job's last word, by
their finish time), run times (attempts that ran to an outcome) and waits
(enqueue -> first start; for a job submitted with a delay this includes it).
One row per (minute, event type) counts stored events with first/last seen.

How a roll-up stays correct:
  - Incremental: it reads only jobs whose `updated_at` (stamped by
    history.write_records when the row is written, so late replays count) is
    newer than the watermark minus LATE_SECONDS, and turns them into the set
    of minutes they touch.
  - Idempotent: each touched minute is recomputed whole from the Job and
    Attempt rows and replaced in one transaction, so a second run writes the
    same rows. Totals (for Prometheus counters, which must not be recomputed
    from 400 days of rows per scrape) move by new-minus-old of the replaced
    rows in that same transaction, so they stay idempotent too.
  - Races: a lease row (an UPDATE that only one writer can win, on SQLite and
    MySQL alike, expiring if its holder dies) lets one roll-up run at a time.
    The lease only saves work and lock waits; replacing a minute is atomic,
    so even two runs that overlapped would not double-count.
  - Minutes older than `[history] keep_days` are never recomputed: pruning has
    removed part of their rows, and their summaries are final.

Percentiles use fixed buckets: each row keeps a histogram of run and wait
times in log-spaced buckets (4 per doubling, so a reported percentile is at
most 19% above the true one, and never above the exact maximum). Histograms
add up, so the percentiles of an hour or a day are as exact as a minute's.
"""
from __future__ import annotations

import bisect
import json
import math
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from peewee import (
    JOIN,
    BigAutoField,
    BigIntegerField,
    Cast,
    CharField,
    ColumnBase,
    DoubleField,
    Field,
    IntegerField,
    SqliteDatabase,
    TextField,
    fn,
)

from tq.models import TERMINAL, Attempt, BaseModel, Event, Job, tuple_rows

LATE_SECONDS = 120.0  # a row written this long before our read may commit after it
LEASE_SECONDS = 600.0  # a roll-up that died releases its lease after this (renewed per span)
SPAN_MINUTES = 30  # minutes recomputed per query and transaction
PRUNE_CHUNK = 1000  # ids per DELETE: short row locks, no long table lock on MySQL
COUNTS = ("enqueued", "started", "succeeded", "failed", "retried", "canceled", "expired")
RUN_OUTCOMES = ("succeeded", "failed", "canceled")  # attempts that ran to an outcome

# Bucket i holds values in (BOUNDS[i-1], BOUNDS[i]]; past the last bound is overflow.
BOUNDS = [0.001 * 2 ** (i / 4) for i in range(112)]  # 1 ms .. ~2.5 days


def bucket_of(seconds: float) -> int:
    return bisect.bisect_left(BOUNDS, seconds)


def bucket_upper(index: int) -> float:
    return BOUNDS[index] if index < len(BOUNDS) else math.inf


def percentile(histogram: dict[int, int], q: float, maximum: float | None) -> float | None:
    """Nearest-rank percentile: the upper bound of the bucket holding it, at most `maximum`."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            upper = bucket_upper(index)
            return upper if maximum is None else min(upper, maximum)
    return maximum


def load_histogram(text: str | None) -> dict[int, int]:
    return {int(k): v for k, v in json.loads(text).items()} if text else {}


def dump_histogram(histogram: dict[int, int]) -> str:
    return json.dumps({str(k): v for k, v in sorted(histogram.items())}, separators=(",", ":"))


# --- tables ------------------------------------------------------------------------

class TaskMinute(BaseModel):
    id = BigAutoField()
    minute = BigIntegerField()  # epoch seconds of the minute's start (UTC)
    queue = CharField(max_length=64)
    task = CharField(max_length=200)
    enqueued = IntegerField(default=0)
    started = IntegerField(default=0)
    succeeded = IntegerField(default=0)
    failed = IntegerField(default=0)
    retried = IntegerField(default=0)
    canceled = IntegerField(default=0)
    expired = IntegerField(default=0)
    run_count = IntegerField(default=0)
    run_sum = DoubleField(default=0)
    run_p50 = DoubleField(null=True)
    run_p95 = DoubleField(null=True)
    run_max = DoubleField(null=True)
    run_hist = TextField(null=True)  # JSON {bucket: count}
    wait_count = IntegerField(default=0)
    wait_sum = DoubleField(default=0)
    wait_p50 = DoubleField(null=True)
    wait_p95 = DoubleField(null=True)
    wait_max = DoubleField(null=True)
    wait_hist = TextField(null=True)

    class Meta:
        table_name = "summary_task_minute"
        indexes = ((("minute", "queue", "task"), True),)


class EventMinute(BaseModel):
    id = BigAutoField()
    minute = BigIntegerField()
    type = CharField(max_length=200)
    count = IntegerField(default=0)
    first_seen = DoubleField(null=True)
    last_seen = DoubleField(null=True)

    class Meta:
        table_name = "summary_event_minute"
        indexes = ((("minute", "type"), True),)


class TaskTotal(BaseModel):
    """Running totals since summaries began; never pruned (Prometheus counters)."""
    id = BigAutoField()
    queue = CharField(max_length=64)
    task = CharField(max_length=200)
    enqueued = BigIntegerField(default=0)
    started = BigIntegerField(default=0)
    succeeded = BigIntegerField(default=0)
    failed = BigIntegerField(default=0)
    retried = BigIntegerField(default=0)
    canceled = BigIntegerField(default=0)
    expired = BigIntegerField(default=0)
    run_count = BigIntegerField(default=0)
    run_sum = DoubleField(default=0)
    wait_count = BigIntegerField(default=0)
    wait_sum = DoubleField(default=0)

    class Meta:
        table_name = "summary_task_total"
        indexes = ((("queue", "task"), True),)


class EventTotal(BaseModel):
    id = BigAutoField()
    type = CharField(max_length=200, unique=True)
    count = BigIntegerField(default=0)
    first_seen = DoubleField(null=True)
    last_seen = DoubleField(null=True)

    class Meta:
        table_name = "summary_event_total"


class SummaryState(BaseModel):
    """The roll-up's watermark and lease (one row, name 'rollup')."""
    name = CharField(max_length=64, primary_key=True)
    watermark = DoubleField(null=True)  # `now` of the last completed roll-up
    holder = CharField(max_length=128, null=True)
    lease_until = DoubleField(null=True)

    class Meta:
        table_name = "summary_state"


SUMMARY_MODELS = (TaskMinute, EventMinute, TaskTotal, EventTotal, SummaryState)


# --- roll-up -------------------------------------------------------------------------

@dataclass
class RollupResult:
    skipped: bool = False  # another roll-up held the lease
    minutes: list[int] = field(default_factory=list)  # task minutes recomputed
    event_minutes: list[int] = field(default_factory=list)
    watermark: float | None = None
    seconds: float = 0.0


def _is_sqlite(database) -> bool:
    return isinstance(database, SqliteDatabase)


def _minute(database, column):
    """SQL for the epoch second a timestamp's minute starts at."""
    if _is_sqlite(database):  # FLOOR is an optional SQLite extension
        return Cast(column / 60, "INTEGER") * 60
    return fn.FLOOR(column / 60) * 60


def _write_transaction(database):
    # SQLite: take the write lock up front, so two writers wait for each other
    # instead of one failing to upgrade its read lock.
    return database.atomic(lock_type="IMMEDIATE") if _is_sqlite(database) else database.atomic()


class _Lease:
    def __init__(self, name: str = "rollup") -> None:
        self.name = name
        self.holder = f"{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"

    def acquire(self) -> bool:
        now = time.time()
        SummaryState.insert(name=self.name).on_conflict_ignore().execute()
        won = (SummaryState.update(holder=self.holder, lease_until=now + LEASE_SECONDS)
               .where((SummaryState.name == self.name)
                      & (SummaryState.lease_until.is_null() | (SummaryState.lease_until < now)))
               .execute())
        return won == 1

    def renew(self) -> None:
        # A first roll-up over months of history takes longer than one lease.
        (SummaryState.update(lease_until=time.time() + LEASE_SECONDS)
         .where((SummaryState.name == self.name) & (SummaryState.holder == self.holder))
         .execute())

    def release(self) -> None:
        (SummaryState.update(holder=None, lease_until=None)
         .where((SummaryState.name == self.name) & (SummaryState.holder == self.holder))
         .execute())


def rollup(runtime, now: float | None = None) -> RollupResult:
    """Bring the summaries up to date with the history (see the module doc)."""
    started = time.monotonic()
    now = time.time() if now is None else now
    database = runtime.history_db()
    lease = _Lease()
    if not lease.acquire():
        return RollupResult(skipped=True)
    try:
        state = SummaryState.get_by_id("rollup")
        since = None if state.watermark is None else state.watermark - LATE_SECONDS
        horizon = now - runtime.config.history.keep_days * 86400
        result = RollupResult()
        result.minutes = [m for m in _changed_job_minutes(database, since) if m >= horizon]
        for lo, hi in _spans(result.minutes):
            _replace_task_minutes(database, lo, hi)
            lease.renew()
        result.event_minutes = [m for m in _changed_event_minutes(database, since)
                                if m >= horizon]
        for lo, hi in _spans(result.event_minutes):
            _replace_event_minutes(database, lo, hi)
            lease.renew()
        (SummaryState.update(watermark=now)
         .where((SummaryState.name == "rollup")
                & (SummaryState.watermark.is_null() | (SummaryState.watermark < now)))
         .execute())
        result.watermark = now
    finally:
        lease.release()
    result.seconds = time.monotonic() - started
    return result


def _changed_job_minutes(database, since: float | None) -> list[int]:
    """Every minute a job changed since `since` counts in: its enqueue, its
    finish, and each of its attempts' start and finish."""
    changed = (Job.updated_at >= since) if since is not None else None
    minutes: set[int] = set()
    for column in (Job.enqueued_at, Job.finished_at):
        query = Job.select(_minute(database, column)).distinct().where(column.is_null(False))
        if changed is not None:
            query = query.where(changed)
        minutes.update(int(m) for m, in tuple_rows(query))
    for column in (Attempt.started_at, Attempt.finished_at):
        attempts = (Attempt.select(_minute(database, column)).distinct()
                    .where(column.is_null(False)))
        if changed is not None:
            attempts = attempts.join(Job, on=(Attempt.job_id == Job.id)).where(changed)
        minutes.update(int(m) for m, in tuple_rows(attempts))
    return sorted(minutes)


def _changed_event_minutes(database, since: float | None) -> list[int]:
    # Events are written once, by the task that stores them, at received_at.
    query = Event.select(_minute(database, Event.received_at)).distinct()
    if since is not None:
        query = query.where(Event.received_at >= since)
    return sorted(int(m) for m, in tuple_rows(query))


def _spans(minutes: list[int]) -> Iterable[tuple[int, int]]:
    """Runs of consecutive minutes as [lo, hi) ranges of at most SPAN_MINUTES."""
    start: int | None = None
    previous = 0  # set with start, read only while start is set
    for minute in minutes:
        if start is not None and (minute != previous + 60 or minute - start >= SPAN_MINUTES * 60):
            yield start, previous + 60
            start = None
        if start is None:
            start = minute
        previous = minute
    if start is not None:
        yield start, previous + 60


class _Acc:
    """One (minute, queue, task) being recomputed."""
    __slots__ = COUNTS + ("run", "run_max", "run_sum", "wait", "wait_max", "wait_sum")
    # The COUNTS, set by name in __init__ and by outcome in compute_task_minutes.
    enqueued: int
    started: int
    succeeded: int
    failed: int
    retried: int
    canceled: int
    expired: int
    run: Counter[int]
    wait: Counter[int]
    run_max: float | None
    wait_max: float | None
    run_sum: float
    wait_sum: float

    def __init__(self) -> None:
        for name in COUNTS:
            setattr(self, name, 0)
        self.run, self.wait = Counter(), Counter()
        self.run_max = self.wait_max = None
        self.run_sum = self.wait_sum = 0.0

    def add_run(self, seconds: float) -> None:
        self.run[bucket_of(seconds)] += 1
        self.run_sum += seconds
        self.run_max = seconds if self.run_max is None else max(self.run_max, seconds)

    def add_wait(self, seconds: float) -> None:
        self.wait[bucket_of(seconds)] += 1
        self.wait_sum += seconds
        self.wait_max = seconds if self.wait_max is None else max(self.wait_max, seconds)

    def row(self, minute: int, queue: str, task: str) -> dict:
        row = {"minute": minute, "queue": queue, "task": task}
        row.update({name: getattr(self, name) for name in COUNTS})
        for kind in ("run", "wait"):
            histogram, maximum = getattr(self, kind), getattr(self, f"{kind}_max")
            row.update({f"{kind}_count": sum(histogram.values()),
                        f"{kind}_sum": round(getattr(self, f"{kind}_sum"), 6),
                        f"{kind}_p50": percentile(histogram, 0.50, maximum),
                        f"{kind}_p95": percentile(histogram, 0.95, maximum),
                        f"{kind}_max": maximum,
                        f"{kind}_hist": dump_histogram(histogram) if histogram else None})
        return row


def _minute_of(timestamp: float) -> int:
    return int(timestamp // 60) * 60


def compute_task_minutes(database, lo: int, hi: int) -> dict[tuple[int, str, str], dict]:
    """The summary rows of minutes [lo, hi), computed from the history alone."""
    accs: dict[tuple[int, str, str], _Acc] = {}

    def acc(minute, queue, task) -> _Acc:
        key = (int(minute), queue or "", task or "")
        if key not in accs:
            accs[key] = _Acc()
        return accs[key]

    enqueued = _minute(database, Job.enqueued_at)
    for minute, queue, task, count in tuple_rows(
            Job.select(enqueued, Job.queue, Job.task, fn.COUNT(Job.id))
            .where((Job.enqueued_at >= lo) & (Job.enqueued_at < hi))
            .group_by(enqueued, Job.queue, Job.task)):
        acc(minute, queue, task).enqueued += count
    finished = _minute(database, Job.finished_at)
    for minute, queue, task, state, count in tuple_rows(
            Job.select(finished, Job.queue, Job.task, Job.state, fn.COUNT(Job.id))
            .where((Job.finished_at >= lo) & (Job.finished_at < hi)
                   & Job.state.in_(sorted(TERMINAL - {"requeued"})))
            .group_by(finished, Job.queue, Job.task, Job.state)):
        entry = acc(minute, queue, task)
        setattr(entry, state, getattr(entry, state) + count)
    # A requeued job counts as the outcome it had before it was retired (its last
    # attempt's; one that never ran was canceled or expired): requeueing rewrites no
    # minute's figures.
    last = Attempt.alias()
    for minute, queue, task, outcome, error_type, count in tuple_rows(
            Job.select(finished, Job.queue, Job.task, last.outcome, Job.error_type,
                       fn.COUNT(Job.id))
            .join(last, JOIN.LEFT_OUTER, on=((last.job_id == Job.id)
                                             & (last.attempt == Job.attempts)))
            .where((Job.finished_at >= lo) & (Job.finished_at < hi)
                   & (Job.state == "requeued"))
            .group_by(finished, Job.queue, Job.task, last.outcome, Job.error_type)):
        if outcome not in ("succeeded", "failed", "canceled", "expired"):
            outcome = "canceled" if error_type == "Canceled" else (
                "expired" if outcome is None and error_type and "xpire" in error_type
                else "failed")
        entry = acc(minute, queue, task)
        setattr(entry, outcome, getattr(entry, outcome) + count)
    # Raw cursors for the per-attempt rows: the drivers already return floats and
    # strings, and peewee's per-value conversion was a third of a busy minute's cost.
    starts = (Attempt.select(Attempt.started_at, Attempt.attempt, Job.queue, Job.task,
                             Job.enqueued_at)
              .join(Job, on=(Attempt.job_id == Job.id))
              .where((Attempt.started_at >= lo) & (Attempt.started_at < hi)))
    for started_at, attempt, queue, task, enqueued_at in database.execute(starts):
        entry = acc(_minute_of(started_at), queue, task)
        entry.started += 1
        if attempt == 1 and enqueued_at is not None:
            entry.add_wait(max(0.0, started_at - enqueued_at))
    finishes = (Attempt.select(Attempt.started_at, Attempt.finished_at, Attempt.attempt,
                               Attempt.outcome, Job.queue, Job.task, Job.state, Job.attempts)
                .join(Job, on=(Attempt.job_id == Job.id))
                .where((Attempt.finished_at >= lo) & (Attempt.finished_at < hi)))
    for (started_at, finished_at, attempt, outcome, queue, task, state,
         attempts) in database.execute(finishes):
        entry = acc(_minute_of(finished_at), queue, task)
        if outcome in RUN_OUTCOMES and started_at is not None:
            entry.add_run(max(0.0, finished_at - started_at))
        final = state in TERMINAL and attempt >= (attempts or 0)
        if outcome != "succeeded" and not final:
            entry.retried += 1
    return {key: entry.row(*key) for key, entry in accs.items()}


def _replace_span(database, model, lo: int, hi: int, rows: list[dict]) -> list[dict]:
    """Within the caller's transaction: swap the span's rows for `rows`; return the old."""
    in_span = (model.minute >= lo) & (model.minute < hi)
    query = model.select().where(in_span)
    old = list((query if _is_sqlite(database) else query.for_update()).dicts())
    model.delete().where(in_span).execute()
    for start in range(0, len(rows), 500):
        model.insert_many(rows[start:start + 500]).execute()
    return old


def _replace_task_minutes(database, lo: int, hi: int) -> None:
    rows = list(compute_task_minutes(database, lo, hi).values())
    with _write_transaction(database):
        old = _replace_span(database, TaskMinute, lo, hi, rows)
        deltas: dict[tuple[str, str], Counter] = {}
        for sign, source in ((-1, old), (1, rows)):
            for row in source:
                delta = deltas.setdefault((row["queue"], row["task"]), Counter())
                for name in COUNTS + ("run_count", "run_sum", "wait_count", "wait_sum"):
                    delta[name] += sign * (row[name] or 0)
        for (queue, task), delta in deltas.items():
            if any(delta.values()):
                _add_to_total(TaskTotal, (TaskTotal.queue == queue) & (TaskTotal.task == task),
                              {"queue": queue, "task": task}, delta)


def _add_to_total(model, where, identity: dict, delta: dict) -> None:
    changes = {getattr(model, name): getattr(model, name) + value
               for name, value in delta.items() if value}
    # Not `if not update(): insert()`: MySQL counts changed rows, not matched ones.
    if model.select().where(where).exists():
        model.update(changes).where(where).execute()
    else:
        model.insert(dict(identity, **delta)).execute()


def compute_event_minutes(database, lo: int, hi: int) -> dict[tuple[int, str], dict]:
    minute = _minute(database, Event.received_at)
    return {(int(m), kind): {"minute": int(m), "type": kind, "count": count,
                             "first_seen": first, "last_seen": last}
            for m, kind, count, first, last in tuple_rows(
                Event.select(minute, Event.type, fn.COUNT(Event.id),
                             fn.MIN(Event.received_at), fn.MAX(Event.received_at))
                .where((Event.received_at >= lo) & (Event.received_at < hi))
                .group_by(minute, Event.type))}


def _replace_event_minutes(database, lo: int, hi: int) -> None:
    rows = list(compute_event_minutes(database, lo, hi).values())
    with _write_transaction(database):
        old = _replace_span(database, EventMinute, lo, hi, rows)
        deltas: Counter = Counter()
        seen: dict[str, tuple[float, float]] = {}
        for row in old:
            deltas[row["type"]] -= row["count"]
        for row in rows:
            deltas[row["type"]] += row["count"]
            first, last = seen.get(row["type"], (row["first_seen"], row["last_seen"]))
            seen[row["type"]] = (min(first, row["first_seen"]), max(last, row["last_seen"]))
        for kind in set(deltas) | set(seen):
            first, last = seen.get(kind, (None, None))
            _add_event_total(database, kind, deltas[kind], first, last)


def _add_event_total(database, kind: str, delta: int, first: float | None,
                     last: float | None) -> None:
    least, greatest = (fn.MIN, fn.MAX) if _is_sqlite(database) else (fn.LEAST, fn.GREATEST)
    changes: dict[Field, ColumnBase] = {EventTotal.count: EventTotal.count + delta}
    if first is not None:
        changes[EventTotal.first_seen] = fn.COALESCE(least(EventTotal.first_seen, first), first)
        changes[EventTotal.last_seen] = fn.COALESCE(greatest(EventTotal.last_seen, last), last)
    if EventTotal.select().where(EventTotal.type == kind).exists():
        EventTotal.update(changes).where(EventTotal.type == kind).execute()
    else:
        EventTotal.insert(type=kind, count=delta, first_seen=first, last_seen=last).execute()


# --- reading: recent outcomes per minute ---------------------------------------------

LIVE_MINUTES = 5  # minutes past the watermark counted from the raw history, not summaries


def recent_minutes(runtime, now: float | None = None, minutes: int = 60
                   ) -> tuple[list[int], dict[str, dict[str, list[int | None]]]]:
    """Jobs finished per minute and queue over the last `minutes` (the console's charts).

    Returns (minute starts, {queue: {"done": [...], "failed": [...]}}), oldest first.
    Minutes the roll-up has covered come from TaskMinute (no row: nothing finished);
    the minute holding the watermark and later ones, at most LIVE_MINUTES of them,
    are counted from Job by finish time; older minutes past the watermark (the
    roll-up stopped) are None: unknown, drawn as a gap rather than as zero."""
    now = time.time() if now is None else now
    runtime.history_db()
    last = _minute_of(now)
    starts = [last - 60 * (minutes - 1 - i) for i in range(minutes)]
    state = SummaryState.get_or_none(SummaryState.name == "rollup")
    watermark = state.watermark if state is not None else None
    covered_until = _minute_of(watermark) if watermark else starts[0]  # first minute not whole
    live_from = max(covered_until, last - 60 * (LIVE_MINUTES - 1))
    done: dict[str, dict[int, int]] = {}
    failed: dict[str, dict[int, int]] = {}
    if covered_until > starts[0]:
        for minute, queue, ok, bad in tuple_rows(
                TaskMinute.select(TaskMinute.minute, TaskMinute.queue,
                                  fn.SUM(TaskMinute.succeeded), fn.SUM(TaskMinute.failed))
                .where((TaskMinute.minute >= starts[0]) & (TaskMinute.minute < covered_until))
                .group_by(TaskMinute.minute, TaskMinute.queue)):
            done.setdefault(queue, {})[int(minute)] = int(ok or 0) + int(bad or 0)
            failed.setdefault(queue, {})[int(minute)] = int(bad or 0)
    minute_expr = _minute(runtime.history_db(), Job.finished_at)
    for minute, queue, job_state, count in tuple_rows(
            Job.select(minute_expr, Job.queue, Job.state, fn.COUNT(Job.id))
            .where(Job.state.in_(("succeeded", "failed")) & (Job.finished_at >= live_from))
            .group_by(minute_expr, Job.queue, Job.state)):
        minute = int(minute)
        done.setdefault(queue, {})
        done[queue][minute] = done[queue].get(minute, 0) + count
        if job_state == "failed":
            failed.setdefault(queue, {})[minute] = failed.get(queue, {}).get(minute, 0) + count

    def known(minute: int) -> bool:
        return minute < covered_until or minute >= live_from

    series = {}
    for queue in set(runtime.queues) | set(done):
        series[queue] = {name: [table.get(queue, {}).get(m, 0) if known(m) else None
                                for m in starts]
                         for name, table in (("done", done), ("failed", failed))}
    return starts, series


# --- retention -----------------------------------------------------------------------

def prune(runtime, now: float | None = None) -> dict[str, int]:
    """Delete finished jobs (with their attempts) older than `[history] keep_days`
    and summaries older than `keep_summary_days`, PRUNE_CHUNK ids at a time."""
    now = time.time() if now is None else now
    history = runtime.config.history
    database = runtime.history_db()
    deleted = {"jobs": 0, "attempts": 0, "summaries": 0}
    job_horizon = now - history.keep_days * 86400
    while True:
        ids = [job_id for job_id, in tuple_rows(
            Job.select(Job.id)
            .where(Job.state.in_(sorted(TERMINAL)) & (Job.finished_at < job_horizon))
            .limit(PRUNE_CHUNK))]
        if not ids:
            break
        with database.atomic():
            deleted["attempts"] += Attempt.delete().where(Attempt.job_id.in_(ids)).execute()
            deleted["jobs"] += Job.delete().where(Job.id.in_(ids)).execute()
        if len(ids) < PRUNE_CHUNK:
            break
    summary_horizon = now - history.keep_summary_days * 86400
    for model in (TaskMinute, EventMinute):
        while True:
            ids = [row_id for row_id, in tuple_rows(
                model.select(model.id).where(model.minute < summary_horizon)
                .limit(PRUNE_CHUNK))]
            if not ids:
                break
            deleted["summaries"] += model.delete().where(model.id.in_(ids)).execute()
            if len(ids) < PRUNE_CHUNK:
                break
    return deleted

"""Writing job history: idempotent upserts, batched off the workers' hot path.

A record is a dict: {"kind": "job", "id", "state", "seq", ...columns} or
{"kind": "attempt", "job_id", "attempt", ...columns}, or an audit entry
{"kind": "audit", "uid", "part", ...} (tq/audit.py). Records for one job may
reach the database in any order (a worker's `succeeded` can land before the
submitter's `queued`), so every write is an upsert in which:
  - identity columns (task, args, queue, ...) are filled once and never changed;
  - state columns follow the record with the higher `seq` (models.state_seq);
  - nothing is cleared by a record that does not carry it.
The same merge rule is applied in Python to coalesce a batch and in SQL to
merge with what is stored, so writing a batch twice changes nothing.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from peewee import SqliteDatabase

from tq.storage import SUBMITTED

logger = logging.getLogger("tq.history")

JOB_IDENTITY = ("queue", "task", "args", "kwargs", "priority", "max_retries", "enqueued_at",
                "requeued_from")
JOB_STATE = ("state", "attempts", "eta", "started_at", "finished_at", "updated_at", "worker",
             "error_type", "error_message", "traceback")
JOB_COLUMNS = ("id",) + JOB_IDENTITY + JOB_STATE + ("seq",)
ATTEMPT_KEEP = ("worker", "started_at")
ATTEMPT_LATEST = ("finished_at", "outcome", "error_type", "error_message", "traceback")
ATTEMPT_COLUMNS = ("job_id", "attempt") + ATTEMPT_KEEP + ATTEMPT_LATEST
TRACEBACK_LIMIT = 60_000
CHUNK = 500
OUTBOX_BATCH = 1000


def _key(record: dict) -> tuple:
    if record["kind"] == "job":
        return ("job", record["id"])
    if record["kind"] == "audit":
        return ("audit", record["uid"], record.get("part", 0))
    return ("attempt", record["job_id"], record["attempt"])


def merge(old: dict | None, new: dict) -> dict:
    """Combine two records of the same job or attempt, as the SQL upsert does."""
    if old is None or new["kind"] == "audit":  # an audit record is written as it is
        return dict(new)
    merged = dict(old)
    if new["kind"] == "job":
        newer = new["seq"] >= old["seq"]
        for column in JOB_IDENTITY:
            if merged.get(column) is None:
                merged[column] = new.get(column)
        for column in JOB_STATE:
            if newer and new.get(column) is not None:
                merged[column] = new[column]
            elif merged.get(column) is None:
                merged[column] = new.get(column)
        merged["seq"] = max(old["seq"], new["seq"])
    else:
        for column in ATTEMPT_KEEP:
            if merged.get(column) is None:
                merged[column] = new.get(column)
        for column in ATTEMPT_LATEST:
            if new.get(column) is not None:
                merged[column] = new[column]
    return merged


def coalesce(records: Iterable[dict]) -> list[dict]:
    merged: dict[tuple, dict] = {}
    for record in records:
        key = _key(record)
        merged[key] = merge(merged.get(key), record)
    return list(merged.values())


def _upsert_sql(database, table: str, columns: tuple[str, ...], rows: int, keep: tuple,
                latest: tuple, conflict: str, seq_guarded: bool) -> str:
    sqlite = isinstance(database, SqliteDatabase)
    quote = (lambda name: f'"{name}"') if sqlite else (lambda name: f"`{name}`")
    placeholders = "(" + ", ".join(["?" if sqlite else "%s"] * len(columns)) + ")"
    head = (f"INSERT INTO {quote(table)} ({', '.join(map(quote, columns))}) VALUES "
            + ", ".join([placeholders] * rows))
    sets = []
    if sqlite:
        old = lambda c: f"{quote(table)}.{quote(c)}"  # noqa: E731
        new = lambda c: f"excluded.{quote(c)}"  # noqa: E731
        newer = f"{new('seq')} >= {old('seq')}"
        iff = lambda cond, a, b: f"CASE WHEN {cond} THEN {a} ELSE {b} END"  # noqa: E731
    else:
        old = quote
        new = lambda c: f"VALUES({quote(c)})"  # noqa: E731
        newer = f"{new('seq')} >= {old('seq')}"
        iff = lambda cond, a, b: f"IF({cond}, {a}, {b})"  # noqa: E731
    for column in keep:
        sets.append(f"{quote(column)} = COALESCE({old(column)}, {new(column)})")
    for column in latest:
        if seq_guarded:
            sets.append(f"{quote(column)} = " + iff(
                newer, f"COALESCE({new(column)}, {old(column)})",
                f"COALESCE({old(column)}, {new(column)})"))
        else:
            sets.append(f"{quote(column)} = COALESCE({new(column)}, {old(column)})")
    if seq_guarded:
        # Last: MySQL evaluates assignments left to right against updated values.
        greatest = "MAX" if sqlite else "GREATEST"
        sets.append(f"{quote('seq')} = {greatest}({old('seq')}, {new('seq')})")
    if sqlite:
        return f"{head} ON CONFLICT({conflict}) DO UPDATE SET " + ", ".join(sets)
    return f"{head} ON DUPLICATE KEY UPDATE " + ", ".join(sets)


def write_records(database, records: Iterable[dict]) -> int:
    """Upsert records into the history database in chunked multi-row statements."""
    merged = coalesce(records)
    # updated_at says when the row last changed in THIS database, not when the
    # state happened: summaries find what changed since their last roll-up by
    # it, so records replayed late (after an outage) are still summarised.
    written = time.time()
    jobs = [dict(r, updated_at=written) for r in merged if r["kind"] == "job"]
    attempts = [r for r in merged if r["kind"] == "attempt"]
    audits = [r for r in merged if r["kind"] == "audit"]
    with database.atomic():
        if audits:
            from tq import audit
            audit.write(database, audits)
        for table, rows, columns, keep, latest, conflict, guarded in (
                ("job", jobs, JOB_COLUMNS, JOB_IDENTITY, JOB_STATE, '"id"', True),
                ("attempt", attempts, ATTEMPT_COLUMNS, ATTEMPT_KEEP, ATTEMPT_LATEST,
                 '"job_id", "attempt"', False)):
            for start in range(0, len(rows), CHUNK):
                chunk = rows[start:start + CHUNK]
                # A column no row carries is left out: the upsert keeps the stored
                # value for a NULL anyway, and a new row gets NULL from its default.
                # A `queued` row carries 14 of the 22 job columns.
                present = tuple(c for c in columns if any(row.get(c) is not None
                                                          for row in chunk))
                sql = _upsert_sql(database, table, present, len(chunk),
                                  tuple(c for c in keep if c in present),
                                  tuple(c for c in latest if c in present), conflict, guarded)
                params = [_clip(column, row.get(column)) for row in chunk for column in present]
                database.execute_sql(sql, params)
    return len(merged)


def _clip(column: str, value: Any) -> Any:
    if column == "traceback" and isinstance(value, str) and len(value) > TRACEBACK_LIMIT:
        return value[:TRACEBACK_LIMIT // 2] + "\n...\n" + value[-TRACEBACK_LIMIT // 2:]
    if column == "error_message" and isinstance(value, str) and len(value) > 10_000:
        return value[:10_000]
    return value


class HistoryWriter:
    """Collects records from the workers and writes them every ~200 ms.

    `record()` only appends to a list, so a slow or dead database never stalls
    a worker. While the database is unreachable the records are kept (merged
    per job, so memory grows with jobs, not with events); past `buffer_rows`
    they are spilled to a file in the data folder and replayed later. One
    warning is logged per outage, not one per job.
    """

    def __init__(self, database_factory, flush_interval: float = 0.2, flush_rows: int = 500,
                 buffer_rows: int = 100_000, spill_dir: Path | None = None) -> None:
        self._database_factory = database_factory
        self.flush_interval = flush_interval
        self.flush_rows = flush_rows
        self.buffer_rows = buffer_rows
        self.spill_dir = spill_dir
        self._pending: list[dict] = []
        self._kept: dict[tuple, dict] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # flush() waits for a round that started after it was called and left
        # nothing behind: memory, spill files and the outboxes read to their end.
        self._rounds = threading.Condition()
        self._started = 0
        self._clean = 0
        self._stop = False
        self._down_since: float | None = None
        self._control = None
        self._outboxes: list[str] = []
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="tq-history-writer", daemon=True)
        self._thread.start()

    def record(self, record: dict) -> None:
        with self._lock:
            self._pending.append(record)
            if len(self._pending) >= self.flush_rows:
                self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._pending) + len(self._kept)

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything recorded so far; False if the database stayed down."""
        with self._rounds:
            wanted = self._started + 1
            self._wake.set()
            return self._rounds.wait_for(lambda: self._clean >= wanted, timeout)

    def close(self, timeout: float = 10.0) -> bool:
        done = self.flush(timeout)
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=1.0)
        if not done:
            self._spill(list(self._kept.values()) + self._pending)
        return done

    def attach_outbox(self, control, owner: str) -> None:
        """Also drain `owner`'s durable outbox in the queue backend (consumer
        main process only: one reader per outbox)."""
        self._control = control
        self._outboxes = [owner]
        self._wake.set()

    @property
    def drains_outboxes(self) -> bool:
        return bool(self._outboxes)

    def adopt_outbox(self, owner: str) -> None:
        self._outboxes.append(owner)
        self._wake.set()

    def _run(self) -> None:
        delay = self.flush_interval
        while not self._stop:
            self._wake.wait(delay)
            self._wake.clear()
            with self._rounds:
                self._started += 1
                this_round = self._started
            with self._lock:
                batch, self._pending = self._pending, []
            for record in batch:
                self._keep(record)
            try:
                taken, drained_all = self._take_outboxes()
                if self._kept or self._spill_files():
                    database = self._database_factory()
                    self._replay_spill(database)
                    if self._kept:
                        self.written += write_records(database, self._kept.values())
                    self._kept.clear()
                for owner, marker in taken:
                    self._control.outbox_done(owner, marker)
                if not drained_all:
                    self._wake.set()  # more waiting in an outbox: go on at once
                if self._down_since is not None:
                    logger.warning("history database is back after %.0fs; kept records written",
                                   time.monotonic() - self._down_since)
                    self._down_since = None
                delay = self.flush_interval
                with self._lock:
                    clean = not self._pending and drained_all
                if clean:
                    with self._rounds:
                        self._clean = this_round
                        self._rounds.notify_all()
            except Exception as exc:
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    logger.warning("history database unreachable (%s); workers keep running "
                                   "and records are kept until it is back",
                                   str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                self._close_quietly()
                if len(self._kept) > self.buffer_rows:
                    self._spill(list(self._kept.values()))
                    self._kept.clear()
                delay = min(2.0, max(delay * 2, 0.5))
                self._wake.clear()

    def _keep(self, record: dict) -> None:
        key = _key(record)
        self._kept[key] = merge(self._kept.get(key), record)

    def _take_outboxes(self) -> tuple[list[tuple[str, Any]], bool]:
        """Merge the oldest records of each outbox into the kept ones, so a job's
        `running` row (from memory) and its outcome (from the outbox) become one
        upsert. Returns what to trim from the outboxes once written, and whether
        every outbox was read to its end. Until trimmed, records stay in their
        outbox: after a failed write they are read (and merged) again."""
        taken, drained = [], True
        if self._outboxes:
            # What submitters left since the last round: renamed to one of ours
            # in one atomic step, so of several consumers exactly one takes it.
            try:
                adopted = self._control.outbox_adopt(SUBMITTED, self._outboxes[0])
            except Exception as exc:
                logger.debug("submitted outbox unreadable now: %s", exc)
                adopted = None
            if adopted:
                self._outboxes.append(adopted)
        for owner in list(self._outboxes):
            try:
                raw, marker = self._control.outbox_read(owner, OUTBOX_BATCH)
            except Exception as exc:
                logger.debug("outbox %s unreadable now: %s", owner, exc)
                drained = False
                continue
            if not raw:
                if owner != self._outboxes[0]:
                    self._outboxes.remove(owner)  # an adopted outbox, now empty
                continue
            for item in raw:
                self._keep(json.loads(item))
            taken.append((owner, marker))
            drained = drained and len(raw) < OUTBOX_BATCH
        return taken, drained

    def _close_quietly(self) -> None:
        try:
            self._database_factory().close()
        except Exception:
            pass

    # --- spill files: records kept on disk while the database is down --------
    def _spill_files(self) -> list[Path]:
        """Our spill files, and those of processes that died before replaying theirs."""
        if self.spill_dir is None or not self.spill_dir.is_dir():
            return []
        files = []
        for path in sorted(self.spill_dir.glob("history-spill-*.jsonl")):
            pid = int(path.name.split("-")[2])
            if pid == os.getpid() or not _alive(pid):
                files.append(path)
        return files

    def _spill(self, records: list[dict]) -> None:
        if not records:
            return
        if self.spill_dir is None:
            logger.error("history buffer full and no spill folder: %d records dropped",
                         len(records))
            return
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        path = self.spill_dir / f"history-spill-{os.getpid()}-{time.time_ns()}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")
        logger.warning("history database still down: %d records spilled to %s",
                       len(records), path)

    def _replay_spill(self, database) -> None:
        for path in self._spill_files():
            with open(path, encoding="utf-8") as handle:
                records = [json.loads(line) for line in handle if line.strip()]
            self.written += write_records(database, records)
            path.unlink()


def write_submitted(control, database, owner: str) -> int:
    """Write the submitted jobs' records now, in this process, instead of
    waiting for a consumer's history writer (no consumer may be running).
    The records are first renamed to an outbox of `owner`'s, so what a failed
    write leaves behind is taken up by `owner`'s next call (or, once `owner`
    is gone, by a consumer's recovery), not by nobody."""
    control.outbox_adopt(SUBMITTED, owner)
    written = 0
    for name in control.outbox_owners():
        if not name.startswith(owner + "+"):
            continue
        while True:
            raw, marker = control.outbox_read(name, OUTBOX_BATCH)
            if not raw:
                break
            written += write_records(database, [json.loads(item) for item in raw])
            control.outbox_done(name, marker)
    return written


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

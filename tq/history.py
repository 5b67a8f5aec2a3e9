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

Two kinds of failure, told apart (see `unreachable`):
  - the database cannot be asked (down, connection lost, locked): records are
    kept, spilled past `buffer_rows`, and written when it is back;
  - the database refuses a record (too long, wrong type, out of range, not a
    record at all, or, with TQ_SECRET, not signed by us): that record is set
    aside in the `dead_record` table with its reason (in a JSONL file beside
    the spill files if the database cannot take even that), logged once and
    counted, and every other record of the batch is written in the same round.
Most refusals are found before the database sees the record (`check_record`,
from the column sizes and types of the models): MariaDB in a non-strict
sql_mode would silently cut a 200-character job id, and SQLite accepts any
length and type, so the same record is refused on every engine.
"""
from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import peewee
from peewee import (
    BigAutoField,
    BigIntegerField,
    CharField,
    DoubleField,
    IntegerField,
    SqliteDatabase,
    TextField,
)

from tq.format import first_line
from tq.models import STATES, Attempt, Audit, BaseModel, Job, LongText, bound
from tq.serializer import RecordRefused, RecordSigner, encode_record
from tq.storage import SUBMITTED

if TYPE_CHECKING:
    from tq.storage import Control

logger = logging.getLogger("tq.history")

JOB_IDENTITY = ("queue", "task", "args", "kwargs", "priority", "max_retries", "enqueued_at",
                "requeued_from")
JOB_STATE = ("state", "attempts", "eta", "started_at", "finished_at", "updated_at", "worker",
             "error_type", "error_message", "traceback", "result")
JOB_COLUMNS = ("id",) + JOB_IDENTITY + JOB_STATE + ("seq",)
ATTEMPT_KEEP = ("worker", "started_at")
ATTEMPT_LATEST = ("finished_at", "outcome", "error_type", "error_message", "traceback")
ATTEMPT_COLUMNS = ("job_id", "attempt") + ATTEMPT_KEEP + ATTEMPT_LATEST
TRACEBACK_LIMIT = 60_000
CHUNK = 500
OUTBOX_BATCH = 1000
DEAD_RECORD_LIMIT = 65_536  # characters of a refused record kept as evidence
DEAD_FILE = "dead-records.jsonl"  # beside the spill files, when the database refuses even that
LOG_PER_ROUND = 5  # refused records logged one by one per round; the rest in one line


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


# --- what the database would refuse, found before it sees the record -------------

class DeadRecord(BaseModel):
    """A history record the writer set aside: the evidence, why, and where it came from."""
    id = BigAutoField()
    at = DoubleField(index=True)
    source = CharField(max_length=255)  # outbox owner (consumer), "memory" or a spill file
    reason = TextField()
    record = LongText()  # the record as read, ASCII-escaped, at most DEAD_RECORD_LIMIT chars
    size = BigIntegerField()  # its full length


class RecordError(ValueError):
    """A record that cannot be written; the message is the reason kept with it."""


_INT_RANGE = (-2**31, 2**31 - 1)  # IntegerField is INT on MySQL
# Columns whose value is matched and grouped by: a lone surrogate there is refused.
# Free text (arguments, errors, tracebacks) gets U+FFFD for it instead, so the
# job's outcome is still recorded.
_FREE_TEXT = {"args", "kwargs", "error_message", "traceback", "result"}


def _rules(model, columns: tuple[str, ...]) -> dict[str, tuple[str, int | None]]:
    rules: dict[str, tuple[str, int | None]] = {}
    for name in columns:
        field = model._meta.fields[name]
        if isinstance(field, CharField):
            rules[name] = ("str", field.max_length)
        elif isinstance(field, TextField):  # LongText too
            rules[name] = ("str", None)
        elif isinstance(field, (IntegerField, BigIntegerField)):
            rules[name] = ("int", None)
        elif isinstance(field, DoubleField):
            rules[name] = ("float", None)
    return rules


# From the models, so a column that grows is checked at its new size.
_JOB_RULES = _rules(Job, JOB_COLUMNS)
_ATTEMPT_RULES = _rules(Attempt, ATTEMPT_COLUMNS)
_AUDIT_RULES = _rules(Audit, ("uid", "at", "user", "host", "action", "target", "count",
                              "outcome", "detail"))


def check_record(record: Any) -> dict:
    """The record as it will be written, or RecordError saying what is wrong."""
    if not isinstance(record, dict):
        raise RecordError(f"not a record: a JSON {_json_type(record)}, not an object")
    kind = record.get("kind")
    required: tuple[str, ...]
    if kind == "job":
        rules, required = _JOB_RULES, ("id", "state", "seq")
    elif kind == "attempt":
        rules, required = _ATTEMPT_RULES, ("job_id", "attempt")
    elif kind == "audit":  # tq/audit.py
        rules, required = _AUDIT_RULES, ("uid", "at", "action")
        ids = record.get("ids", [])
        if not isinstance(ids, list) or not all(isinstance(i, str) and 0 < len(i) <= 64
                                                and _encodable(i) for i in ids):
            raise RecordError("audit record: ids must be a list of job ids")
        if isinstance(record.get("part", 0), bool) or not isinstance(record.get("part", 0), int):
            raise RecordError("audit record: part must be an integer")
    else:
        raise RecordError(f"not a record: kind {_short(kind)} is neither 'job', 'attempt' "
                          "nor 'audit'")
    for name in required:
        if record.get(name) in (None, ""):
            raise RecordError(f"{kind} record without {name}")
    cleaned = dict(record)
    for name, (kind_of, size) in rules.items():
        value = record.get(name)
        if value is None:
            continue
        if kind_of == "str":
            if not isinstance(value, str):
                raise RecordError(f"{name}: expected a string, got {_json_type(value)}")
            if size is not None and len(value) > size:
                raise RecordError(f"{name}: {len(value)} characters, longer than the "
                                  f"column's {size}")
            if not value.isascii() and not _encodable(value):  # isascii: most values, at C speed
                if name not in _FREE_TEXT:
                    raise RecordError(f"{name}: not valid Unicode (a lone surrogate)")
                cleaned[name] = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch
                                        for ch in value)
        elif kind_of == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise RecordError(f"{name}: expected an integer, got {_json_type(value)}")
            if not _INT_RANGE[0] <= value <= _INT_RANGE[1] and name != "seq":
                raise RecordError(f"{name}: {value} is out of range")
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise RecordError(f"{name}: expected a number, got {_json_type(value)}")
            if not math.isfinite(value):
                raise RecordError(f"{name}: {value} is not a finite number")
    if kind == "job":
        if record["state"] not in STATES:
            raise RecordError(f"state {_short(record['state'])} is not a job state")
        if not -2**31 <= record["seq"] <= 2**31 - 1:
            raise RecordError(f"seq: {record['seq']} is out of range")
    return cleaned


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_type(value: Any) -> str:
    for kind, name in ((bool, "boolean"), (str, "string"), (int, "number"), (float, "number"),
                       (list, "array"), (dict, "object")):
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# MariaDB data errors that pymysql reports as OperationalError (it maps only some).
_MYSQL_REFUSALS = {1292, 1366, 1406, 1264, 1265, 3140, 4025}


def unreachable(exc: BaseException) -> bool:
    """True if `exc` means the database could not be asked (keep and retry the
    records), False if it refused what it was given (set the record aside)."""
    if isinstance(exc, (peewee.OperationalError, peewee.InterfaceError)):
        code = exc.args[0] if exc.args else None
        return not (isinstance(code, int) and code in _MYSQL_REFUSALS)
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return True
    # Errors raised while opening the database (ConfigError) and driver errors
    # that escaped peewee's wrapper are outages too; the rest -- IntegrityError,
    # DataError, ProgrammingError, a value the driver cannot encode -- refusals.
    return not isinstance(exc, (peewee.DatabaseError, ValueError, TypeError, OverflowError))


def open_records(items: Iterable[str | bytes], signer: RecordSigner, source: str
                 ) -> tuple[list[dict], list[tuple[str, Any, str]]]:
    """Outbox items -> (checked records, set aside as (source, item, reason))."""
    records, refused = [], []
    for item in items:
        try:
            records.append(check_record(signer.open(item)))
        except (RecordRefused, RecordError) as exc:
            refused.append((source, item, str(exc)))
    return records, refused


def checked(records: Iterable[Any], source: str
            ) -> tuple[list[dict], list[tuple[str, Any, str]]]:
    good, refused = [], []
    for record in records:
        try:
            good.append(check_record(record))
        except RecordError as exc:
            refused.append((source, record, str(exc)))
    return good, refused


def write_or_set_aside(database, records: Iterable[dict]) -> tuple[int, list[tuple[dict, str]]]:
    """Write checked records; those the database still refuses are found by
    halving the batch (each half its own transaction) and returned with the
    database's reason, after every other record was written. An outage raises."""
    rows = coalesce(records)
    refused: list[tuple[dict, str]] = []
    written = 0

    def attempt(part: list[dict]) -> None:
        nonlocal written
        try:
            written += _write_rows(database, part)
        except Exception as exc:
            if unreachable(exc):
                raise
            if len(part) == 1:
                refused.append((part[0], f"refused by the database: {first_line(exc, 500)}"))
                return
            attempt(part[:len(part) // 2])
            attempt(part[len(part) // 2:])

    if rows:
        attempt(rows)
    return written, refused


def _evidence(item: Any) -> str:
    if isinstance(item, bytes):
        item = item.decode("utf-8", "surrogateescape")
    if not isinstance(item, str):
        item = json.dumps(item, default=repr)  # ASCII, NaN written as NaN
    # Valid UTF-8 always: lone surrogates and undecodable bytes written as \\udcXX.
    return item.encode("utf-8", "backslashreplace").decode("utf-8")


def set_aside(database, refused: list[tuple[str, Any, str]], dead_dir: Path | None) -> int:
    """Keep refused records as evidence: in the dead_record table, or (when the
    database is down or refuses even that) in dead_dir/DEAD_FILE. Logs each
    once (at most LOG_PER_ROUND one by one). Returns how many were set aside."""
    if not refused:
        return 0
    now = time.time()
    rows = []
    for source, item, reason in refused:
        text = _evidence(item)
        rows.append({"at": now, "source": _evidence(source)[:255],
                     "reason": _evidence(reason)[:2000],
                     "record": text[:DEAD_RECORD_LIMIT], "size": len(text)})
    for row in rows[:LOG_PER_ROUND]:
        logger.warning("history record from %s set aside: %s (tq quarantine lists it)",
                       row["source"], row["reason"])
    if len(rows) > LOG_PER_ROUND:
        logger.warning("%d more history records set aside this round", len(rows) - LOG_PER_ROUND)
    try:
        if database is None:
            raise ConnectionError("no history database")
        with bound(database, [DeadRecord]), database.atomic():
            for start in range(0, len(rows), 100):
                DeadRecord.insert_many(rows[start:start + 100]).execute()
    except Exception as exc:
        if dead_dir is None:
            logger.error("%d refused history records lost: no dead-letter table (%s) and no "
                         "data folder", len(rows), first_line(exc, 500))
            return 0
        dead_dir.mkdir(parents=True, exist_ok=True)
        with open(dead_dir / DEAD_FILE, "a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(row) + "\n" for row in rows))
    return len(rows)


def import_dead_file(database, dead_dir: Path | None) -> int:
    """Move records set aside in the file (while the table was out of reach) into the table."""
    if dead_dir is None or not (dead_dir / DEAD_FILE).exists():
        return 0
    taken = dead_dir / f"{DEAD_FILE}.{os.getpid()}-{time.time_ns()}"
    try:
        os.rename(dead_dir / DEAD_FILE, taken)
    except FileNotFoundError:
        return 0  # another process took it
    rows = []
    with open(taken, encoding="utf-8", errors="backslashreplace") as handle:
        for line in handle:
            try:
                row = json.loads(line)
                rows.append({"at": float(row["at"]), "source": str(row["source"])[:255],
                             "reason": str(row["reason"])[:2000],
                             "record": str(row["record"])[:DEAD_RECORD_LIMIT],
                             "size": int(row["size"])})
            except (ValueError, KeyError, TypeError):
                rows.append({"at": time.time(), "source": str(taken)[:255],
                             "reason": "unreadable line of the dead-records file",
                             "record": _evidence(line)[:DEAD_RECORD_LIMIT], "size": len(line)})
    try:
        with bound(database, [DeadRecord]), database.atomic():
            for start in range(0, len(rows), 100):
                DeadRecord.insert_many(rows[start:start + 100]).execute()
    except Exception:
        # Back for next time, after whatever was set aside meanwhile.
        with open(taken, encoding="utf-8", errors="backslashreplace") as old, \
                open(dead_dir / DEAD_FILE, "a", encoding="utf-8") as handle:
            handle.write(old.read())
        taken.unlink()
        raise
    taken.unlink()
    return len(rows)


def write_records(database, records: Iterable[dict]) -> int:
    """Upsert records into the history database in chunked multi-row statements
    (records built by tq itself; outside ones go through write_or_set_aside)."""
    return _write_rows(database, coalesce(records))


def _write_rows(database, merged: list[dict]) -> int:
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
                 buffer_rows: int = 100_000, spill_dir: Path | None = None,
                 signer: RecordSigner | None = None) -> None:
        self._database_factory = database_factory
        self.signer = signer or RecordSigner()
        # Refused records of this process (not from an outbox, which is re-read
        # after a failed round) waiting for the dead_record table.
        self._refused: list[tuple[str, Any, str]] = []
        self.set_aside = 0  # records set aside since start (refused, forged, junk)
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
        self._control: Control | None = None  # attach_outbox
        self._outboxes: list[str] = []
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="tq-history-writer", daemon=True)
        self._thread.start()

    def record(self, record: dict) -> None:
        with self._lock:
            self._pending.append(record)
            if len(self._pending) == self.flush_rows:  # once: the writer then takes them all
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

    def attach_outbox(self, control: Control, owner: str) -> None:
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
            good, refused = checked(batch, "memory")
            self._refused += refused
            for record in good:
                self._keep(record)
            try:
                taken, drained_all, refused = self._take_outboxes()
                refused = self._refused + refused
                if self._kept or refused or self._spill_files():
                    database = self._database_factory()
                    refused += self._replay_spill(database)
                    if self._kept:
                        written, rejected = write_or_set_aside(database, self._kept.values())
                        self.written += written
                        refused += [("history writer", record, reason)
                                    for record, reason in rejected]
                    self._kept.clear()
                    self.set_aside += set_aside(database, refused, self.spill_dir)
                    self._refused = []
                    try:
                        import_dead_file(database, self.spill_dir)
                    except Exception as exc:
                        logger.debug("dead-records file not imported yet: %s", exc)
                if taken and self._control is not None:  # taken only from attached outboxes
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
                                   first_line(exc))
                self._close_quietly()
                if len(self._refused) > 1000:  # the database is down: keep them on disk
                    self.set_aside += set_aside(None, self._refused, self.spill_dir)
                    self._refused = []
                if len(self._kept) > self.buffer_rows:
                    self._spill(list(self._kept.values()))
                    self._kept.clear()
                delay = min(2.0, max(delay * 2, 0.5))
                self._wake.clear()

    def _keep(self, record: dict) -> None:
        key = _key(record)
        self._kept[key] = merge(self._kept.get(key), record)

    def _take_outboxes(self) -> tuple[list[tuple[str, Any]], bool, list]:
        """Merge the oldest records of each outbox into the kept ones, so a job's
        `running` row (from memory) and its outcome (from the outbox) become one
        upsert. Returns what to trim from the outboxes once written, and whether
        every outbox was read to its end. Until trimmed, records stay in their
        outbox: after a failed write they are read (and merged) again. Items
        that are not valid records (or not signed by us) are returned to be set
        aside, and trimmed with the rest once that is done."""
        taken: list[tuple[str, Any]] = []
        refused: list[tuple[str, Any, str]] = []
        drained = True
        control = self._control
        if control is None:  # no outbox attached (not the consumer main process)
            return taken, drained, refused
        if self._outboxes:
            # What submitters left since the last round: renamed to one of ours
            # in one atomic step, so of several consumers exactly one takes it.
            try:
                adopted = control.outbox_adopt(SUBMITTED, self._outboxes[0])
            except Exception as exc:
                logger.debug("submitted outbox unreadable now: %s", exc)
                adopted = None
            if adopted:
                self._outboxes.append(adopted)
        for owner in list(self._outboxes):
            try:
                raw, marker = control.outbox_read(owner, OUTBOX_BATCH)
            except Exception as exc:
                logger.debug("outbox %s unreadable now: %s", owner, exc)
                drained = False
                continue
            if not raw:
                if owner != self._outboxes[0]:
                    self._outboxes.remove(owner)  # an adopted outbox, now empty
                continue
            records, rejected = open_records(raw, self.signer, _source(owner))
            for record in records:
                self._keep(record)
            refused += rejected
            taken.append((owner, marker))
            drained = drained and len(raw) < OUTBOX_BATCH
        return taken, drained, refused

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
                handle.write(encode_record(record) + "\n")
        logger.warning("history database still down: %d records spilled to %s",
                       len(records), path)

    def _replay_spill(self, database) -> list[tuple[str, Any, str]]:
        refused = []
        for path in self._spill_files():
            with open(path, encoding="utf-8", errors="surrogateescape") as handle:
                records, rejected = open_records(
                    (line for line in handle if line.strip()), RecordSigner(), path.name)
            written, failed = write_or_set_aside(database, records)
            self.written += written
            refused += rejected + [(path.name, record, reason) for record, reason in failed]
            path.unlink()
        return refused


def _source(owner: str) -> str:
    """Where an outbox record came from: the consumer (or submitters) that wrote it."""
    base = owner.split("+")[0]
    return "submitted jobs" if owner == SUBMITTED else f"outbox of {base}"


def write_submitted(control, database, owner: str, signer: RecordSigner | None = None,
                    dead_dir: Path | None = None) -> int:
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
            records, refused = open_records(raw, signer or RecordSigner(), "submitted jobs")
            done, rejected = write_or_set_aside(database, records)
            written += done
            set_aside(database, refused + [("submitted jobs", record, reason)
                                           for record, reason in rejected], dead_dir)
            control.outbox_done(name, marker)
    return written


HELD_PEEK = 20_000  # records of one outbox write_held reads at most


def write_held(control, database, job_ids: set[str], signer: RecordSigner | None = None
               ) -> int:
    """Write the records of `job_ids` that wait in any outbox: the submitted one,
    and the consumers' (a consumer's writer has taken them and not written them
    yet). Read, never trimmed (only an outbox's owner trims it), and upserted
    here as well: the upsert is idempotent and a later state never goes back, so
    the owner writing them again changes nothing. Records the database or the
    signature refuses are left for the owner to set aside. Returns how many were
    written.

    Why it is definitive: a submitted record moves one way, the submitted outbox
    -> a consumer's outbox (renamed, its name listed in the same step) -> the
    database (written, then trimmed). Reading the submitted outbox, then the
    list of outboxes and each one, then the database again (the caller) finds
    it wherever it was."""
    if not job_ids:
        return 0
    signer = signer or RecordSigner()
    found: list[dict] = []

    def look(owner: str) -> None:
        raw, _ = control.outbox_read(owner, HELD_PEEK)
        records, _refused = open_records(raw, signer, _source(owner))
        found.extend(r for r in records
                     if (r.get("id") if r["kind"] == "job" else r.get("job_id")) in job_ids)

    look(SUBMITTED)  # first, and only then the list: see above
    for owner in sorted(set(control.outbox_owners()) - {SUBMITTED}):
        look(owner)
    if not found:
        return 0
    written, _rejected = write_or_set_aside(database, found)
    return written


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

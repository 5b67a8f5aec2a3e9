"""The history database: every job, every attempt, ingested files and events.

The same models run on SQLite (embedded) and MySQL/MariaDB (production).
Times are stored as epoch seconds (DOUBLE): indexable, sortable and free of
time-zone surprises on either engine. DoubleField, not FloatField: on MySQL a
FLOAT is single precision, which rounds today's epoch seconds to 128 s.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import pymysql
from peewee import (
    BaseQuery,
    BigAutoField,
    BigIntegerField,
    CharField,
    DatabaseProxy,
    DoubleField,
    IntegerField,
    Model,
    SqliteDatabase,
    TextField,
)
from playhouse.pool import PooledMySQLDatabase
from playhouse.shortcuts import ReconnectMixin

db = DatabaseProxy()

STATES = ("queued", "scheduled", "running", "retrying", "succeeded", "failed", "canceled",
          "expired", "requeued")
TERMINAL = frozenset({"succeeded", "failed", "canceled", "expired", "requeued"})
# What `tq requeue` takes: a finished job not yet requeued. A requeued job is retired
# for good (its copy, linked by requeued_from, carries on); it keeps its error and
# attempts, so summaries still count the outcome it had (summaries.py).
REQUEUABLE = ("succeeded", "failed", "canceled", "expired")
_RANK = {"queued": 0, "scheduled": 1, "running": 2, "retrying": 3}


MOVED = 5  # a job moved off the schedule by run-now: see state_seq(moved=True)


def state_seq(state: str, attempt: int, moved: bool = False) -> int:
    """Order of a job's states: a later state never goes back to an earlier one.

    Within one attempt: queued < scheduled < running < retrying < an outcome;
    a later attempt beats an earlier one; any outcome beats every non-outcome;
    `requeued` beats everything, so a late `failed` record (an outbox replayed
    after an outage) can never put a retired job back in the failed set.
    `moved`: the record of a job an operator moved off the schedule (run now,
    `attempt` the attempts it had): above its scheduled and retrying records
    after those attempts, so its `queued` replaces `scheduled` and no late
    `scheduled` record brings the eta back, and below its next attempt's
    running record ((attempt + 1) * 10 + 2)."""
    if state == "requeued":
        return 2_000_000 + attempt * 10 + 5
    if state in TERMINAL:
        return 1_000_000 + attempt * 10 + 4
    return attempt * 10 + (MOVED if moved else _RANK[state])


class LongText(TextField):
    # TEXT on MySQL holds only 64 KB; tracebacks and event payloads can be larger.
    field_type = "LONGTEXT"

    def get_modifiers(self):
        return None


class BaseModel(Model):
    class Meta:
        database = db
        legacy_table_names = False


class Job(BaseModel):
    id = CharField(max_length=64, primary_key=True)
    queue = CharField(max_length=64, null=True)
    task = CharField(max_length=200, null=True)
    args = LongText(null=True)  # JSON
    kwargs = LongText(null=True)  # JSON
    priority = IntegerField(null=True)
    state = CharField(max_length=16)
    seq = IntegerField(default=0)  # state_seq(): guards the idempotent upsert
    attempts = IntegerField(null=True, default=0)
    max_retries = IntegerField(null=True)
    enqueued_at = DoubleField(null=True)
    eta = DoubleField(null=True)
    started_at = DoubleField(null=True)
    finished_at = DoubleField(null=True)
    updated_at = DoubleField(null=True)
    worker = CharField(max_length=128, null=True)
    error_type = CharField(max_length=200, null=True)
    error_message = TextField(null=True)
    traceback = LongText(null=True)
    requeued_from = CharField(max_length=64, null=True, index=True)
    # The task's return value as JSON text (tq/records.py result_json); NULL: none
    # (not succeeded, or from before schema 3). Added by migration 3.
    result = LongText(null=True)

    class Meta:
        indexes = (
            (("state", "queue", "enqueued_at"), False),
            # A state across all queues, newest first (the console's state tabs): without
            # it a failed tab walks every newer queued job to find 40 failed ones.
            (("state", "enqueued_at"), False),
            (("queue", "state", "finished_at"), False),
            (("state", "finished_at"), False),
            (("task", "enqueued_at"), False),
            (("finished_at",), False),
            # Summaries: what changed since the last roll-up, and each minute's arrivals.
            (("updated_at",), False),
            (("enqueued_at",), False),
        )


class Attempt(BaseModel):
    id = BigAutoField()
    job_id = CharField(max_length=64)
    attempt = IntegerField()
    worker = CharField(max_length=128, null=True)
    started_at = DoubleField(null=True)
    finished_at = DoubleField(null=True)
    outcome = CharField(max_length=16, null=True)  # succeeded/failed/retrying/canceled/lost/...
    error_type = CharField(max_length=200, null=True)
    error_message = TextField(null=True)
    traceback = LongText(null=True)

    class Meta:
        indexes = ((("job_id", "attempt"), True),
                   # Summaries recompute a minute's starts and finishes by these.
                   (("started_at",), False),
                   (("finished_at",), False))


class Event(BaseModel):
    """An ingested event stored by the built-in route target."""
    id = BigAutoField()
    job_id = CharField(max_length=64, unique=True)
    type = CharField(max_length=200, index=True)
    payload = LongText()
    source = CharField(max_length=255, null=True)
    received_at = DoubleField(index=True)


class IngestedFile(BaseModel):
    id = BigAutoField()
    name = CharField(max_length=255)
    path = CharField(max_length=1024, null=True)  # where it lives now
    size = BigIntegerField(default=0)
    sha256 = CharField(max_length=64, index=True)
    accepted = IntegerField(default=0)
    rejected = IntegerField(default=0)
    checkpoint = BigIntegerField(default=0)  # events enqueued so far (crash resume)
    started_at = DoubleField(null=True)
    finished_at = DoubleField(null=True, index=True)
    outcome = CharField(max_length=16, default="processing")  # processing/done/rejected/duplicate
    reason = TextField(null=True)
    claim = CharField(max_length=32, null=True, index=True)  # token in the processing/ name
    job_prefix = CharField(max_length=48, null=True)  # job ids are f"{job_prefix}-{position}"
    errors_path = CharField(max_length=1024, null=True)  # rejected/<name>.errors.jsonl


class Audit(BaseModel):
    """One operator action (see tq/audit.py): who, where, when, what, on what, how many."""
    id = BigAutoField()
    uid = CharField(max_length=36, null=True, unique=True)  # replays of the outbox dedupe on it
    at = DoubleField(index=True)
    user = CharField(max_length=64)
    host = CharField(max_length=128)
    action = CharField(max_length=32)
    target = TextField(null=True)  # the filter or group acted on, as text ("3 ids" for ids)
    count = IntegerField(default=0)
    outcome = CharField(max_length=16, null=True)  # done / partly / failed / nothing
    detail = TextField(null=True)  # why it was partly done or failed


class AuditJob(BaseModel):
    """Every job id an audited action touched, in full (not a cut comma list)."""
    id = BigAutoField()
    audit_id = BigIntegerField()
    job_id = CharField(max_length=64)

    class Meta:
        indexes = ((("audit_id", "job_id"), True), (("job_id",), False))


class HistoryMySQL(ReconnectMixin, PooledMySQLDatabase):
    """Pooled, and reconnects a connection the server or network dropped
    (outside a transaction), so a MariaDB restart needs no tq restart.

    Timeouts: connecting, including the server's greeting and the login, is
    bounded by `connect_timeout` (PyMySQL reads the greeting under its read
    timeout, so that starts as connect_timeout); each query then gets
    `query_timeout`, since a roll-up or a prune may rightly take longer."""

    def __init__(self, *args, query_timeout: float = 30.0, **kwargs) -> None:
        self.query_timeout = query_timeout
        super().__init__(*args, **kwargs)

    def _connect(self):
        try:
            conn = super()._connect()
        except pymysql.err.OperationalError as exc:
            # A server that accepts but never greets: say so, under a code
            # ReconnectMixin does not retry (2013 would be tried once more).
            if exc.args and exc.args[0] == 2013:
                raise pymysql.err.OperationalError(
                    2003, f"no answer from the MySQL server within "
                          f"{self.connect_params.get('connect_timeout')} s") from None
            raise
        # PyMySQL has no public setter; these are its constructor's values.
        conn._read_timeout = conn._write_timeout = self.query_timeout
        return conn


# Held while models are bound to one database (`bound`; migrations use it too).
# peewee's bind_ctx rebinds process-wide and restores what it found on exit, so
# two of them interleaved in two threads leave a model bound to the wrong
# database for good (seen: audit rows read from another runtime's database).
# Reentrant: a bound block may open the history, which checks its schema (bound too).
_init_lock = threading.RLock()


def _new_init_lock() -> None:
    # A process worker forked while another thread was binding models must
    # not inherit the lock held: it would wait for it forever.
    global _init_lock
    _init_lock = threading.RLock()


os.register_at_fork(after_in_child=_new_init_lock)


class HistorySqlite(SqliteDatabase):
    """The embedded history file. Several processes opening a new file at once
    (a consumer's forked workers, `tq up` beside a CLI command) can see the
    switch to WAL fail for a moment with "disk I/O error" or "database is
    locked" while another one creates the -wal/-shm files: connecting is
    retried for a few seconds before that is an error."""

    def _connect(self) -> Any:
        deadline = time.monotonic() + 5
        while True:
            try:
                return super()._connect()  # type: ignore[misc]  # peewee stubs omit _connect
            except sqlite3.OperationalError as exc:
                # Only the race: a file that cannot be opened at all fails at once.
                if time.monotonic() > deadline or not any(
                        word in str(exc) for word in ("disk I/O error", "locked")):
                    raise
                time.sleep(0.05)  # back-off between retries, not synchronisation


def open_database(url: str, password: str = "", connect_timeout: float = 5.0,
                  query_timeout: float = 30.0):
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else parts.path
        from pathlib import Path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return HistorySqlite(path, pragmas={"busy_timeout": 10000, "journal_mode": "wal",
                                            "synchronous": "normal"}, timeout=10)
    return HistoryMySQL(
        parts.path.strip("/"),
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=password or unquote(parts.password or ""),
        charset="utf8mb4",
        connect_timeout=connect_timeout,
        read_timeout=connect_timeout,  # the greeting and login; then query_timeout
        write_timeout=connect_timeout,
        query_timeout=query_timeout,
        max_connections=32,
        stale_timeout=300,
        autoconnect=True,
    )


@contextmanager
def bound(database, models: list[type[Model]]) -> Iterator[None]:
    """`models` bound to `database` for the block, one such block at a time
    (see _init_lock): the one way tq binds models outside the global proxy."""
    with _init_lock, database.bind_ctx(models):
        yield


# peewee's stubs type .dicts() and .tuples() as returning the model query itself (Self),
# so rows read through them look like model instances; these name what they really yield.
def dict_rows(query: BaseQuery) -> list[dict[str, Any]]:
    """The rows of `query`, each a dict of column name to value."""
    return list(cast(Iterable[dict[str, Any]], query.dicts()))


def tuple_rows(query: BaseQuery) -> list[tuple[Any, ...]]:
    """The rows of `query`, each a tuple of its selected columns in order."""
    return list(cast(Iterable[tuple[Any, ...]], query.tuples()))


__all__ = ["db", "Job", "Attempt", "Event", "IngestedFile", "Audit", "AuditJob", "STATES",
           "TERMINAL", "REQUEUABLE",
           "state_seq", "bound", "open_database", "dict_rows", "tuple_rows"]

"""The live objects built from a Config: queues, control state, history database.

Everything that talks to a server hangs off one Runtime, so the CLI, the
consumer, the watcher and the console share one way in. Connections are per
process: a forked worker process opens its own on first use.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from tq import migrations, registry
from tq.config import BackendUnavailable, Config, load_config
from tq.format import first_line
from tq.history import HistoryWriter, write_submitted
from tq.migrations import SchemaError
from tq.models import db, open_database
from tq.queues import TqHuey, default_worker_name
from tq.serializer import RecordSigner
from tq.storage import RedisControl, SqliteControl, TqRedisStorage, TqSqliteStorage
from tq.storage.contract import backend_unreachable

if TYPE_CHECKING:
    from peewee import Database

logger = logging.getLogger("tq")


class UnknownQueue(LookupError):
    pass


class TimedOut:
    """A server's last failure to answer, kept when the asking took a timeout (not
    a quick no) and for one connect_timeout after it: one command, or one scrape,
    then waits out a silent server once, not once per read, and a long-running
    process asks again after that. One rule for the queue backend and history."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._at: float = 0.0
        self._line: str | None = None

    def raise_if_recent(self) -> None:
        if self._line is not None and time.monotonic() - self._at < self.timeout:
            raise BackendUnavailable(self._line)

    def failed(self, line: str, started: float) -> str:
        """`line` for a failure whose asking began at `started` (monotonic)."""
        if time.monotonic() - started >= self.timeout / 2:
            self._at, self._line = time.monotonic(), line
        return line

    def answered(self) -> None:
        self._at, self._line = 0.0, None


class Runtime:
    config: Config
    queues: dict[str, TqHuey]  # queue name -> its Huey, in [queues] order
    control: RedisControl | SqliteControl  # consumers, pause, held, cancels: the queue backend's
    redis_pool: redis.ConnectionPool | None  # None on the embedded backend
    records: RecordSigner

    def __init__(self, config: Config) -> None:
        self.config = config
        registry.import_task_modules(config.task_modules)
        # Seals every history record put in an outbox and opens it again (see serializer).
        self.records = RecordSigner(config.secret)
        self._lock = threading.RLock()
        # A process worker is forked while other threads may hold this lock
        # (the test or console reading history, the writer): the child needs
        # a lock of its own or its first history record waits forever.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _new_lock_after_fork(ref))
        self._database: Database | None = None
        self._database_pid = 0
        self._history_timed_out = TimedOut(config.queue.connect_timeout)
        self._queue_timed_out = TimedOut(config.queue.connect_timeout)
        # Whether history_db() brings the schema up to date (a writer such as
        # `tq serve` that may start before the database is there) or only checks it.
        self.migrates = False
        self._schema_current = False  # checked or migrated by this process
        self._writer: HistoryWriter | None = None
        self._writer_pid = 0
        self._worker_name: str | None = None
        self.consumer_pid: int | None = None
        # This process's wall clock: history timestamps and the like. Never
        # used to judge another process's liveness (that is the queue
        # backend's clock: control.workers()). A seam for tests, as Huey
        # passes `now` around: a host whose clock is off is a Runtime whose
        # `clock` is shifted.
        self.clock: Callable[[], float] = time.time
        self.queues: dict[str, TqHuey] = {}
        queue_cfg = config.queue
        if queue_cfg.backend == "redis":
            # connect_timeout bounds a connect and every reply: a Redis that
            # accepts connections but never answers fails in that time. The one
            # blocking command (storage.wait_for_work) blocks for less than it.
            self.redis_pool = redis.ConnectionPool.from_url(
                queue_cfg.url, socket_connect_timeout=queue_cfg.connect_timeout,
                socket_timeout=queue_cfg.connect_timeout, health_check_interval=30)
            for name in config.queues:
                self.queues[name] = TqHuey(name, self, TqRedisStorage,
                                           prefix=queue_cfg.prefix,
                                           connection_pool=self.redis_pool)
            self.control = RedisControl(next(iter(self.queues.values())).storage)
        else:
            self.redis_pool = None
            path = Path(queue_cfg.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            for name in config.queues:
                self.queues[name] = TqHuey(name, self, TqSqliteStorage, filename=str(path))
            self.control = SqliteControl(next(iter(self.queues.values())).storage)

    # --- queues ---------------------------------------------------------------
    def queue(self, name: str) -> TqHuey:
        try:
            return self.queues[name]
        except KeyError:
            raise UnknownQueue(f"unknown queue {name!r} (configured: "
                               f"{', '.join(self.queues)})") from None

    def check_queue_backend(self) -> None:
        """Fail fast with one line when the queue backend cannot be reached.

        A check that just timed out answers again at once for connect_timeout
        seconds (as history_db does), so one command, or one scrape, waits out
        a silent Redis once, not once per read; a long-running process asks
        again after that."""
        self._queue_timed_out.raise_if_recent()
        started = time.monotonic()
        try:
            self.control.ping()
        except Exception as exc:
            raise BackendUnavailable(self._queue_failed(exc, started)) from None
        self._queue_timed_out.answered()

    def _queue_failed(self, exc: BaseException, started: float) -> str:
        return self._queue_timed_out.failed(
            f"queue backend {self.config.queue_url_safe} unreachable: {first_line(exc)}",
            started)

    # --- history ----------------------------------------------------------------
    # Two ways in, both explicit: history_db() for everyone (it checks the schema
    # version, one SELECT per process, and never changes the schema, unless
    # `migrates` is set: tq serve, a writer that may start before its database)
    # and migrate_history() for writers at start (tq.migrations).
    def history_db(self) -> Database:
        """The history database of this process, the models (models.db) bound to
        it. BackendUnavailable if it does not answer, or its subclass SchemaError
        ("run tq migrate") if its schema is missing, older or newer than this tq."""
        with self._lock:
            return self._history(migrate=self.migrates)[0]

    def migrate_history(self) -> list[str]:
        """Bring the history schema up to date (writers at start, `tq migrate`):
        one line per migration applied; none, and no statement, once this
        process has found the schema current."""
        with self._lock:
            return self._history(migrate=True)[1]

    def _history(self, migrate: bool) -> tuple[Database, list[str]]:
        if self._database_pid != os.getpid():
            # After fork the parent's connections are not ours to use or close.
            self._database_pid = os.getpid()
            self._database = None
            self._schema_current = False
        if self._database is not None and self._schema_current:
            if db.obj is not self._database:  # another runtime of this process bound them
                db.initialize(self._database)
            return self._database, []
        self._history_timed_out.raise_if_recent()
        timeout = self.config.queue.connect_timeout
        history = self.config.history
        if self._database is None:
            self._database = open_database(history.url, history.password, timeout,
                                           history.query_timeout)
        database, where = self._database, self.config.history_url_safe
        started = time.monotonic()
        try:
            done = migrations.migrate(database, where) if migrate else []
            if not migrate:
                migrations.check(database, where)
        except SchemaError:
            raise
        except Exception as exc:
            raise BackendUnavailable(self._history_timed_out.failed(
                f"history database {where} unreachable: {first_line(exc)}", started)) from None
        self._history_timed_out.answered()
        self._schema_current = True
        db.initialize(database)
        return database, done

    @property
    def writer(self) -> HistoryWriter:
        with self._lock:
            if self._writer is None or self._writer_pid != os.getpid():
                self._writer_pid = os.getpid()
                history = self.config.history
                self._writer = HistoryWriter(
                    self._writer_database, flush_interval=history.flush_interval,
                    flush_rows=history.flush_rows, buffer_rows=history.buffer_rows,
                    spill_dir=self.config.data_dir / "spill", signer=self.records)
            return self._writer

    def _writer_database(self) -> Database:
        # The writer is a writer: it brings the schema up to date before its
        # first round (free afterwards), so history is written from a fresh start.
        with self._lock:
            return self._history(migrate=True)[0]

    def flush_history(self, timeout: float = 10.0) -> bool:
        """Write what this process recorded; in a process that is not a
        consumer (whose writer does it), also the jobs submitted but not yet
        in history. False if the history database could not be written."""
        writer = self._writer if self._writer_pid == os.getpid() else None
        done = writer.flush(timeout) if writer is not None else True
        forked_worker = self.consumer_pid not in (None, os.getpid())
        try:
            if writer is not None and writer.drains_outboxes:
                self.history_db()  # reads that follow go to this runtime's database
            elif not forked_worker:  # a worker leaves it to its consumer's writer
                self.write_submitted()
        except Exception as exc:
            logger.warning("history not brought up to date: %s", first_line(exc))
            return False
        return done

    def write_submitted(self) -> int:
        """Write the history records of submitted jobs that no consumer has
        written yet (see storage.SUBMITTED); returns how many."""
        database = self.history_db()
        self._queue_timed_out.raise_if_recent()  # a silent Redis is waited out once
        started = time.monotonic()
        try:
            return write_submitted(self.control, database, f"{self.worker_name()}-writer",
                                   self.records, self.config.data_dir / "spill")
        except Exception as exc:
            if backend_unreachable(exc):
                self._queue_failed(exc, started)
            raise

    # --- identity of this process as a consumer ------------------------------------
    def worker_name(self) -> str:
        if self._worker_name is None:
            self._worker_name = default_worker_name()
        return self._worker_name

    def set_worker_name(self, name: str) -> None:
        self._worker_name = name

    @property
    def cancel_checker(self) -> Callable[[str], bool]:
        return self.control.cancel_requested

    def close(self) -> None:
        if self._writer is not None and self._writer_pid == os.getpid():
            self._writer.close()
        self._writer = None
        if self._database is not None and self._database_pid == os.getpid():
            self._database.close()
        for huey in self.queues.values():
            close = getattr(huey.storage, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    pass
        if self.redis_pool is not None:
            self.redis_pool.disconnect()


def _new_lock_after_fork(ref: weakref.ref[Runtime]) -> None:
    runtime = ref()
    if runtime is not None:
        runtime._lock = threading.RLock()


_current: Runtime | None = None


def configure(config: Config | None = None) -> Runtime:
    """Make `config` (default: tq.ini and TQ_* variables) the process's runtime."""
    global _current
    if _current is not None:
        _current.close()
    _current = Runtime(config or load_config())
    return _current


def current() -> Runtime:
    """Inside a job: the runtime of the consumer running it. Elsewhere: the
    process's runtime (configured, or built from tq.ini and TQ_* variables)."""
    global _current
    serving = registry.serving_runtime()
    if serving is not None:
        return serving
    if _current is None:
        _current = Runtime(load_config())
    return _current

"""The embedded backend: TqSqliteStorage (one queue) and SqliteControl (shared state).

All queues and the shared state live in one SQLite file beside Huey's own
tables (`task`, `schedule`, `kv`); every step of the contract (see
contract.py) is one transaction. The file is on one host, so that host's
clock is the backend's clock.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from huey.storage import SqliteStorage

from tq import control as parse
from tq.storage.contract import (
    DEDUPE_TTL,
    QUARANTINE_DATA,
    QUARANTINE_LIMIT,
    SUBMITTED,
    Claimed,
    Finished,
    Inflight,
    Malformed,
    QuarantineEntry,
    Token,
    quarantine_entry,
)

_SQLITE_DDL = [
    # task_id: the message's row in `task`, so a put-back job keeps its place.
    "create table if not exists tq_inflight (token text primary key, queue text not null, "
    "data blob not null, priority real not null, worker text not null, taken real not null, "
    "task_id integer)",
    "create index if not exists tq_inflight_queue on tq_inflight (queue)",
    "create table if not exists tq_held (id integer primary key, queue text not null, "
    "task text not null, data blob not null, priority real not null)",
    # AUTOINCREMENT: a quarantine id is never reused after a purge.
    "create table if not exists tq_quarantined (id integer primary key autoincrement, "
    "queue text, worker text, at real, reason text, size integer, data blob)",
    "create table if not exists tq_paused (target text primary key, info text not null)",
    "create table if not exists tq_workers (id text primary key, info text not null)",
    "create table if not exists tq_cancel (job_id text primary key, at real not null)",
    "create table if not exists tq_ticks (name text not null, tick integer not null, "
    "at real not null, primary key (name, tick))",
    "create table if not exists tq_periodic (name text primary key, info text not null)",
    "create table if not exists tq_lost (job_id text primary key, n integer not null)",
    "create table if not exists tq_dedupe (id text primary key, at real not null)",
    "create index if not exists tq_dedupe_at on tq_dedupe (at)",
    "create table if not exists tq_outbox (id integer primary key, owner text not null, "
    "record text not null)",
    "create index if not exists tq_outbox_owner on tq_outbox (owner, id)",
]


def _to_outbox(curs: Any, owner: str | None, records: Iterable[str]) -> None:
    records = list(records)
    if records and owner is None:
        raise ValueError("history records need an outbox owner")
    curs.executemany("insert into tq_outbox (owner, record) values (?, ?)",
                     [(owner, record) for record in records])


def _reset_after_fork(ref: weakref.ref[TqSqliteStorage]) -> None:
    storage = ref()
    if storage is not None:
        storage.lock = threading.Lock()
        # The parent's connection object is kept, unused: closing it here could
        # disturb the parent's use of the same SQLite file.
        storage._parent_conn, storage._conn = storage._conn, None


class TqSqliteStorage(SqliteStorage):
    """One queue in the embedded SQLite file; all queues share the file."""

    ddl = SqliteStorage.ddl + _SQLITE_DDL

    def __init__(self, name: str, queue: str, filename: str, **kwargs) -> None:
        super().__init__(name=name, filename=filename, **kwargs)
        self.queue = queue
        # Process workers are forked while other threads (history writer,
        # heartbeat) may hold this lock or have reopened the connection Huey
        # closed before forking: the child starts with a lock and connection
        # of its own, or it can wait forever on a lock no thread will release.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _reset_after_fork(ref))

    def enqueue_many(self, items: list[tuple[bytes, int]], dedupe_ids: list[str] | None = None,
                     records: list[str] | None = None) -> list[bool]:
        accepted = []
        with self.db(commit=True) as curs:
            for index, (data, priority) in enumerate(items):
                if dedupe_ids is not None:
                    curs.execute("insert or ignore into tq_dedupe (id, at) values (?, ?)",
                                 (dedupe_ids[index], time.time()))
                    if curs.rowcount != 1:
                        accepted.append(False)
                        continue
                curs.execute("insert into task (queue, data, priority) values (?, ?, ?)",
                             (self.name, self.to_blob(data), priority or 0))
                accepted.append(True)
            if records:
                _to_outbox(curs, SUBMITTED,
                           [record for record, ok in zip(records, accepted) if ok])
            if dedupe_ids is not None:
                curs.execute("delete from tq_dedupe where at < ?", (time.time() - DEDUPE_TTL,))
        return accepted

    def submit_once(self, jobs: list[tuple[str, bytes, int, datetime | None, str | None]]
                    ) -> list[bool]:
        """As TqRedisStorage.submit_once, in one transaction."""
        accepted = []
        now = time.time()
        with self.db(commit=True) as curs:
            for job_id, data, priority, eta, record in jobs:
                due = eta.replace(tzinfo=UTC).timestamp() if eta is not None else now
                # A marker is kept DEDUPE_TTL past the job's eta (`at` is when it starts).
                curs.execute("insert or ignore into tq_dedupe (id, at) values (?, ?)",
                             (job_id, max(now, due)))
                if curs.rowcount != 1:
                    accepted.append(False)
                    continue
                if eta is None:
                    curs.execute("insert into task (queue, data, priority) values (?, ?, ?)",
                                 (self.name, self.to_blob(data), priority or 0))
                else:
                    curs.execute("insert into schedule (queue, data, timestamp) "
                                 "values (?, ?, ?)", (self.name, self.to_blob(data),
                                                      eta.timestamp()))
                if record:
                    _to_outbox(curs, SUBMITTED, [record])
                accepted.append(True)
            curs.execute("delete from tq_dedupe where at < ?", (now - DEDUPE_TTL,))
        return accepted

    def wake_workers(self) -> None:
        pass  # SQLite has nothing to block on: idle workers poll

    def schedule_many(self, items: list[tuple[bytes, datetime]], records: list[str] | None = None
                      ) -> None:
        with self.db(commit=True) as curs:
            curs.executemany("insert into schedule (queue, data, timestamp) values (?, ?, ?)",
                             [(self.name, self.to_blob(data), eta.timestamp())
                              for data, eta in items])
            if records:
                _to_outbox(curs, SUBMITTED, records)

    def remove_scheduled(self, raw: bytes) -> bool:
        with self.db(commit=True) as curs:
            curs.execute("delete from schedule where queue = ? and data = ?",
                         (self.name, self.to_blob(raw)))
            return curs.rowcount > 0

    def claim(self, worker: str, finished: Finished | None = None, take: bool = True
              ) -> Claimed | None:
        if finished:
            self.settle(worker, finished)
        if not take or not self.sql("select 1 from task where queue = ? limit 1", (self.name,),
                                    results=True):
            return None
        with self.db(commit=True) as curs:
            curs.execute("select 1 from tq_paused where target = ?", (self.queue,))
            if curs.fetchone() is not None:
                return None
            curs.execute("select id, data, priority from task where queue = ? "
                         "order by priority desc, id limit 1", (self.name,))
            row = curs.fetchone()
            if row is None:
                return None
            task_id, data, priority = row
            token = uuid.uuid4().hex
            curs.execute("delete from task where id = ?", (task_id,))
            curs.execute("insert into tq_inflight (token, queue, data, priority, worker, taken, "
                         "task_id) values (?, ?, ?, ?, ?, ?, ?)",
                         (token, self.queue, data, priority, worker, time.time(), task_id))
            curs.execute("select 1 from kv where queue = ? limit 1", (self.name,))
            return Claimed(token, bytes(data), curs.fetchone() is not None)

    def settle(self, worker: str, finished: Finished) -> None:
        """One transaction: in-flight records dropped, outcomes to `worker`'s
        outbox, Huey flags cleared."""
        if not finished:
            return
        with self.db(commit=True) as curs:
            curs.executemany("delete from tq_inflight where token = ?",
                             [(token,) for token in finished.tokens])
            _to_outbox(curs, worker, finished.records)
            curs.executemany("delete from kv where queue = ? and key = ?",
                             [(self.name, key) for key in finished.flags])

    def release(self, token: Token, outbox: str | None = None, records: Sequence[str] = ()
                ) -> None:
        with self.db(commit=True) as curs:
            curs.execute("delete from tq_inflight where token = ?", (token,))
            _to_outbox(curs, outbox, records)

    def put_back(self, token: Token, data: bytes | None = None, priority: int | None = None,
                 drop: bool = False, outbox: str | None = None, records: Sequence[str] = ()
                 ) -> bool:
        with self.db(commit=True) as curs:
            curs.execute("select data, priority, task_id from tq_inflight where token = ?",
                         (token,))
            row = curs.fetchone()
            if row is None:
                return False
            curs.execute("delete from tq_inflight where token = ?", (token,))
            _to_outbox(curs, outbox, records)
            if not drop:
                values = (self.name, self.to_blob(data) if data is not None else row[0],
                          row[1] if priority is None else priority)
                # Back where it was: its own row id (order is priority, id), or,
                # when a later job took that id (SQLite reuses the highest
                # one), ahead of every job now queued.
                curs.execute("insert or ignore into task (id, queue, data, priority) "
                             "values (?, ?, ?, ?)", (row[2], *values))
                if curs.rowcount != 1:
                    curs.execute("insert into task (id, queue, data, priority) values "
                                 "((select coalesce(min(id), 1) - 1 from task), ?, ?, ?)",
                                 values)
            return True

    def inflight(self) -> list[Inflight]:
        return self.inflight_records()[0]

    def inflight_records(self) -> tuple[list[Inflight], list[Malformed]]:
        rows = self.sql("select token, data, priority, worker, taken from tq_inflight "
                        "where queue = ?", (self.queue,), results=True)
        records, malformed = [], []
        for token, data, priority, worker, taken in rows:
            fields = (parse.inflight(worker, priority, taken) if isinstance(data, bytes)
                      else "message is not a blob")
            if isinstance(fields, str):
                parse.report("in-flight record", token, fields)
                malformed.append(Malformed(token, parse.as_bytes(data),
                                           f"malformed in-flight record: {fields}"))
                continue
            records.append(Inflight(token, data, fields[1], fields[0], fields[2]))
        return records, malformed

    def inflight_count(self) -> int:
        return self.sql("select count(*) from tq_inflight where queue = ?", (self.queue,),
                        results=True)[0][0]

    def hold(self, token: Token, task: str) -> None:
        with self.db(commit=True) as curs:
            curs.execute("insert into tq_held (queue, task, data, priority) "
                         "select queue, ?, data, priority from tq_inflight where token = ?",
                         (task, token))
            curs.execute("delete from tq_inflight where token = ?", (token,))

    def unhold(self, task: str) -> int:
        with self.db(commit=True) as curs:
            curs.execute("insert into task (queue, data, priority) select ?, data, priority "
                         "from tq_held where queue = ? and task = ? order by id",
                         (self.name, self.queue, task))
            moved = curs.rowcount
            curs.execute("delete from tq_held where queue = ? and task = ?", (self.queue, task))
            return moved

    def held_count(self) -> int:
        return self.sql("select count(*) from tq_held where queue = ?", (self.queue,),
                        results=True)[0][0]

    def initialize_schema(self) -> None:
        # Files made by older versions of tq. (These two steps were two methods
        # of one name, so the first, task_id, never ran on an old file.)
        super().initialize_schema()
        with self.db(commit=True, close=True) as curs:
            # Files made before tq_inflight had task_id.
            curs.execute("pragma table_info(tq_inflight)")
            if "task_id" not in {row[1] for row in curs.fetchall()}:
                try:
                    curs.execute("alter table tq_inflight add column task_id integer")
                except Exception as exc:  # another process added it first
                    if "duplicate column" not in str(exc):
                        raise
            # Entries of the table before quarantine ids were stable.
            curs.execute("select 1 from sqlite_master where name = 'tq_quarantine'")
            if curs.fetchone():
                curs.execute("insert into tq_quarantined (queue, at, reason, size, data) "
                             "select queue, at, reason, length(data), data from tq_quarantine "
                             "order by id")
                curs.execute("drop table tq_quarantine")

    def quarantine(self, token: Token | None, data: bytes, reason: str,
                   worker: str | None = None) -> int:
        with self.db(commit=True) as curs:
            curs.execute("insert into tq_quarantined (queue, worker, at, reason, size, data) "
                         "values (?, ?, ?, ?, ?, ?)",
                         (self.queue, worker, time.time(), reason, len(data),
                          bytes(data[:QUARANTINE_DATA])))
            entry_id = curs.lastrowid
            curs.execute("delete from tq_quarantined where id <= ?",
                         (entry_id - QUARANTINE_LIMIT,))
            if token is not None:
                curs.execute("delete from tq_inflight where token = ?", (token,))
            return entry_id


class SqliteControl:
    def __init__(self, storage: TqSqliteStorage) -> None:
        self.storage = storage
        self._lock = threading.Lock()
        # The queue backend's clock: SQLite's file is on one host, whose clock
        # every process using it shares. An attribute so tests can set it.
        self.clock = time.time

    def now(self) -> float:
        return self.clock()

    def _sql(self, query: str, params: tuple = (), commit: bool = False, results: bool = False):
        return self.storage.sql(query, params, commit=commit, results=results)

    def ping(self) -> None:
        self._sql("select 1", results=True)

    def set_paused(self, target: str, paused: bool, info: dict[str, Any] | None = None) -> None:
        if paused:
            self._sql("insert or replace into tq_paused (target, info) values (?, ?)",
                      (target, json.dumps(info or {})), commit=True)
        else:
            self._sql("delete from tq_paused where target = ?", (target,), commit=True)

    def paused(self) -> dict[str, dict[str, Any]]:
        flags = (parse.pause_info(target, info) for target, info in
                 self._sql("select target, info from tq_paused", results=True))
        return dict(flag for flag in flags if flag is not None)

    def heartbeat(self, worker_id: str, info: dict[str, Any]) -> None:
        """Register or refresh a consumer; the beat is this (the one) host's time."""
        self._sql("insert or replace into tq_workers (id, info) values (?, ?)",
                  (worker_id, json.dumps(dict(info, beat=self.clock()))), commit=True)

    def workers(self) -> list[dict[str, Any]]:
        now = self.clock()
        workers = []
        for worker_id, info in self._sql("select id, info from tq_workers", results=True):
            value = parse.json_object(info, "heartbeat", worker_id)
            if value is not None:
                worker = parse.heartbeat(worker_id, value, value.get("beat"), now)
                if worker is not None:
                    workers.append(worker)
        return workers

    def forget_worker(self, worker_id: str) -> None:
        self._sql("delete from tq_workers where id = ?", (worker_id,), commit=True)

    def request_cancel(self, job_ids: Iterable[str]) -> None:
        now = time.time()
        with self.storage.db(commit=True) as curs:
            curs.executemany("insert or replace into tq_cancel (job_id, at) values (?, ?)",
                             [(job_id, now) for job_id in job_ids])
            curs.execute("delete from tq_cancel where at < ?", (now - 86400,))

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self._sql("select 1 from tq_cancel where job_id = ?", (job_id,),
                              results=True))

    def claim_tick(self, name: str, tick: int, ttl: int) -> bool:
        now = time.time()
        with self.storage.db(commit=True) as curs:
            curs.execute("insert or ignore into tq_ticks (name, tick, at) values (?, ?, ?)",
                         (name, tick, now))
            won = curs.rowcount == 1
            curs.execute("delete from tq_ticks where at < ?", (now - max(ttl, 60),))
            return won

    def record_periodic(self, name: str, info: dict[str, Any]) -> None:
        self._sql("insert or replace into tq_periodic (name, info) values (?, ?)",
                  (name, json.dumps(info)), commit=True)

    def periodic_runs(self) -> dict[str, dict[str, Any]]:
        runs = (parse.periodic_run(name, info) for name, info in
                self._sql("select name, info from tq_periodic", results=True))
        return dict(run for run in runs if run is not None)

    def count_loss(self, job_id: str) -> int:
        with self.storage.db(commit=True) as curs:
            curs.execute("insert into tq_lost (job_id, n) values (?, 1) "
                         "on conflict(job_id) do update set n = n + 1", (job_id,))
            curs.execute("select n from tq_lost where job_id = ?", (job_id,))
            count = curs.fetchone()[0]
            if not isinstance(count, int):  # a junk row: count from here
                parse.report("loss counter", job_id, "not a number")
                curs.execute("update tq_lost set n = 1 where job_id = ?", (job_id,))
                count = 1
            return count

    def outbox_read(self, owner: str, limit: int) -> tuple[list[str], int | None]:
        rows = self._sql("select id, record from tq_outbox where owner = ? order by id limit ?",
                         (owner, limit), results=True)
        return [record for _, record in rows], (rows[-1][0] if rows else None)

    def outbox_done(self, owner: str, marker: int | None) -> None:
        if marker is not None:
            self._sql("delete from tq_outbox where owner = ? and id <= ?", (owner, marker),
                      commit=True)

    def outbox_owners(self) -> list[str]:
        return [owner for owner, in self._sql("select distinct owner from tq_outbox",
                                              results=True)]

    def outbox_adopt(self, dead: str, owner: str) -> str | None:
        adopted = f"{owner}+{uuid.uuid4().hex[:8]}"
        # A read first: writers poll the SUBMITTED outbox, and an UPDATE that
        # changes nothing would still take the file's write lock each time.
        if not self._sql("select 1 from tq_outbox where owner = ? limit 1", (dead,),
                         results=True):
            return None
        with self.storage.db(commit=True) as curs:
            curs.execute("update tq_outbox set owner = ? where owner = ?", (adopted, dead))
            return adopted if curs.rowcount else None

    def outbox_size(self) -> int:
        return self._sql("select count(*) from tq_outbox", results=True)[0][0]

    _QUARANTINE_COLUMNS = "id, queue, worker, at, reason, size, data"

    def quarantined(self, limit: int = 100) -> list[QuarantineEntry]:
        rows = self._sql(f"select {self._QUARANTINE_COLUMNS} from tq_quarantined "
                         "order by id desc limit ?", (limit,), results=True)
        return [_entry_from_row(row) for row in rows]

    def quarantine_count(self) -> int:
        return self._sql("select count(*) from tq_quarantined", results=True)[0][0]

    def quarantine_get(self, entry_id: int) -> QuarantineEntry | None:
        rows = self._sql(f"select {self._QUARANTINE_COLUMNS} from tq_quarantined where id = ?",
                         (int(entry_id),), results=True)
        return _entry_from_row(rows[0]) if rows else None

    def quarantine_drop(self, entry_ids: Iterable[int] | None = None) -> int:
        with self.storage.db(commit=True) as curs:
            if entry_ids is None:
                curs.execute("delete from tq_quarantined")
                return curs.rowcount
            removed = 0
            for entry_id in entry_ids:
                curs.execute("delete from tq_quarantined where id = ?", (int(entry_id),))
                removed += curs.rowcount
            return removed


def _entry_from_row(row: tuple[Any, ...]) -> QuarantineEntry:
    entry_id, queue, worker, at, reason, size, data = row
    data = data if isinstance(data, (bytes, memoryview)) else str(data or "").encode()
    return quarantine_entry(entry_id, queue, worker, at, reason, size, bytes(data))


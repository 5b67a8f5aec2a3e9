"""Queue storage: Huey's priority storages plus what tq keeps beside the queue.

Huey's storages pop a message and forget it, so a consumer killed mid-job loses
the job. tq's `claim` pops the message AND writes an in-flight record in one
atomic step (a Lua script on Redis, one transaction on SQLite); `release`
drops the record once the job has an outcome. A record whose consumer stopped
heartbeating is put back on the queue by a live consumer (see recovery.py).

The same backend holds the rest of tq's shared state, because it is the one
thing every consumer on every machine already talks to: pause flags, consumer
heartbeats, cancel requests, periodic-tick claims and moved-aside messages.
Two backends implement it, one module each (redis.py, sqlite.py); the
Protocols of contract.py, QueueStorage and Control, state what they share.

Liveness is judged by the queue backend's clock alone: a heartbeat and an
in-flight record carry the time the backend stamped on them (Redis `TIME`
inside the scripts; on SQLite, the one host's clock), and a heartbeat's age
is that backend's "now" minus it, so hosts whose clocks disagree never take
each other for dead. Everything read back is parsed entry by entry
(control.py): junk written into these keys is skipped, never fatal.

A submitted job's `queued` (or `scheduled`) history record is written in the
same atomic step as its message, to the shared outbox SUBMITTED: submitting
never waits for (or depends on) the history database, and the record cannot
be lost between the two. Consumers' history writers adopt that outbox and
write it, as they do a dead consumer's.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tq.storage.contract import (
    DEDUPE_TTL,
    QUARANTINE_DATA,
    QUARANTINE_LIMIT,
    SUBMITTED,
    WAKE_MAX,
    Claimed,
    Control,
    Finished,
    Inflight,
    Malformed,
    QuarantineEntry,
    QueueStorage,
    Token,
    quarantine_entry,
)

__all__ = [
    "DEDUPE_TTL", "QUARANTINE_DATA", "QUARANTINE_LIMIT", "SUBMITTED", "WAKE_MAX", "Claimed",
    "Control", "Finished", "Inflight", "Malformed", "QuarantineEntry", "QueueStorage", "Token",
    "quarantine_entry", "RedisControl", "TqRedisStorage", "SqliteControl", "TqSqliteStorage",
]
# The backends load on first use: the contract needs neither huey nor a
# driver, so a module that only names SUBMITTED (or a type) loads neither.
_BACKENDS = {"RedisControl": "redis", "TqRedisStorage": "redis",
             "SqliteControl": "sqlite", "TqSqliteStorage": "sqlite"}

if TYPE_CHECKING:
    from tq.storage.redis import RedisControl, TqRedisStorage
    from tq.storage.sqlite import SqliteControl, TqSqliteStorage

    # mypy checks here that both backends satisfy the contract structurally.
    # It cannot see into the queue storages (their Huey base classes are Any
    # to it): tests/test_storage_contract.py checks every signature at run time.
    def _conforms(redis_queue: TqRedisStorage, sqlite_queue: TqSqliteStorage,
                  redis_control: RedisControl, sqlite_control: SqliteControl
                  ) -> tuple[QueueStorage, QueueStorage, Control, Control]:
        return redis_queue, sqlite_queue, redis_control, sqlite_control


def __getattr__(name: str) -> Any:
    module = _BACKENDS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"tq.storage.{module}"), name)

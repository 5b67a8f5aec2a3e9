"""An attached Huey app's schedule, in the app's own storage: one message taken off it.

`tq run-now` of an attached app's job (tq.ops.run_now) finds the job's message
among `storage.scheduled_items()` (Huey's own read, nothing removed) and takes
exactly that message off the schedule before enqueueing it: the one step a
huey_consumer's scheduler, or a second run-now, could race. Taking it is atomic
in the storage itself, so of two takers one gets it and the job runs once:
  - Redis (RedisHuey, PriorityRedisHuey and their Expire twins: one zset,
    `huey.schedule.<name>`): ZREM of the exact member, taken when it answers 1;
    Huey's scheduler pops due members with one Lua script, so it and ZREM
    never both get one;
  - SQLite (SqliteHuey: table `schedule`): one DELETE of one row holding the
    exact message, under Huey's own storage lock and in its `begin exclusive`
    transaction (the one the scheduler's read_schedule takes), taken when it
    deletes 1 row. The row is chosen by its bytes, not by a rowid read
    earlier: SQLite may give a popped row's id to the next scheduled message.
Other storages (Postgres, file, memory) are refused with one line: no
atomic removal of one member is written for them.
"""
from __future__ import annotations

from typing import Any


class Unsupported(ValueError):
    """The app's storage has no atomic take written here."""


def take(huey: Any, raw: bytes) -> bool:
    """Take the message `raw` off `huey`'s schedule; False if it was not there
    (the scheduler or another operator took it first). Unsupported for a
    storage with no atomic take."""
    from huey.storage import RedisStorage, SqliteStorage

    storage = huey.storage
    if isinstance(storage, RedisStorage):
        return int(storage.conn.zrem(storage.schedule_key, raw)) == 1
    if isinstance(storage, SqliteStorage):
        with storage.db(commit=True) as cursor:
            cursor.execute("delete from schedule where id = (select id from schedule "
                           "where queue = ? and data = ? limit 1)",
                           (storage.name, storage.to_blob(raw)))
            return int(cursor.rowcount) == 1
    raise Unsupported(f"run now is not available for an attached app on "
                      f"{type(storage).__name__} (Redis and SQLite storages only)")

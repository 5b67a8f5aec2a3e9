"""Queue storage: Huey's priority storages plus what tq keeps beside the queue.

Huey's storages pop a message and forget it, so a consumer killed mid-job loses
the job. tq's `claim` pops the message AND writes an in-flight record in one
atomic step (a Lua script on Redis, one transaction on SQLite); `release`
drops the record once the job has an outcome. A record whose consumer stopped
heartbeating is put back on the queue by a live consumer (see recovery.py).

The same backend holds the rest of tq's shared state, because it is the one
thing every consumer on every machine already talks to: pause flags, consumer
heartbeats, cancel requests, periodic-tick claims and moved-aside messages.
The two classes below implement the same methods; `Control` names them.

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

import json
import os
import struct
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import timezone
from typing import Iterable

import redis
from huey.storage import PriorityRedisStorage, SqliteStorage

from tq import control as parse

DEDUPE_TTL = 7 * 86400
SUBMITTED = "@submitted"  # outbox owner of submitted jobs' first records; never "alive"
WAKE_MAX = 16  # wake-up tokens kept per queue: at most this many idle workers woken at once


@dataclass
class Inflight:
    token: bytes | str
    data: bytes
    priority: int
    worker: str
    taken: float


@dataclass
class Malformed:
    """An entry of the in-flight records that no claim wrote: set aside by
    recovery (to the quarantine), skipped by every other reader."""
    token: bytes | str
    data: bytes
    reason: str


@dataclass
class Finished:
    """What a worker still owes the backend for the jobs it finished: their
    in-flight records to drop, their outcome records (JSON) for its outbox and
    the Huey flags (revocations) to clear. Settled in the same atomic step as
    the worker's next claim, so a job costs one round trip here, not three."""
    tokens: list = field(default_factory=list)
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
    token: bytes | str
    data: bytes
    flags: bool  # the queue's Huey flag store (revocations, locks) is not empty


# --- Redis --------------------------------------------------------------------

# First settle what the worker finished (see Finished): drop the in-flight
# records and push the outcomes to the outbox in one step, as _RELEASE does.
# Then claim, unless ARGV[4] is '0'. A paused queue is checked in the same
# step, so no job is handed out after `tq pause` returns. The reply tells
# whether any Huey flag exists, so the worker skips the revocation lookup
# when there is none.
# The record's claim time is Redis's own (TIME), never the worker host's.
# KEYS: queue, in-flight, paused, outbox, Huey flags, outbox registry
# ARGV: worker, (unused), queue, take, #tokens, #records, tokens..., records..., flags...
_CLAIM = """
local tokens, records = tonumber(ARGV[5]), tonumber(ARGV[6])
for i = 7, 6 + tokens do redis.call('HDEL', KEYS[2], ARGV[i]) end
for i = 7 + tokens, 6 + tokens + records do redis.call('RPUSH', KEYS[4], ARGV[i]) end
if records > 0 then redis.call('SADD', KEYS[6], ARGV[1]) end
for i = 7 + tokens + records, #ARGV do redis.call('HDEL', KEYS[5], ARGV[i]) end
if ARGV[4] == '0' then return nil end
if redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then return nil end
local items = redis.call('ZPOPMIN', KEYS[1], 1)
if #items == 0 then return nil end
local now = redis.call('TIME')
redis.call('HSET', KEYS[2], items[1], ARGV[1] .. '|' .. items[2] .. '|' .. now[1] .. '.' ..
           string.format('%06d', tonumber(now[2])))
items[3] = redis.call('EXISTS', KEYS[5])
return items
"""
# Put an in-flight message back (or a replacement message), only if the record
# is still there: of two consumers recovering the same job, one wins. It goes
# back where it was: its score (priority) from the record, and the time prefix
# of its original member (the token), so it is ahead of every job of its
# priority enqueued after it. Mode: 'drop' (nothing re-queued), 'same' (the
# token itself), 'new' (the replacement data under the token's prefix).
# KEYS: in-flight, queue, outbox, outbox registry
# ARGV: token, mode, data, score ('' = the record's), owner, records...
_PUT_BACK = """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if ARGV[2] ~= 'drop' then
  local score = ARGV[4]
  if score == '' then score = string.match(value, '|([^|]*)|[^|]*$') end
  local number = tonumber(score)
  if not number or number ~= number or number == math.huge or number == -math.huge then
    score = '0'
  end
  local member = ARGV[1]
  if ARGV[2] == 'new' then member = string.sub(ARGV[1], 1, 8) .. ARGV[3] end
  redis.call('ZADD', KEYS[2], score, member)
end
for i = 6, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end
if #ARGV > 5 then redis.call('SADD', KEYS[4], ARGV[5]) end
return 1
"""
# A heartbeat: the consumer's info (shown only) and the time Redis saw it
# (liveness), in one step. KEYS: info hash, beats zset; ARGV: consumer id, info
_HEARTBEAT = """
local now = redis.call('TIME')
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now[1] .. '.' .. string.format('%06d', tonumber(now[2])), ARGV[1])
return 1
"""
# The job's outcome records go to the consumer's outbox in the same step that
# drops its in-flight record: an outcome is durable the moment the job stops
# being "in flight", even if the consumer dies before its history writer runs.
# Every script that pushes to an outbox also names its owner in the outbox
# registry (a set), and the held task types of a queue are in one too: the
# console and recovery read those sets instead of SCANning the whole keyspace,
# whose cost grows with everything else stored in the same Redis.
# KEYS: in-flight, outbox, outbox registry; ARGV: token, owner, records...
_RELEASE = """
redis.call('HDEL', KEYS[1], ARGV[1])
for i = 3, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
if #ARGV > 2 then redis.call('SADD', KEYS[3], ARGV[2]) end
return 1
"""
# KEYS: in-flight, held messages of the task, held-task registry; ARGV: token, task
_HOLD = """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 0 end
redis.call('ZADD', KEYS[2], string.match(value, '|([^|]+)|'), ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""
# KEYS: held messages of the task, queue, held-task registry; ARGV: task
_UNHOLD = """
local items = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #items, 2 do redis.call('ZADD', KEYS[2], items[i + 1], items[i]) end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[1])
return #items / 2
"""
# KEYS: dead outbox, adopted outbox, outbox registry; ARGV: dead owner, adopter
_ADOPT = """
redis.call('SREM', KEYS[3], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('SADD', KEYS[3], ARGV[2])
return 1
"""
# KEYS: queue, dedupe key prefix, submitted outbox, outbox registry, wake list
# ARGV: (job id, score, member, record) per job; record '' for none
_ENQUEUE_ONCE = """
local added = {}
for i = 1, #ARGV, 4 do
  if redis.call('SET', KEYS[2] .. ARGV[i], '1', 'NX', 'EX', %d) then
    redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i + 2])
    if ARGV[i + 3] ~= '' then
      redis.call('RPUSH', KEYS[3], ARGV[i + 3])
      redis.call('SADD', KEYS[4], '%s')
    end
    added[#added + 1] = ARGV[i]
  end
end
if #added > 0 then
  redis.call('LPUSH', KEYS[5], '1')
  redis.call('LTRIM', KEYS[5], 0, %d)
end
return added
""" % (DEDUPE_TTL, SUBMITTED, WAKE_MAX - 1)

# Enqueue jobs that carry their own id at most once: a job whose id has a
# dedupe marker is skipped, record and all; the marker is set in the same step
# as the message, so "exists" is decided atomically. A job ready now goes to
# the queue (target 'q'), a later one to the schedule ('s').
# KEYS: queue, dedupe key prefix, submitted outbox, outbox registry, wake list, schedule
# ARGV: (job id, marker ttl, target, score, member, record) per job; record '' for none
# Returns the (0-based) positions of the jobs enqueued.
_SUBMIT_ONCE = """
local added, ready = {}, 0
for i = 1, #ARGV, 6 do
  if redis.call('SET', KEYS[2] .. ARGV[i], '1', 'NX', 'EX', ARGV[i + 1]) then
    if ARGV[i + 2] == 'q' then
      redis.call('ZADD', KEYS[1], ARGV[i + 3], ARGV[i + 4])
      ready = ready + 1
    else
      redis.call('ZADD', KEYS[6], ARGV[i + 3], ARGV[i + 4])
    end
    if ARGV[i + 5] ~= '' then
      redis.call('RPUSH', KEYS[3], ARGV[i + 5])
      redis.call('SADD', KEYS[4], '%s')
    end
    added[#added + 1] = (i - 1) / 6
  end
end
if ready > 0 then
  for i = 1, math.min(ready, %d) do redis.call('LPUSH', KEYS[5], '1') end
  redis.call('LTRIM', KEYS[5], 0, %d)
end
return added
""" % (SUBMITTED, WAKE_MAX, WAKE_MAX - 1)


# Set a message aside under the next quarantine id, keeping at most ARGV[3]
# entries (the oldest go), and drop its in-flight record in the same step.
# KEYS: entries (hash id -> JSON), ids (zset), id counter, in-flight
# ARGV: entry JSON, in-flight token ('' for none), limit
_QUARANTINE = """
local id = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], id, ARGV[1])
redis.call('ZADD', KEYS[2], id, id)
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if excess > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
  redis.call('HDEL', KEYS[1], unpack(old))
end
if ARGV[2] ~= '' then redis.call('HDEL', KEYS[4], ARGV[2]) end
return id
"""
QUARANTINE_LIMIT = 10_000  # entries kept; the oldest go first
QUARANTINE_DATA = 65_536  # bytes of a message kept (its full size is recorded)


def quarantine_entry(entry_id: int, queue: str | None, worker: str | None, at: float | None,
                     reason: str | None, size: int | None, data: bytes) -> dict:
    """One quarantined message as both backends return it."""
    return {"id": int(entry_id), "queue": queue, "worker": worker, "at": at, "reason": reason,
            "size": size if size is not None else len(data), "data": data}


def _entry_from_json(entry_id, raw: bytes) -> dict:
    # Anyone who can write to Redis can write here too: read defensively.
    try:
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError("not an object")
        data = bytes.fromhex(str(value.get("data", "")))
        at = value.get("at")
        size = value.get("size")
        return quarantine_entry(
            int(entry_id), _text_or_none(value.get("queue")), _text_or_none(value.get("worker")),
            float(at) if isinstance(at, (int, float)) else None,
            _text_or_none(value.get("reason")),
            int(size) if isinstance(size, int) and not isinstance(size, bool) else None, data)
    except (ValueError, TypeError):
        return quarantine_entry(int(entry_id), None, None, None,
                                "unreadable quarantine entry", len(raw), bytes(raw))


def _text_or_none(value) -> str | None:
    return None if value is None else str(value)


class TqRedisStorage(PriorityRedisStorage):
    """One queue on Redis. Non-blocking pops: the claim is a Lua script, and
    BZPOPMIN cannot run inside one. So an idle worker waits on a small wake-up
    list instead (wait_for_work), which every enqueue pushes to in the same
    step, and so do resume and a stopping consumer (wake_workers): a job
    submitted to an idle queue starts within a round trip, not after the
    worker's next poll. The poll stays as the fallback (a recovered job)."""

    def __init__(self, name: str, prefix: str, queue: str, **kwargs) -> None:
        super().__init__(name=name, blocking=False, clean_name=False, **kwargs)
        self.queue = queue
        self.ns = f"tq.{prefix}."
        self.inflight_key = f"{self.ns}inflight.{queue}"
        self.held_tasks_key = f"{self.ns}held-tasks.{queue}"
        self.outboxes_key = f"{self.ns}outboxes"
        self.wake_key = f"{self.ns}wake.{queue}"
        self._claim = self.conn.register_script(_CLAIM)
        self._put_back = self.conn.register_script(_PUT_BACK)
        self._release = self.conn.register_script(_RELEASE)
        self._enqueue_once = self.conn.register_script(_ENQUEUE_ONCE)
        self._submit_once = self.conn.register_script(_SUBMIT_ONCE)
        self._hold = self.conn.register_script(_HOLD)
        self._unhold = self.conn.register_script(_UNHOLD)
        self._quarantine = self.conn.register_script(_QUARANTINE)

    @staticmethod
    def _member(data: bytes, offset: int = 0) -> bytes:
        # Same layout as PriorityRedisStorage.enqueue: a time prefix keeps FIFO
        # order within a priority (`offset` keeps it strict within a batch).
        return struct.pack(">Q", int(time.time() * 1e6) + offset) + data

    # queue
    def enqueue_many(self, items: list[tuple[bytes, int]], dedupe_ids: list[str] | None = None,
                     records: list[str] | None = None) -> list[bool]:
        """Enqueue (message, priority) pairs, with each job's history record
        (JSON, aligned with items) to the SUBMITTED outbox in the same step.
        With dedupe_ids, a job whose id was enqueued within DEDUPE_TTL is
        skipped (False in the result), record and all."""
        if dedupe_ids is None:
            if items:
                base = int(time.time() * 1e6)
                pipe = self.conn.pipeline(transaction=True)
                # One ZADD for the batch; the time prefix keeps FIFO order.
                pipe.zadd(self.queue_key, {struct.pack(">Q", base + index) + data:
                                           -(priority or 0)
                                           for index, (data, priority) in enumerate(items)})
                self._push_submitted(pipe, records)
                self._wake(pipe, len(items))
                pipe.execute()
            return [True] * len(items)
        args: list = []
        for index, (job_id, (data, priority)) in enumerate(zip(dedupe_ids, items)):
            args += [job_id, -(priority or 0), self._member(data, index),
                     records[index] if records else ""]
        added = {raw.decode() for raw in self._enqueue_once(
            keys=[self.queue_key, f"{self.ns}dedupe.", f"{self.ns}outbox.{SUBMITTED}",
                  self.outboxes_key, self.wake_key], args=args)}
        return [job_id in added for job_id in dedupe_ids]

    def submit_once(self, jobs: list[tuple[str, bytes, int, object, str | None]]
                    ) -> list[bool]:
        """Enqueue (job id, message, priority, eta or None, record) jobs, each
        only if no job with its id was submitted within DEDUPE_TTL of its eta:
        one atomic step for the batch (see _SUBMIT_ONCE). True per job enqueued."""
        if not jobs:
            return []
        now = time.time()
        args: list = []
        for index, (job_id, data, priority, eta, record) in enumerate(jobs):
            if eta is None:
                args += [job_id, DEDUPE_TTL, "q", -(priority or 0), self._member(data, index)]
            else:
                score = self.convert_ts(eta)
                ttl = DEDUPE_TTL + max(0, int(eta.replace(tzinfo=timezone.utc).timestamp()
                                              - now))
                args += [job_id, ttl, "s", score, data]
            args.append(record or "")
        added = {int(position) for position in self._submit_once(
            keys=[self.queue_key, f"{self.ns}dedupe.", f"{self.ns}outbox.{SUBMITTED}",
                  self.outboxes_key, self.wake_key, self.schedule_key], args=args)}
        return [index in added for index in range(len(jobs))]

    def schedule_many(self, items: list[tuple[bytes, object]], records: list[str] | None = None
                      ) -> None:
        pipe = self.conn.pipeline(transaction=True)
        for data, eta in items:
            pipe.zadd(self.schedule_key, {data: self.convert_ts(eta)})
        self._push_submitted(pipe, records)
        pipe.execute()

    def enqueue(self, data: bytes, priority: int | None = None) -> None:
        # Huey's own enqueues: retries, and scheduled jobs coming due.
        pipe = self.conn.pipeline(transaction=True)
        pipe.zadd(self.queue_key, {self._member(data): -(priority or 0)})
        self._wake(pipe, 1)
        pipe.execute()

    def _wake(self, pipe, jobs: int) -> None:
        pipe.lpush(self.wake_key, *["1"] * min(jobs, WAKE_MAX))
        pipe.ltrim(self.wake_key, 0, WAKE_MAX - 1)

    def wake_workers(self) -> None:
        """Wake idle workers now (a resumed queue; a consumer stopping)."""
        pipe = self.conn.pipeline(transaction=True)
        self._wake(pipe, WAKE_MAX)
        pipe.execute()

    def wait_for_work(self, timeout: float) -> None:
        """Block until something is enqueued or `timeout` seconds pass (at most
        half the socket timeout: a longer block would read as a dead server)."""
        socket_timeout = self.conn.connection_pool.connection_kwargs.get("socket_timeout")
        if socket_timeout:
            timeout = min(timeout, socket_timeout / 2)
        self.conn.blpop([self.wake_key], timeout=max(timeout, 0.01))

    def _push_submitted(self, pipe, records: list[str] | None) -> None:
        if records:
            pipe.rpush(f"{self.ns}outbox.{SUBMITTED}", *records)
            pipe.sadd(self.outboxes_key, SUBMITTED)

    def remove_scheduled(self, raw: bytes) -> bool:
        return bool(self.conn.zrem(self.schedule_key, raw))

    def claim(self, worker: str, finished: Finished | None = None, take: bool = True
              ) -> Claimed | None:
        """Settle `finished` (outbox: `worker`'s), then take the next message
        with an in-flight record; None when empty or paused (or take=False)."""
        finished = finished or Finished()
        items = self._claim(
            keys=[self.queue_key, self.inflight_key, f"{self.ns}paused",
                  f"{self.ns}outbox.{worker}", self.result_key, self.outboxes_key],
            args=[worker, "", self.queue, "1" if take else "0",
                  len(finished.tokens), len(finished.records), *finished.tokens,
                  *finished.records, *finished.flags])
        if not items:
            return None
        member = items[0]
        return Claimed(member, member[8:], bool(items[2]))

    def settle(self, worker: str, finished: Finished) -> None:
        if finished:
            self.claim(worker, finished, take=False)

    def release(self, token: bytes, outbox: str | None = None, records: list[str] = ()) -> None:
        """Drop the in-flight record, handing the job's outcome `records` (JSON)
        to the `outbox` owner in the same step."""
        if records:
            self._release(keys=[self.inflight_key, f"{self.ns}outbox.{outbox}",
                                self.outboxes_key], args=[token, outbox, *records])
        else:
            self.conn.hdel(self.inflight_key, token)

    def put_back(self, token: bytes, data: bytes | None = None, priority: int | None = None,
                 drop: bool = False, outbox: str | None = None, records: list[str] = ()
                 ) -> bool:
        """Return an in-flight message to the queue (a replacement `data` if
        given). With drop=True the record is removed and nothing re-queued."""
        mode = "drop" if drop else ("same" if data is None else "new")
        return bool(self._put_back(keys=[self.inflight_key, self.queue_key,
                                         f"{self.ns}outbox.{outbox}", self.outboxes_key],
                                   args=[token, mode, data or b"",
                                         "" if priority is None else -priority,
                                         outbox or "", *records]))

    def inflight(self) -> list[Inflight]:
        return self.inflight_records()[0]

    def inflight_records(self) -> tuple[list[Inflight], list[Malformed]]:
        """The in-flight records, and beside them the malformed entries of the
        in-flight hash (none that the claim script wrote)."""
        records, malformed = [], []
        for token, value in _hgetall(self.conn, self.inflight_key).items():
            fields: tuple | str = "not 'consumer|score|time' text"
            if len(token) <= 8:
                fields = "token is not a queue member"
            elif len(value) <= parse.MAX_ENTRY:
                try:
                    fields = parse.inflight(*value.decode("utf-8").rsplit("|", 2))
                except (UnicodeDecodeError, TypeError):
                    pass
            if isinstance(fields, str):
                parse.report("in-flight record", token, fields)
                malformed.append(Malformed(token, token[8:] if len(token) > 8 else token,
                                           f"malformed in-flight record: {fields}"))
                continue
            worker, score, taken = fields
            records.append(Inflight(token, token[8:], -score, worker, taken))
        return records, malformed

    def inflight_count(self) -> int:
        try:
            return self.conn.hlen(self.inflight_key)
        except redis.ResponseError as exc:  # not a hash: junk, no record of ours
            parse.report("key", self.inflight_key, str(exc)[:80])
            return 0

    def hold(self, token: bytes, task: str) -> None:
        """Move a claimed message of a paused task type aside until resume."""
        self._hold(keys=[self.inflight_key, f"{self.ns}held.{self.queue}.{task}",
                         self.held_tasks_key], args=[token, task])

    def unhold(self, task: str) -> int:
        # Members keep their time prefix and score, so priority and FIFO order survive.
        return int(self._unhold(keys=[f"{self.ns}held.{self.queue}.{task}", self.queue_key,
                                      self.held_tasks_key], args=[task]))

    def held_count(self) -> int:
        pipe = self.conn.pipeline(transaction=False)
        for task in _smembers(self.conn, self.held_tasks_key):
            name = parse.text(task, limit=1024)
            if name is None:
                parse.report("held task type", task, "not a UTF-8 task name")
                continue
            pipe.zcard(f"{self.ns}held.{self.queue}.{name}")
        return sum(int(n) for n in pipe.execute(raise_on_error=False) if isinstance(n, int))

    def quarantine(self, token: bytes | None, data: bytes, reason: str,
                   worker: str | None = None) -> int:
        """Set a message aside (and drop its in-flight record); returns its
        quarantine id, stable until it is purged or requeued."""
        entry = json.dumps({"queue": self.queue, "worker": worker, "at": time.time(),
                            "reason": reason, "size": len(data),
                            "data": bytes(data[:QUARANTINE_DATA]).hex()})
        return int(self._quarantine(keys=[f"{self.ns}quarantined", f"{self.ns}quarantined.ids",
                                          f"{self.ns}quarantined.seq", self.inflight_key],
                                    args=[entry, token or "", QUARANTINE_LIMIT]))


def _hgetall(conn, key: str) -> dict:
    """A hash's entries; {} (reported) when the key holds another type."""
    try:
        return conn.hgetall(key)
    except redis.ResponseError as exc:
        parse.report("key", key, str(exc)[:80])
        return {}


def _smembers(conn, key: str) -> set:
    try:
        return conn.smembers(key)
    except redis.ResponseError as exc:
        parse.report("key", key, str(exc)[:80])
        return set()


class RedisControl:
    """Shared state for all queues, on the same Redis as the queues."""

    def __init__(self, storage: TqRedisStorage) -> None:
        self.conn = storage.conn
        self.ns = storage.ns
        self.outboxes_key = storage.outboxes_key
        self._adopt = self.conn.register_script(_ADOPT)
        self._heartbeat = self.conn.register_script(_HEARTBEAT)

    def ping(self) -> None:
        self.conn.ping()

    def now(self) -> float:
        """The queue backend's clock: Redis's TIME."""
        seconds, micros = self.conn.time()
        return seconds + micros / 1e6

    def set_paused(self, target: str, paused: bool, info: dict | None = None) -> None:
        if paused:
            self.conn.hset(f"{self.ns}paused", target, json.dumps(info or {}))
        else:
            self.conn.hdel(f"{self.ns}paused", target)

    def paused(self) -> dict[str, dict]:
        flags = (parse.pause_info(key, value) for key, value in
                 _hgetall(self.conn, f"{self.ns}paused").items())
        return dict(flag for flag in flags if flag is not None)

    def heartbeat(self, worker_id: str, info: dict) -> None:
        """Register or refresh a consumer; Redis stamps the time."""
        self._heartbeat(keys=[f"{self.ns}workers", f"{self.ns}beats"],
                        args=[worker_id, json.dumps(info)])

    def workers(self) -> list[dict]:
        """Consumers that heartbeated, each with `beat` (Redis's time of the
        last one) and `heartbeat_age` (by Redis's clock too)."""
        pipe = self.conn.pipeline(transaction=False)
        pipe.hgetall(f"{self.ns}workers")
        pipe.zrange(f"{self.ns}beats", 0, -1, withscores=True)
        pipe.time()
        infos, beats, (seconds, micros) = pipe.execute(raise_on_error=False)
        infos = infos if isinstance(infos, dict) else {}
        beats = beats if isinstance(beats, list) else []
        now = seconds + micros / 1e6
        workers = (parse.heartbeat(worker_id, infos.get(worker_id), beat, now)
                   for worker_id, beat in beats)
        return [worker for worker in workers if worker is not None]

    def forget_worker(self, worker_id: str) -> None:
        pipe = self.conn.pipeline(transaction=True)
        pipe.hdel(f"{self.ns}workers", worker_id)
        pipe.zrem(f"{self.ns}beats", worker_id)
        pipe.execute()

    def request_cancel(self, job_ids: Iterable[str]) -> None:
        pipe = self.conn.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.set(f"{self.ns}cancel.{job_id}", "1", ex=86400)
        pipe.execute()

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self.conn.exists(f"{self.ns}cancel.{job_id}"))

    def claim_tick(self, name: str, tick: int, ttl: int) -> bool:
        return bool(self.conn.set(f"{self.ns}tick.{name}.{tick}", "1", nx=True, ex=max(ttl, 60)))

    def record_periodic(self, name: str, info: dict) -> None:
        self.conn.hset(f"{self.ns}periodic", name, json.dumps(info))

    def periodic_runs(self) -> dict[str, dict]:
        runs = (parse.periodic_run(key, value) for key, value in
                _hgetall(self.conn, f"{self.ns}periodic").items())
        return dict(run for run in runs if run is not None)

    def count_loss(self, job_id: str) -> int:
        key = f"{self.ns}lost.{job_id}"
        try:
            pipe = self.conn.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, 7 * 86400)
            return int(pipe.execute()[0])
        except redis.ResponseError as exc:  # not a counter: count from here
            parse.report("loss counter", key, str(exc)[:80])
            self.conn.set(key, 1, ex=7 * 86400)
            return 1

    # quarantine: messages set aside (see TqRedisStorage.quarantine)
    def quarantined(self, limit: int = 100) -> list[dict]:
        """The newest quarantined messages first, each with its id."""
        self._migrate_quarantine()
        ids = self.conn.zrevrange(f"{self.ns}quarantined.ids", 0, limit - 1)
        if not ids:
            return []
        values = self.conn.hmget(f"{self.ns}quarantined", ids)
        return [_entry_from_json(int(entry_id), raw) for entry_id, raw in zip(ids, values)
                if raw is not None]

    def quarantine_count(self) -> int:
        self._migrate_quarantine()
        return int(self.conn.zcard(f"{self.ns}quarantined.ids"))

    def quarantine_get(self, entry_id: int) -> dict | None:
        raw = self.conn.hget(f"{self.ns}quarantined", int(entry_id))
        return None if raw is None else _entry_from_json(int(entry_id), raw)

    def quarantine_drop(self, entry_ids: Iterable[int] | None = None) -> int:
        """Remove entries (all of them with None); returns how many were removed."""
        if entry_ids is None:
            entry_ids = [int(i) for i in self.conn.zrange(f"{self.ns}quarantined.ids", 0, -1)]
        entry_ids = [int(i) for i in entry_ids]
        if not entry_ids:
            return 0
        pipe = self.conn.pipeline(transaction=True)
        pipe.hdel(f"{self.ns}quarantined", *entry_ids)
        pipe.zrem(f"{self.ns}quarantined.ids", *entry_ids)
        return int(pipe.execute()[0])

    def _migrate_quarantine(self) -> None:
        """Entries of the old list (no ids) get ids, once."""
        legacy = f"{self.ns}quarantine"
        while True:
            raw = self.conn.rpop(legacy)
            if raw is None:
                return
            entry = _entry_from_json(0, raw)
            self._quarantine_script(json.dumps({
                "queue": entry["queue"], "worker": entry["worker"], "at": entry["at"],
                "reason": entry["reason"], "size": entry["size"], "data": entry["data"].hex()}))

    def _quarantine_script(self, entry: str) -> int:
        script = self.conn.register_script(_QUARANTINE)
        return int(script(keys=[f"{self.ns}quarantined", f"{self.ns}quarantined.ids",
                                f"{self.ns}quarantined.seq", f"{self.ns}inflight.-"],
                          args=[entry, "", QUARANTINE_LIMIT]))

    # outboxes: durable history records waiting for the history database
    def outbox_read(self, owner: str, limit: int) -> tuple[list[str], int]:
        """The oldest records of an outbox and a marker for outbox_done."""
        # Undecodable bytes kept as they are (surrogateescape): the history writer
        # sets such a record aside; a strict decode would stop the outbox for good.
        records = [raw.decode("utf-8", "surrogateescape")
                   for raw in self.conn.lrange(f"{self.ns}outbox.{owner}", 0, limit - 1)]
        return records, len(records)

    def outbox_done(self, owner: str, marker: int) -> None:
        # Only the owner reads its outbox and workers only append, so trimming
        # the first `marker` records removes exactly what was written.
        self.conn.ltrim(f"{self.ns}outbox.{owner}", marker, -1)

    def outbox_owners(self) -> list[str]:
        """Owners that pushed to an outbox (it may be empty by now)."""
        return [owner.decode() for owner in self.conn.smembers(self.outboxes_key)]

    def outbox_adopt(self, dead: str, owner: str) -> str | None:
        """Take over a dead consumer's outbox; returns the new owner name (None
        when it is empty or another consumer adopted it first)."""
        adopted = f"{owner}+{uuid.uuid4().hex[:8]}"
        if not self._adopt(keys=[f"{self.ns}outbox.{dead}", f"{self.ns}outbox.{adopted}",
                                 self.outboxes_key], args=[dead, adopted]):
            return None
        return adopted

    def outbox_size(self) -> int:
        return sum(self.conn.llen(f"{self.ns}outbox.{owner}") for owner in self.outbox_owners())


# --- SQLite -------------------------------------------------------------------

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


def _to_outbox(curs, owner: str, records: Iterable[str]) -> None:
    curs.executemany("insert into tq_outbox (owner, record) values (?, ?)",
                     [(owner, record) for record in records])


def _reset_after_fork(ref: "weakref.ref[TqSqliteStorage]") -> None:
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

    def initialize_schema(self) -> None:
        super().initialize_schema()
        # Files made before tq_inflight had task_id.
        columns = {row[1] for row in self.sql("pragma table_info(tq_inflight)", results=True)}
        if "task_id" not in columns:
            try:
                self.sql("alter table tq_inflight add column task_id integer", commit=True)
            except Exception as exc:  # another process added it first
                if "duplicate column" not in str(exc):
                    raise

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

    def submit_once(self, jobs: list[tuple[str, bytes, int, object, str | None]]
                    ) -> list[bool]:
        """As TqRedisStorage.submit_once, in one transaction."""
        accepted = []
        now = time.time()
        with self.db(commit=True) as curs:
            for job_id, data, priority, eta, record in jobs:
                due = eta.replace(tzinfo=timezone.utc).timestamp() if eta is not None else now
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

    def schedule_many(self, items: list[tuple[bytes, object]], records: list[str] | None = None
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

    def release(self, token: str, outbox: str | None = None, records: list[str] = ()) -> None:
        with self.db(commit=True) as curs:
            curs.execute("delete from tq_inflight where token = ?", (token,))
            _to_outbox(curs, outbox, records)

    def put_back(self, token: str, data: bytes | None = None, priority: int | None = None,
                 drop: bool = False, outbox: str | None = None, records: list[str] = ()
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

    def hold(self, token: str, task: str) -> None:
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
        super().initialize_schema()
        with self.db(commit=True, close=True) as curs:
            # Entries of the table before quarantine ids were stable.
            curs.execute("select 1 from sqlite_master where name = 'tq_quarantine'")
            if curs.fetchone():
                curs.execute("insert into tq_quarantined (queue, at, reason, size, data) "
                             "select queue, at, reason, length(data), data from tq_quarantine "
                             "order by id")
                curs.execute("drop table tq_quarantine")

    def quarantine(self, token: str | None, data: bytes, reason: str,
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

    def set_paused(self, target: str, paused: bool, info: dict | None = None) -> None:
        if paused:
            self._sql("insert or replace into tq_paused (target, info) values (?, ?)",
                      (target, json.dumps(info or {})), commit=True)
        else:
            self._sql("delete from tq_paused where target = ?", (target,), commit=True)

    def paused(self) -> dict[str, dict]:
        flags = (parse.pause_info(target, info) for target, info in
                 self._sql("select target, info from tq_paused", results=True))
        return dict(flag for flag in flags if flag is not None)

    def heartbeat(self, worker_id: str, info: dict) -> None:
        """Register or refresh a consumer; the beat is this (the one) host's time."""
        self._sql("insert or replace into tq_workers (id, info) values (?, ?)",
                  (worker_id, json.dumps(dict(info, beat=self.clock()))), commit=True)

    def workers(self) -> list[dict]:
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

    def record_periodic(self, name: str, info: dict) -> None:
        self._sql("insert or replace into tq_periodic (name, info) values (?, ?)",
                  (name, json.dumps(info)), commit=True)

    def periodic_runs(self) -> dict[str, dict]:
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

    def quarantined(self, limit: int = 100) -> list[dict]:
        rows = self._sql(f"select {self._QUARANTINE_COLUMNS} from tq_quarantined "
                         "order by id desc limit ?", (limit,), results=True)
        return [_entry_from_row(row) for row in rows]

    def quarantine_count(self) -> int:
        return self._sql("select count(*) from tq_quarantined", results=True)[0][0]

    def quarantine_get(self, entry_id: int) -> dict | None:
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


def _entry_from_row(row) -> dict:
    entry_id, queue, worker, at, reason, size, data = row
    data = data if isinstance(data, (bytes, memoryview)) else str(data or "").encode()
    return quarantine_entry(entry_id, queue, worker, at, reason, size, bytes(data))

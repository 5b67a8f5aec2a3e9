"""The Redis backend: TqRedisStorage (one queue) and RedisControl (shared state).

Every multi-key step of the contract (see contract.py) is a Lua script, so it
is atomic and costs one round trip; times that judge liveness are Redis's own
(`TIME` inside the scripts). Huey's keys for a queue are `huey.*.<prefix>.<queue>`;
everything tq keeps is under `tq.<prefix>.`, which Huey never touches. Sets
name the outboxes and held task types, so no reader SCANs the keyspace.
"""
from __future__ import annotations

import json
import struct
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import redis
from huey.storage import PriorityRedisStorage

from tq import control as parse
from tq.storage.contract import (
    DEDUPE_TTL,
    QUARANTINE_DATA,
    QUARANTINE_LIMIT,
    SUBMITTED,
    WAKE_MAX,
    Claimed,
    Finished,
    Inflight,
    Malformed,
    QuarantineEntry,
    Token,
    quarantine_entry,
)

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
""" % (DEDUPE_TTL, SUBMITTED, WAKE_MAX - 1)  # noqa: UP031 (Lua's braces: no str.format)

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
""" % (SUBMITTED, WAKE_MAX, WAKE_MAX - 1)  # noqa: UP031 (Lua's braces: no str.format)


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
def _entry_from_json(entry_id: int, raw: bytes) -> QuarantineEntry:
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


def _text_or_none(value: Any) -> str | None:
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

    def submit_once(self, jobs: list[tuple[str, bytes, int, datetime | None, str | None]]
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
                ttl = DEDUPE_TTL + max(0, int(eta.replace(tzinfo=UTC).timestamp()
                                              - now))
                args += [job_id, ttl, "s", score, data]
            args.append(record or "")
        added = {int(position) for position in self._submit_once(
            keys=[self.queue_key, f"{self.ns}dedupe.", f"{self.ns}outbox.{SUBMITTED}",
                  self.outboxes_key, self.wake_key, self.schedule_key], args=args)}
        return [index in added for index in range(len(jobs))]

    def schedule_many(self, items: list[tuple[bytes, datetime]], records: list[str] | None = None
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

    def release(self, token: Token, outbox: str | None = None, records: Sequence[str] = ()
                ) -> None:
        """Drop the in-flight record, handing the job's outcome `records` (JSON)
        to the `outbox` owner in the same step."""
        _need_owner(outbox, records)
        if records:
            self._release(keys=[self.inflight_key, f"{self.ns}outbox.{outbox}",
                                self.outboxes_key], args=[token, outbox, *records])
        else:
            self.conn.hdel(self.inflight_key, token)

    def put_back(self, token: Token, data: bytes | None = None, priority: int | None = None,
                 drop: bool = False, outbox: str | None = None, records: Sequence[str] = ()
                 ) -> bool:
        """Return an in-flight message to the queue (a replacement `data` if
        given). With drop=True the record is removed and nothing re-queued."""
        _need_owner(outbox, records)
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

    def hold(self, token: Token, task: str) -> None:
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

    def quarantine(self, token: Token | None, data: bytes, reason: str,
                   worker: str | None = None) -> int:
        """Set a message aside (and drop its in-flight record); returns its
        quarantine id, stable until it is purged or requeued."""
        entry = json.dumps({"queue": self.queue, "worker": worker, "at": time.time(),
                            "reason": reason, "size": len(data),
                            "data": bytes(data[:QUARANTINE_DATA]).hex()})
        return int(self._quarantine(keys=[f"{self.ns}quarantined", f"{self.ns}quarantined.ids",
                                          f"{self.ns}quarantined.seq", self.inflight_key],
                                    args=[entry, token or "", QUARANTINE_LIMIT]))


def _need_owner(outbox: str | None, records: Sequence[str]) -> None:
    # As on SQLite, whose outbox rows need an owner: records never go to "None".
    if records and outbox is None:
        raise ValueError("history records need an outbox owner")


def _hgetall(conn: redis.Redis, key: str) -> dict[bytes, bytes]:
    """A hash's entries; {} (reported) when the key holds another type."""
    try:
        return cast(dict[bytes, bytes], conn.hgetall(key))  # the pool never decodes
    except redis.ResponseError as exc:
        parse.report("key", key, str(exc)[:80])
        return {}


def _smembers(conn: redis.Redis, key: str) -> set[bytes]:
    try:
        return cast(set[bytes], conn.smembers(key))
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

    def set_paused(self, target: str, paused: bool, info: dict[str, Any] | None = None) -> None:
        if paused:
            self.conn.hset(f"{self.ns}paused", target, json.dumps(info or {}))
        else:
            self.conn.hdel(f"{self.ns}paused", target)

    def paused(self) -> dict[str, dict[str, Any]]:
        flags = (parse.pause_info(key, value) for key, value in
                 _hgetall(self.conn, f"{self.ns}paused").items())
        return dict(flag for flag in flags if flag is not None)

    def heartbeat(self, worker_id: str, info: dict[str, Any]) -> None:
        """Register or refresh a consumer; Redis stamps the time."""
        self._heartbeat(keys=[f"{self.ns}workers", f"{self.ns}beats"],
                        args=[worker_id, json.dumps(info)])

    def workers(self) -> list[dict[str, Any]]:
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

    def record_periodic(self, name: str, info: dict[str, Any]) -> None:
        self.conn.hset(f"{self.ns}periodic", name, json.dumps(info))

    def periodic_runs(self) -> dict[str, dict[str, Any]]:
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
    def quarantined(self, limit: int = 100) -> list[QuarantineEntry]:
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

    def quarantine_get(self, entry_id: int) -> QuarantineEntry | None:
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
    def outbox_read(self, owner: str, limit: int) -> tuple[list[str], int | None]:
        """The oldest records of an outbox and a marker for outbox_done."""
        # Undecodable bytes kept as they are (surrogateescape): the history writer
        # sets such a record aside; a strict decode would stop the outbox for good.
        records = [raw.decode("utf-8", "surrogateescape")
                   for raw in self.conn.lrange(f"{self.ns}outbox.{owner}", 0, limit - 1)]
        return records, len(records)

    def outbox_done(self, owner: str, marker: int | None) -> None:
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



"""At-least-once delivery for an attached Redis app: `tq.attach(huey, durable=True)`.

Huey's Redis delivery is at most once: a huey_consumer pops a message (BRPOP,
BZPOPMIN) and a worker killed mid-job takes it with it. With durable=True the
stock huey_consumer's dequeue takes each message and writes a claim of it in
one step, and a live consumer puts a dead one's claimed messages back.

The keys, beside the app's own in the app's Redis (`<q>` is Huey's queue key,
`huey.redis.<name>`; Huey's names are [A-Za-z0-9_], so no app's own keys can
collide with these):
  <q>.tq.claims      hash: token -> the message as it sat in the queue (a
                     priority app's with Huey's 8-byte order prefix)
  <q>.tq.claimed     hash: token -> "claimer\\nscore\\ntaken" (score: the
                     member's priority score, empty for a list; taken: the
                     app Redis's clock, whole seconds)
  <q>.tq.losses      hash: job id -> times its worker died mid-job
  <q>.tq.unfinished  hash: job id -> attempts that ended with no outcome
                     (lost or interrupted), for attempt numbers
  <q>.tq.quarantine  list (newest first, at most QUARANTINE_LIMIT) of JSON
                     entries: a message set aside, base64, with its reason

Invariants:
  - Taking a message and writing its claim are one Lua script: no instant
    holds a message that is neither queued nor claimed. The script checks the
    claim keys' types before it pops (a script is not rolled back: an error
    after the pop would lose the message).
  - A claim is released once Huey's execute has returned or raised: by then
    the job has an outcome, or Huey has re-enqueued or scheduled it (a retry,
    a job not yet due). A consumer killed between the outcome and the release
    makes the job run again: at least once, never at most once.
  - A claim is put back by one script, only while it is still there (of two
    consumers recovering it, one wins), at the place the message had: a list
    message at the end Huey pops next (RPUSH), a priority message with the
    member and score it had (its priority, and its order among equals).
  - A claim is taken over only when its claimer is dead: a huey_consumer
    registered in tq (`tq workers`) and silent for [consumer] lease seconds
    (judged by the queue backend's clock, as tq/recovery.py does), or, for a
    consumer tq no longer lists (tq forgets one silent for FORGET_AFTER),
    an attached consumer's name on a claim older than FORGET_AFTER by the
    app Redis's clock. A dequeue outside a huey_consumer (a script, a test)
    claims as `unregistered:...`: never taken over.
  - A job lost more than [consumer] lost_retries times is not put back: it is
    set aside in the quarantine and history ends it failed (WorkerLost), so a
    job that kills its worker cannot loop forever.
  - A message the app cannot decode is set aside in the quarantine, never
    raised into the worker; a claim entry no claim wrote (a forged or cut
    entry) is set aside (or dropped, when it holds no message); neither
    stops the pass nor blocks another claim.
  - A job interrupted by a stopping huey_consumer (SIGTERM) is put back at
    once; that is not a loss.
Cost: in a huey_consumer worker a job costs one script call, which also
releases the worker's previous claim (two calls when the job was lost
before); elsewhere a release is one MULTI. A worker's last claim is released
when the worker stops (Huey's shutdown hook, and at exit); a consumer killed
before that makes that job run again. An empty queue is polled (5 ms
doubling to 50 ms) up to the storage's read_timeout, as Huey's blocking pop
waits: a job enqueued to idle workers waits up to 50 ms more than with Huey.
"""
from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

logger = logging.getLogger("tq.attach")

QUARANTINE_LIMIT = 10_000
FORGET_AFTER = 3600  # as tq.recovery.FORGET_AFTER: a silent consumer tq no longer lists
POLL_FIRST, POLL_MAX = 0.005, 0.05
ATTACHED_MARK = ":huey-"  # in every name an attached huey_consumer registers under

_TYPES_OK = """
for i = 2, 5 do
  local kind = redis.call('TYPE', KEYS[i]).ok
  if kind ~= 'none' and kind ~= 'hash' then
    return redis.error_reply('tq claim key ' .. KEYS[i] .. ' holds a ' .. kind)
  end
end
"""
# KEYS: queue, claims, claimed, losses, unfinished.
# ARGV: token, claimer, kind, the worker's previous claim to release ('' none) and its job id.
CLAIM_LUA = _TYPES_OK + """
if ARGV[4] ~= '' then
  redis.call('HDEL', KEYS[2], ARGV[4])
  redis.call('HDEL', KEYS[3], ARGV[4])
  if ARGV[5] ~= '' then
    redis.call('HDEL', KEYS[4], ARGV[5])
    redis.call('HDEL', KEYS[5], ARGV[5])
  end
end
local member, score
if ARGV[3] == 'zset' then
  local popped = redis.call('ZPOPMIN', KEYS[1])
  if #popped == 0 then return false end
  member, score = popped[1], popped[2]
else
  member = redis.call('RPOP', KEYS[1])
  if not member then return false end
  score = ''
end
local now = redis.call('TIME')
redis.call('HSET', KEYS[2], ARGV[1], member)
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2] .. '\\n' .. score .. '\\n' .. now[1])
return {member, redis.call('HLEN', KEYS[5])}
"""
# KEYS: queue, claims, claimed, losses, unfinished, quarantine.
# ARGV: token, kind, score, job id ('' unknown), lost_retries (-1: not a loss),
#       quarantine entry (used when the losses pass lost_retries), member read.
PUT_BACK_LUA = _TYPES_OK + """
local member = redis.call('HGET', KEYS[2], ARGV[1])
if not member or member ~= ARGV[7] then return false end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
local losses, unfinished = 0, 0
if ARGV[4] ~= '' then
  unfinished = redis.call('HINCRBY', KEYS[5], ARGV[4], 1)
  if tonumber(ARGV[5]) >= 0 then
    losses = redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
    if losses > tonumber(ARGV[5]) then
      redis.call('HDEL', KEYS[4], ARGV[4])
      redis.call('HDEL', KEYS[5], ARGV[4])
      redis.call('LPUSH', KEYS[6], ARGV[6])
      redis.call('LTRIM', KEYS[6], 0, LAST)
      return {losses, 0, unfinished}
    end
  end
end
if ARGV[2] == 'zset' then
  redis.call('ZADD', KEYS[1], ARGV[3], member)
else
  redis.call('RPUSH', KEYS[1], member)
end
return {losses, 1, unfinished}
""".replace("LAST", str(QUARANTINE_LIMIT - 1))


def supports(huey: Any) -> bool:
    """True for an app on Huey's Redis storages (plain and priority, and
    their Expire twins): the ones durable claims are written for."""
    from huey.storage import RedisStorage
    return isinstance(huey.storage, RedisStorage)


NO_MESSAGE = "a claim record with no message"


@dataclass(frozen=True)
class Claim:
    token: str
    member: bytes  # as it sat in the queue
    claimer: str
    score: str  # the priority score, "" for a list
    taken: float  # by the app Redis's clock


@dataclass(frozen=True)
class Recovered:
    """A dead consumer's claim dealt with: put back, or set aside (gave up)."""
    task: Any
    claim: Claim
    losses: int
    put_back: bool
    unfinished: int  # the job's attempts ended with no outcome, the lost one included


class Claims:
    """The claims of one attached Redis app (see the module docstring)."""

    def __init__(self, huey: Any) -> None:
        self.huey = huey
        self.storage = huey.storage
        self.conn = self.storage.conn
        from huey.storage import RedisPriorityQueue
        self.kind = "zset" if isinstance(self.storage, RedisPriorityQueue) else "list"
        queue = self.storage.queue_key
        self.queue_key = queue
        self.claims_key, self.claimed_key = f"{queue}.tq.claims", f"{queue}.tq.claimed"
        self.losses_key, self.unfinished_key = f"{queue}.tq.losses", f"{queue}.tq.unfinished"
        self.quarantine_key = f"{queue}.tq.quarantine"
        self.taken = 0  # messages claimed by this process (not locked: a statistic)
        self._claim = self.conn.register_script(CLAIM_LUA)
        self._put_back = self.conn.register_script(PUT_BACK_LUA)

    @property
    def keys(self) -> list[str]:
        return [self.queue_key, self.claims_key, self.claimed_key, self.losses_key,
                self.unfinished_key]

    def data(self, member: bytes) -> bytes:
        # A priority member carries Huey's 8-byte enqueue-time prefix.
        return member[8:] if self.kind == "zset" else member

    # --- a worker's side ----------------------------------------------------------
    def take(self, claimer: str, release: tuple[str, str] | None = None
             ) -> tuple[str, bytes, bool] | None:
        """One message taken and claimed by `claimer`: (token, the member as it
        sat in the queue, whether some job has unfinished attempts), or None
        when the queue is empty. `release`: the worker's previous claim (token,
        job id: "" keeps the job's loss counts, for a retried job), released in
        the same script (one round trip a job, not two)."""
        token = uuid.uuid4().hex
        previous, job_id = release or ("", "")
        taken = self._claim(keys=self.keys, args=[token, claimer, self.kind, previous, job_id])
        if not taken:
            return None
        member, unfinished = taken
        self.taken += 1
        return token, member, int(unfinished) > 0

    def wait_and_take(self, claimer: str, release: tuple[str, str] | None = None
                      ) -> tuple[str, bytes, bool] | None:
        """As Huey's blocking pop: up to the storage's read_timeout for a message
        (polled; a non-blocking storage tries once). `release` as for take: done
        by the first try (if it raises, nothing was released)."""
        deadline = time.monotonic() + (self.storage.read_timeout
                                       if self.storage.blocking else 0)
        delay = POLL_FIRST
        while True:
            taken = self.take(claimer, release)
            release = None
            if taken is not None or time.monotonic() + delay > deadline:
                return taken
            time.sleep(delay)
            delay = min(delay * 2, POLL_MAX)

    def unfinished(self, job_id: str) -> int:
        """Attempts of `job_id` that ended with no outcome (lost or interrupted)."""
        return int(self.conn.hget(self.unfinished_key, job_id) or 0)

    def release(self, token: str, job_id: str | None) -> None:
        """The job has its outcome (or Huey re-enqueued it): its claim goes,
        and with a job id (a final outcome) its loss counts too."""
        pipe = self.conn.pipeline(transaction=True)
        pipe.hdel(self.claims_key, token)
        pipe.hdel(self.claimed_key, token)
        if job_id:
            pipe.hdel(self.losses_key, job_id)
            pipe.hdel(self.unfinished_key, job_id)
        pipe.execute()

    def set_aside(self, token: str | bytes, member: bytes | None, reason: str,
                  claimer: str | None = None) -> None:
        """A claimed message (or an entry no claim wrote) out of the claims and,
        when there is a message, into the quarantine, in one MULTI."""
        pipe = self.conn.pipeline(transaction=True)
        if member is not None:
            pipe.lpush(self.quarantine_key, self.entry(member, reason, claimer))
            pipe.ltrim(self.quarantine_key, 0, QUARANTINE_LIMIT - 1)
        pipe.hdel(self.claims_key, token)
        pipe.hdel(self.claimed_key, token)
        pipe.execute()
        logger.warning("tq: a message of %s set aside: %s", self.huey.name, reason)

    def entry(self, member: bytes, reason: str, claimer: str | None) -> str:
        return json.dumps({"reason": reason[:1000], "claimer": claimer, "at": time.time(),
                           "kind": self.kind,
                           "message": base64.b64encode(member).decode("ascii")})

    def put_back(self, claim: Claim, job_id: str | None, lost_retries: int,
                 reason: str) -> tuple[int, bool, int] | None:
        """Put `claim`'s message back at its place (see the invariants):
        (losses so far, put back, attempts of the job ended with no outcome,
        this one included) — put back False: lost more than lost_retries
        times and set aside. lost_retries -1: not a loss (an interrupted
        job). None: the claim was no longer there."""
        done = self._put_back(
            keys=[*self.keys, self.quarantine_key],
            args=[claim.token, self.kind, claim.score or "0", job_id or "", lost_retries,
                  self.entry(claim.member, reason, claim.claimer), claim.member])
        if not done:
            return None
        losses, put, unfinished = done
        return int(losses), bool(put), int(unfinished)

    # --- recovery -------------------------------------------------------------------
    def claims(self, members: bool = True
               ) -> tuple[list[Claim], list[tuple[bytes, bytes | None, str]]]:
        """Every claim, and every entry no claim wrote: (token, message or
        None, why it is malformed). The two hashes are read in one MULTI: a
        claim or a release (each one step on both) between two reads would
        look like a half entry. members=False: each claim's member is b""
        (the recovery pass reads only the members it puts back)."""
        pipe = self.conn.pipeline(transaction=True)
        pipe.hgetall(self.claimed_key)
        pipe.hkeys(self.claims_key)
        metas, tokens = pipe.execute()
        found: list[Claim] = []
        malformed: list[tuple[bytes, bytes | None, str]] = []
        for raw_token in set(tokens) | set(metas):
            claim = self._parsed(raw_token, raw_token in tokens, metas.get(raw_token))
            if isinstance(claim, Claim):
                found.append(claim)
            else:
                malformed.append((raw_token, None, claim))
        wanted = ([claim.token for claim in found] if members else []) + [
            token for token, _, reason in malformed if reason != NO_MESSAGE]
        if wanted:
            read = dict(zip(wanted, self.conn.hmget(self.claims_key, wanted), strict=True))
            found = [replace(claim, member=read.get(claim.token) or b"") if members else claim
                     for claim in found]
            malformed = [(token, read.get(token), reason) for token, _, reason in malformed]
        return found, malformed

    def _parsed(self, raw_token: bytes, has_member: bool, meta: bytes | None) -> Claim | str:
        if not has_member:
            return NO_MESSAGE
        if meta is None:
            return "a claimed message with no claim record"
        try:
            token = raw_token.decode("utf-8")
        except UnicodeDecodeError:
            return "a claim record not written by a claim"
        try:
            parts = meta.decode("utf-8").split("\n")
        except UnicodeDecodeError:
            return "a claim record not written by a claim"
        if len(parts) != 3 or not parts[0]:
            return "a claim record not written by a claim"
        claimer, score, taken = parts
        try:
            taken_at = float(taken)
            if self.kind == "zset":
                float(score)
            elif score:
                raise ValueError(score)
        except ValueError:
            return "a claim record not written by a claim"
        return Claim(token, b"", claimer, score, taken_at)

    def server_time(self) -> float:
        seconds, micros = self.conn.time()
        return float(seconds) + micros / 1e6

    def recover(self, me: str, workers: list[dict[str, Any]], lease: float,
                lost_retries: int) -> list[Recovered]:
        """Put back (or set aside) the claims of dead consumers; `workers` is
        tq's registry (control.workers()). Entries no claim wrote are set aside."""
        ages = {info["id"]: info["heartbeat_age"] for info in workers}
        claims, malformed = self.claims(members=False)
        for token, member, reason in malformed:
            self.set_aside(token, member, reason)
        if not claims:
            return []
        now = self.server_time()
        done: list[Recovered] = []
        for claim in claims:
            age = ages.get(claim.claimer)
            if claim.claimer == me:
                continue
            if age is None:
                dead = (ATTACHED_MARK in claim.claimer
                        and now - claim.taken >= FORGET_AFTER)
            else:
                dead = age >= lease
            if not dead:
                continue
            member = self.conn.hget(self.claims_key, claim.token)
            if member is None:
                continue  # released or put back meanwhile
            claim = replace(claim, member=member)
            try:
                task = self.huey.deserialize_task(self.data(claim.member))
            except Exception as exc:
                self.set_aside(claim.token, claim.member,
                               f"the app cannot read it: {str(exc)[:300]}", claim.claimer)
                continue
            outcome = self.put_back(
                claim, task.id, lost_retries,
                f"worker lost more than {lost_retries} times; last: {claim.claimer}")
            if outcome is not None:
                losses, put, unfinished = outcome
                done.append(Recovered(task, claim, losses, put, unfinished))
                logger.warning("job %s (%s): consumer %s stopped heartbeating; %s",
                               task.id, self.huey.name, claim.claimer,
                               "put back on the queue" if put else
                               f"lost {losses} times, set aside and ended failed")
        return done

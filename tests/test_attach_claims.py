"""`tq.attach(huey, durable=True)`: the claims of an attached Redis app, in process.

What a user relies on: a message a huey_consumer took is claimed in the same
step; a dead consumer's claim goes back to the queue at the place it had
(ahead of the jobs enqueued after it, with its priority); a job lost more than
lost_retries times is set aside, not run forever; a message the app cannot
read, or a claim entry no claim wrote, is set aside and never stops a worker
or the recovery pass. A consumer's liveness is given here as tq's registry
gives it (heartbeat ages), so no test waits out a lease.

The SIGKILLed real huey_consumer is tested in test_attach_durable.
"""
from __future__ import annotations

import base64
import json
import os
import sys
import uuid
from pathlib import Path

import pytest
import redis

import tq
from tq.attach import attachment, depths
from tq.attached_claims import FORGET_AFTER, Claims

from conftest import REDIS_URL, Backend

TESTS_DIR = Path(__file__).parent
DEAD = "host:1:huey-dead01"
LEASE = 15.0


@pytest.fixture(params=["redis_app", "priority_app"])
def app(request, tmp_path):
    if str(TESTS_DIR) not in sys.path:
        sys.path.insert(0, str(TESTS_DIR))
    from hueyapps import load_attached
    backend = Backend("redis", tmp_path)
    name = f"app{uuid.uuid4().hex[:10]}"
    module = load_attached(request.param, {"HUEYAPP_NAME": name,
                                           "HUEYAPP_REDIS_URL": REDIS_URL}, "durable")
    runtime = backend.runtime()
    tq.attach(module.huey, runtime=runtime)
    yield module
    conn = redis.Redis.from_url(REDIS_URL)
    module.huey.flush()
    for key in conn.scan_iter(f"huey.redis.{name}.tq.*"):
        conn.delete(key)
    backend.cleanup()


def queued_ids(huey) -> list[str]:
    """The queue's job ids in the order Huey's consumer will take them."""
    return [huey.deserialize_task(data).id for data in huey.storage.enqueued_items()]


def dead(age: float = LEASE + 1) -> list[dict]:
    return [{"id": DEAD, "heartbeat_age": age}]


def test_durable_is_refused_for_an_app_on_sqlite(tmp_path):
    from huey import SqliteHuey
    huey = SqliteHuey("lite", filename=str(tmp_path / "huey.db"))
    with pytest.raises(ValueError, match="needs a Redis app.*SqliteStorage"):
        tq.attach(huey, durable=True)


def test_a_dead_consumers_claim_goes_back_at_its_place(app):
    huey = app.huey
    jobs = [app.add(i, i) for i in range(3)]
    claims = Claims(huey)
    token, member, _ = claims.take(DEAD)
    assert huey.deserialize_task(claims.data(member)).id == jobs[0].id
    assert queued_ids(huey) == [jobs[1].id, jobs[2].id]
    assert depths(huey)["running"] == 1  # the claims are what runs
    assert claims.recover("me", dead(age=LEASE - 1), LEASE, 3) == []  # alive: kept
    recovered = claims.recover("me", dead(), LEASE, 3)
    assert [(r.task.id, r.losses, r.put_back, r.unfinished) for r in recovered] == [
        (jobs[0].id, 1, True, 1)]
    assert queued_ids(huey) == [job.id for job in jobs]  # back ahead of the others
    assert claims.claims() == ([], [])
    assert claims.recover("me", dead(), LEASE, 3) == []  # put back once


def test_the_recovered_job_counts_its_lost_attempt(app):
    huey = app.huey
    job = app.add(1, 2)
    found = attachment(huey)
    claims = found.claims
    claims.take(DEAD)
    claims.recover("me", dead(), LEASE, 3)
    task = huey.dequeue()  # this process's worker takes it again
    assert task.id == job.id and found.attempts_started(task) == 1
    huey.execute(task)
    assert claims.claims() == ([], [])
    assert not claims.conn.exists(claims.losses_key, claims.unfinished_key)
    assert job.get() == 3


def test_a_job_lost_more_than_lost_retries_times_is_set_aside(app):
    huey = app.huey
    job = app.add(1, 2)
    claims = Claims(huey)
    claims.take(DEAD)
    assert claims.recover("me", dead(), LEASE, 1)[0].put_back
    claims.take(DEAD)
    last = claims.recover("me", dead(), LEASE, 1)[0]
    assert (last.losses, last.put_back) == (2, False)
    assert queued_ids(huey) == []
    entries = [json.loads(raw) for raw in claims.conn.lrange(claims.quarantine_key, 0, -1)]
    assert len(entries) == 1 and "lost more than 1 times" in entries[0]["reason"]
    member = base64.b64decode(entries[0]["message"])
    assert huey.deserialize_task(claims.data(member)).id == job.id
    assert not claims.conn.exists(claims.losses_key)


def test_unregistered_claimers(app):
    """A claim of a name tq never listed is taken over only when it is an
    attached consumer's name on a claim older than FORGET_AFTER."""
    huey = app.huey
    app.add(1, 1)
    app.add(2, 2)
    claims = Claims(huey)
    claims.take("unregistered:host:7")
    claims.take("host:9:huey-forgot")
    assert claims.recover("me", [], LEASE, 3) == []
    for claim in claims.claims()[0]:  # both claims taken long ago
        claimer, score, taken = claims.conn.hget(claims.claimed_key, claim.token).split(b"\n")
        claims.conn.hset(claims.claimed_key, claim.token,
                         b"\n".join([claimer, score, str(float(taken) - FORGET_AFTER - 5).encode()]))
    recovered = claims.recover("me", [], LEASE, 3)
    assert [r.claim.claimer for r in recovered] == ["host:9:huey-forgot"]


def test_own_claims_are_never_taken_over(app):
    app.add(1, 1)
    claims = Claims(app.huey)
    claims.take(DEAD)
    assert claims.recover(DEAD, dead(), LEASE, 3) == []


def _meta(claims: Claims, score: str = "") -> bytes:
    score = score or ("0" if claims.kind == "zset" else "")
    return f"{DEAD}\n{score}\n1".encode()


# name, a claims entry (member or None), a claimed entry (meta or None), expected
FORGED = [
    ("message with no claim record", b"\x80junk", None, "no claim record"),
    ("claim record with no message", None, "META", "no message"),
    ("garbage record", b"\x80junk", b"garbage", "not written by a claim"),
    ("bad UTF-8 record", b"\x80junk", b"\xff\xfe\n\n1", "not written by a claim"),
    ("NaN-ish taken", b"\x80junk", f"{DEAD}\n\nnot-a-time".encode(), "not written by a claim"),
    ("markup and escapes", b"[red]x[/]\x1b[2J", "META", "the app cannot read it"),
    ("huge undecodable message", b"\x00" * 1_000_000, "META", "the app cannot read it"),
]


@pytest.mark.parametrize("name,member,meta,reason", FORGED, ids=[c[0] for c in FORGED])
def test_forged_claim_entries_are_set_aside_and_good_claims_still_recovered(
        app, name, member, meta, reason):
    huey = app.huey
    good = app.add(5, 5)
    claims = Claims(huey)
    claims.take(DEAD)
    if member is not None:
        claims.conn.hset(claims.claims_key, "forged", member)
    if meta is not None:
        claims.conn.hset(claims.claimed_key, "forged", _meta(claims) if meta == "META" else meta)
    recovered = claims.recover("me", dead(), LEASE, 3)
    assert [r.task.id for r in recovered] == [good.id]
    assert queued_ids(huey) == [good.id]
    assert claims.claims() == ([], [])
    entries = [json.loads(raw) for raw in claims.conn.lrange(claims.quarantine_key, 0, -1)]
    if member is None:
        assert entries == []  # nothing to keep
    else:
        assert len(entries) == 1 and reason in entries[0]["reason"]
        assert base64.b64decode(entries[0]["message"]) == member


def test_a_message_the_app_cannot_read_is_set_aside_and_the_worker_goes_on(app):
    huey = app.huey
    claims = attachment(huey).claims
    garbage = b"\x80\x04not a pickle"
    if claims.kind == "zset":
        claims.conn.zadd(claims.queue_key, {b"\x00" * 8 + garbage: 0})
    else:
        claims.conn.lpush(claims.queue_key, garbage)
    good = app.add(2, 3)
    assert huey.dequeue() is None  # set aside, not raised into the worker
    task = huey.dequeue()
    assert task.id == good.id
    huey.execute(task)
    assert good.get() == 5
    entries = [json.loads(raw) for raw in claims.conn.lrange(claims.quarantine_key, 0, -1)]
    assert len(entries) == 1 and "cannot read it" in entries[0]["reason"]
    assert claims.claims() == ([], [])


def test_a_claim_key_of_the_wrong_type_loses_no_message(app):
    huey = app.huey
    job = app.add(1, 1)
    claims = Claims(huey)
    claims.conn.set(claims.claimed_key, "forged")
    with pytest.raises(redis.ResponseError, match="holds a string"):
        claims.take(DEAD)
    assert queued_ids(huey) == [job.id]  # checked before the pop: still queued


def test_a_workers_last_claim_is_released_by_its_next_poll_or_when_it_stops(app):
    """In a huey_consumer a finished job's claim goes with the worker's next
    claim (one script a job); a worker that stops first releases it in Huey's
    shutdown hook, so no later consumer runs the job again."""
    huey = app.huey
    found = attachment(huey)
    found._consumer_pid, found.name = os.getpid(), "host:2:huey-live01"  # as huey_consumer's start-up does
    claims = found.claims
    first, second = app.add(1, 1), app.add(2, 2)
    huey.execute(huey.dequeue())
    assert [c.claimer for c in claims.claims()[0]] == ["host:2:huey-live01"]  # still held
    task = huey.dequeue()  # the next claim releases the first job's
    assert task.id == second.id and len(claims.claims()[0]) == 1
    huey.execute(task)
    found._on_worker_stop()  # Huey's shutdown hook, in the worker's thread
    assert claims.claims() == ([], [])
    assert (first.get(), second.get()) == (2, 4)


def test_claims_taken_and_released_during_a_recovery_pass_are_never_set_aside(app):
    """The pass reads both claim hashes as one snapshot: a claim or release
    landing between two reads would look like a half entry and be set aside."""
    import threading
    huey = app.huey
    for i in range(300):
        app.add(i, i)
    worker = Claims(huey)
    done = threading.Event()

    def run() -> None:
        while (taken := worker.take("host:3:huey-live02")) is not None:
            worker.release(taken[0], "job")
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    passes = 0
    while not done.is_set() or passes == 0:
        Claims(huey).recover("me", [], LEASE, 3)
        passes += 1
    thread.join()
    assert worker.conn.llen(worker.quarantine_key) == 0
    assert huey.storage.queue_size() == 0 and worker.claims() == ([], [])


def test_a_lost_then_retried_job_keeps_counting_its_attempts(app):
    """Lost once, then failed and retried by Huey: the retry, taken by another
    process, is attempt 3 (the lost one counts), and the counts go with its end."""
    huey = app.huey
    job = app.fail("boom")  # retries=1
    found = attachment(huey)
    claims = found.claims
    claims.take(DEAD)
    claims.recover("me", dead(), LEASE, 3)
    task = huey.dequeue()
    assert found.attempts_started(task) == 1  # attempt 2 starts
    huey.execute(task)  # fails; Huey re-enqueues it with no retry left
    assert claims.unfinished(job.id) == 1
    found._attempts.clear()  # what another process knows of it: nothing
    found._unfinished.clear()
    retry = huey.dequeue()
    assert retry.id == job.id and found.attempts_started(retry) == 2  # attempt 3 starts
    huey.execute(retry)
    assert not claims.conn.exists(claims.losses_key, claims.unfinished_key)

"""Shared helpers for the benchmark harness and the job functions.

Every job, whatever system runs it, reports completion the same way: one Redis
round trip (an EVALSHA of ``_DONE_LUA``) that INCRs a per-system counter and,
when the counter reaches the target the harness set, RPUSHes the job's own
finish time onto a "done" list that the harness BLPOPs.  So a "no-op" job is
really "one Redis round trip", identically for every system.

Job code finds its keys through two environment variables that the harness
sets for every worker subprocess: ``BENCH_PREFIX`` (unique per system and run)
and ``BENCH_REDIS_URL``.
"""
from __future__ import annotations

import os
import time

import redis

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

ENV_PREFIX = "BENCH_PREFIX"
ENV_REDIS_URL = "BENCH_REDIS_URL"

# KEYS: counter, target, done-list, [latency-list]
# ARGV: finish time, [latency record]
_DONE_LUA = """
if ARGV[2] then redis.call('RPUSH', KEYS[4], ARGV[2]) end
local n = redis.call('INCR', KEYS[1])
local t = tonumber(redis.call('GET', KEYS[2]) or '-1')
if n == t then redis.call('RPUSH', KEYS[3], ARGV[1]) end
return n
"""


class Keys:
    """Harness-owned Redis keys for one system under test (all carry the prefix)."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        base = f"{prefix}:bench"
        self.done = f"{base}:done"          # INCR'd by every finished job
        self.target = f"{base}:target"      # job count that completes a run
        self.done_list = f"{base}:donelist"  # finish time of the target-th job
        self.ready = f"{base}:ready"        # INCR'd by each worker when ready
        self.lat = f"{base}:lat"            # "enqueued_at,started_at" records
        self.gate = f"{base}:gate:"         # staging prefix for queue keys

    def all(self):
        return [self.done, self.target, self.done_list, self.ready, self.lat]


# ---------------------------------------------------------------- job side --
_client_pid = None
_client = None
_script = None
_keys = None


def _job_side():
    """Per-process (fork-safe) Redis client + script + keys for job code."""
    global _client_pid, _client, _script, _keys
    pid = os.getpid()
    if _client_pid != pid:
        _client = redis.Redis.from_url(os.environ.get(ENV_REDIS_URL, DEFAULT_REDIS_URL))
        _script = _client.register_script(_DONE_LUA)
        _keys = Keys(os.environ[ENV_PREFIX])
        _client_pid = pid
    return _script, _keys


def job_done():
    """Called at the end of every benchmark job (the whole body of a no-op)."""
    script, k = _job_side()
    script(keys=[k.done, k.target, k.done_list], args=[repr(time.time())])


def job_sleep(ms):
    time.sleep(ms / 1000.0)
    job_done()


def job_record_start(enqueued_at):
    started = time.time()
    script, k = _job_side()
    script(keys=[k.done, k.target, k.done_list, k.lat],
           args=[repr(time.time()), f"{enqueued_at!r},{started!r}"])


def worker_ready():
    """Called by each worker (thread or process) once it can take jobs."""
    _, k = _job_side()
    _client.incr(k.ready)


# ------------------------------------------------------------ harness side --
def redis_client(url: str = DEFAULT_REDIS_URL) -> redis.Redis:
    return redis.Redis.from_url(url)


def delete_pattern(r: redis.Redis, pattern: str) -> int:
    n = 0
    batch = []
    for key in r.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 500:
            n += r.unlink(*batch)
            batch = []
    if batch:
        n += r.unlink(*batch)
    return n


def now() -> float:
    return time.time()

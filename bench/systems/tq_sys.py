"""tq slot.  ALL tq-specific code of the harness lives here (plus the three
task functions in bench/tasks.py), so it is one file to fix when tq's real API
lands.  Written against the *intended* API, none of it checked against a real
tq yet:

* ``tq.configure(tq.config.load_config(env={...}))`` with the TQ_* variables
  of ``tq_env()`` (Redis queue backend under our prefix, queue ``bench``);
* ``tq.submit("bench.tasks.noop", queue="bench")`` for one job;
  ``tq.submit("bench.tasks.record_start", args=[t], queue="bench")`` -- the
  ``args=`` keyword is a GUESS (the brief only shows submit without args);
* ``tq.submit_many([{"task": ..., "args": [...], "queue": "bench"}, ...])``;
* workers: ``tq consumer --queue bench -w N -k thread`` with the same TQ_*
  variables in its environment (N threads in one process).

What the harness cannot know yet and therefore guesses:

* readiness: tq has no worker-ready hook we know of, so the harness runs
  2*N warm-up jobs before each measurement (``expected_ready`` -> None);
* which Redis keys hold tq's pending jobs (needed for the start gate):
  ``queue_keys()`` takes every list/zset key containing our prefix, minus
  the harness's own "<prefix>:bench:*" keys;
* job history in MariaDB (TQ_HISTORY_URL) is NOT cleaned up: its schema is
  unknown.  TODO once tq has a purge API.
"""
from __future__ import annotations

import os
import shutil
import sys
import time

from bench.systems.base import System, SkipSystem

QUEUE = "bench"
HISTORY_URL = "mysql://root@127.0.0.1:3306/test"
CHUNK = 500


def _tq_cli():
    """Path of the ``tq`` console script: next to this interpreter, else PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "tq")
    if os.access(here, os.X_OK):
        return here
    return shutil.which("tq")


class TQ(System):
    name = "tq"
    worker_note = "tq: N = `tq consumer --queue bench -w N -k thread` (N threads in one process)"
    do_latency = True

    @classmethod
    def check(cls):
        try:
            import tq
            import tq.config  # noqa: F401
        except Exception as e:  # ImportError, or a half-written package failing
            raise SkipSystem(f"`import tq` failed ({type(e).__name__}: {e}); "
                             f"install tq into this venv (pip install -e <tq checkout>) to bench it")
        missing = [a for a in ("configure", "submit", "submit_many", "task") if not hasattr(tq, a)]
        if not hasattr(tq.config, "load_config"):
            missing.append("config.load_config")
        if missing:
            raise SkipSystem(f"tq imported from {getattr(tq, '__file__', '?')} but lacks {', '.join(missing)}")
        if not _tq_cli():
            raise SkipSystem("tq is importable but its `tq` command is not installed")

    def tq_env(self):
        return {
            "TQ_QUEUE_BACKEND": "redis",
            "TQ_QUEUE_URL": self.redis_url,
            "TQ_QUEUE_PREFIX": self.prefix,
            "TQ_HISTORY_URL": HISTORY_URL,
            "TQ_QUEUES_BENCH": "0",
            "TQ_TASKS_MODULES": "bench.tasks",
        }

    def setup(self):
        import tq
        import tq.config
        tq.configure(tq.config.load_config(env=self.tq_env()))
        import bench.tasks  # noqa: F401  (registers the @tq.task()s here too)
        self.tq = tq

    # -- enqueue
    def _submit_many(self, task, args, n):
        item = {"task": task, "args": list(args), "queue": QUEUE}
        for i in range(0, n, CHUNK):
            self.tq.submit_many([dict(item) for _ in range(min(CHUNK, n - i))])

    def enqueue_noop(self, n):
        self._submit_many("bench.tasks.noop", [], n)

    def enqueue_sleep(self, n, ms):
        self._submit_many("bench.tasks.sleep_ms", [ms], n)

    def enqueue_record_start(self, enqueued_at):
        self.tq.submit("bench.tasks.record_start", args=[enqueued_at], queue=QUEUE)

    def enqueue_loop_rate(self, n):
        submit = self.tq.submit
        t0 = time.perf_counter()
        for _ in range(n):
            submit("bench.tasks.noop", queue=QUEUE)
        dt = time.perf_counter() - t0
        self.purge()
        return n / dt

    def enqueue_batch_rate(self, n):
        t0 = time.perf_counter()
        self.enqueue_noop(n)
        dt = time.perf_counter() - t0
        self.purge()
        return n / dt

    # -- workers
    def worker_env(self):
        env = super().worker_env()
        env.update(self.tq_env())
        return env

    def worker_commands(self, n):
        return [[_tq_cli(), "consumer", "--queue", QUEUE, "-w", str(n), "-k", "thread"]]

    def expected_ready(self, n):
        return None  # no known ready hook: warm-up jobs instead

    def queue_keys(self):
        own = f"{self.prefix}:bench:".encode()
        keys = []
        for key in self.r.scan_iter(match=f"*{self.prefix}*", count=1000):
            if key.startswith(own):
                continue
            if self.r.type(key) in (b"list", b"zset"):
                keys.append(key)
        return keys

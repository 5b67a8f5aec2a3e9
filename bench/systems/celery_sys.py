"""Celery: Redis broker (kombu, every key under "<prefix>:"), no result
backend, one queue named after the prefix.  One ``celery worker`` process
with concurrency N; mingle, gossip, heartbeats and remote control are off.

* ``celery-threads``: ``--pool threads -c N`` (N threads in one process);
* ``celery-prefork``: ``--pool prefork -c N`` (N forked child processes).
"""
from __future__ import annotations

import time

from bench.systems.base import SkipSystem, System, python_argv


class CeleryBase(System):
    pool = "threads"

    @classmethod
    def check(cls):
        try:
            import celery  # noqa: F401
        except ImportError as e:
            raise SkipSystem(f"import celery failed: {e}") from None

    def setup(self):
        from bench.tasks_celery import make_app
        self.app = make_app(self.prefix, url=self.redis_url)
        self.t = self.app.bench_tasks
        self.producer_pool = None

    def enqueue_noop(self, n):
        d = self.t["noop"].delay
        for _ in range(n):
            d()

    def enqueue_sleep(self, n, ms):
        d = self.t["sleep_ms"].delay
        for _ in range(n):
            d(ms)

    def enqueue_record_start(self, enqueued_at):
        self.t["record_start"].delay(enqueued_at)

    def enqueue_loop_rate(self, n):
        d = self.t["noop"].delay
        t0 = time.perf_counter()
        for _ in range(n):
            d()
        dt = time.perf_counter() - t0
        self.purge()
        return n / dt

    def worker_commands(self, n):
        return [python_argv("-m", "celery", "-A", "bench.tasks_celery", "worker",
                            "--pool", self.pool, "--concurrency", str(n), "-Q", self.prefix,
                            "-n", f"{self.prefix}@%h", "--without-mingle", "--without-gossip",
                            "--without-heartbeat", "--loglevel", "WARNING")]

    def expected_ready(self, n):
        return 1  # worker_ready fires once per celery worker process

    def queue_keys(self):
        # kombu's Redis transport: one list per queue (default priority),
        # under the global key prefix.
        return [f"{self.prefix}:{self.prefix}"]

    def cleanup(self):
        try:
            self.app.close()
        except Exception:
            pass
        super().cleanup()


class CeleryThreads(CeleryBase):
    name = "celery-threads"
    pool = "threads"
    worker_note = "celery-threads: N = `--pool threads --concurrency N` in one worker process"


class CeleryPrefork(CeleryBase):
    name = "celery-prefork"
    pool = "prefork"
    worker_note = "celery-prefork: N = `--pool prefork --concurrency N` (N child processes)"
    do_enqueue = False

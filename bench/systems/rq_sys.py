"""RQ: one queue named after the prefix; jobs get ids "<prefix>-<uuid>" so
every key RQ writes for them carries the prefix.  RQ workers run one job at a
time, so N workers = N worker processes.  Two variants:

* ``rq-simple``: ``rq.SimpleWorker`` (runs the job in the worker process);
* ``rq-fork``:   ``rq.Worker`` (default; forks a work horse for every job).

Worker subprocess: ``python -m bench.systems.rq_sys <simple|fork> <queue> <name>``.
"""
from __future__ import annotations

import sys
import time
import uuid

from bench.systems.base import SkipSystem, System, python_argv


class RQBase(System):
    worker_cls = "simple"

    @classmethod
    def check(cls):
        try:
            import rq  # noqa: F401
        except ImportError as e:
            raise SkipSystem(f"import rq failed: {e}") from None

    def setup(self):
        from rq import Queue

        from bench import tasks_rq
        self.tasks = tasks_rq
        self.q = Queue(self.prefix, connection=self.r)
        # RQ's maintenance lock is global; remove it at the end only if we made it.
        self._had_clean_groups = bool(self.r.exists("rq:clean_groups"))

    def _jid(self):
        return f"{self.prefix}-{uuid.uuid4().hex}"

    def _enqueue_many(self, fn, args, n):
        from rq import Queue
        chunk = 500
        for i in range(0, n, chunk):
            datas = [Queue.prepare_data(fn, args=args, job_id=self._jid()) for _ in range(min(chunk, n - i))]
            self.q.enqueue_many(datas)

    def enqueue_noop(self, n):
        self._enqueue_many(self.tasks.noop, (), n)

    def enqueue_sleep(self, n, ms):
        self._enqueue_many(self.tasks.sleep_ms, (ms,), n)

    def enqueue_record_start(self, enqueued_at):
        self.q.enqueue(self.tasks.record_start, enqueued_at, job_id=self._jid())

    def enqueue_loop_rate(self, n):
        noop = self.tasks.noop
        enqueue = self.q.enqueue
        t0 = time.perf_counter()
        for _ in range(n):
            enqueue(noop, job_id=self._jid())
        dt = time.perf_counter() - t0
        self.purge()
        return n / dt

    def enqueue_batch_rate(self, n):
        t0 = time.perf_counter()
        self.enqueue_noop(n)  # Queue.enqueue_many, 500 jobs per pipeline
        dt = time.perf_counter() - t0
        self.purge()
        return n / dt

    def worker_commands(self, n):
        return [python_argv("-m", "bench.systems.rq_sys", self.worker_cls, self.prefix, f"{self.prefix}_w{n}_{i}")
                for i in range(n)]

    def queue_keys(self):
        return [self.q.key]

    def purge(self):
        super().purge()
        from bench import common
        common.delete_pattern(self.r, f"rq:job:{self.prefix}-*")

    def extra_cleanup(self):
        if not getattr(self, "_had_clean_groups", True):
            self.r.delete("rq:clean_groups")
        # Shared RQ sets that list our queue / workers by name.
        for key in (b"rq:queues", b"rq:workers"):
            members = [m for m in self.r.smembers(key) if self.prefix.encode() in m]
            if members:
                self.r.srem(key, *members)


class RQSimple(RQBase):
    name = "rq-simple"
    worker_cls = "simple"
    worker_note = "rq-simple: N = N `rq.SimpleWorker` processes (one job at a time each, no fork)"
    do_enqueue = True


class RQFork(RQBase):
    name = "rq-fork"
    worker_cls = "fork"
    worker_note = "rq-fork: N = N default `rq.Worker` processes (fork a work horse per job)"
    do_enqueue = False  # same enqueue path as rq-simple
    job_scale = 0.25  # ~60-110 jobs/s: a quarter of N keeps a full run bounded


def _worker_main(argv):
    import logging

    from rq import Queue, SimpleWorker, Worker

    from bench import common
    cls = {"simple": SimpleWorker, "fork": Worker}[argv[0]]
    logging.basicConfig(level=logging.WARNING)
    conn = common.redis_client(__import__("os").environ[common.ENV_REDIS_URL])
    w = cls([Queue(argv[1], connection=conn)], connection=conn, name=argv[2])
    common.worker_ready()
    w.work(logging_level="WARNING")


if __name__ == "__main__":
    _worker_main(sys.argv[1:])

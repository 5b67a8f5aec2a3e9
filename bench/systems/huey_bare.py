"""Bare Huey: PriorityRedisHuey, consumer = huey.consumer.Consumer with N
worker *threads* in one process (``-k thread``), periodic tasks off.

Worker subprocess: ``python -m bench.systems.huey_bare <n>``.
"""
from __future__ import annotations

import sys
import time

from bench.systems.base import SkipSystem, System, python_argv


class HueyBare(System):
    name = "huey"
    worker_note = "huey: N = worker threads of one `huey.consumer.Consumer` process (-k thread)"
    do_latency = True

    @classmethod
    def check(cls):
        try:
            import huey  # noqa: F401
        except ImportError as e:
            raise SkipSystem(f"import huey failed: {e}") from None

    def setup(self):
        from bench.tasks_huey import make_huey
        self.huey = make_huey(self.prefix, url=self.redis_url)
        self.t = self.huey.bench_tasks

    def enqueue_noop(self, n):
        noop = self.t["noop"]
        for _ in range(n):
            noop()

    def enqueue_sleep(self, n, ms):
        s = self.t["sleep_ms"]
        for _ in range(n):
            s(ms)

    def enqueue_record_start(self, enqueued_at):
        self.t["record_start"](enqueued_at)

    def enqueue_loop_rate(self, n):
        noop = self.t["noop"]
        t0 = time.perf_counter()
        for _ in range(n):
            noop()
        dt = time.perf_counter() - t0
        self.purge()
        return n / dt

    def worker_commands(self, n):
        return [python_argv("-m", "bench.systems.huey_bare", str(n))]

    def queue_keys(self):
        return [self.huey.storage.queue_key]

    def purge(self):
        super().purge()
        self.r.delete(self.huey.storage.queue_key, self.huey.storage.schedule_key,
                      self.huey.storage.result_key)


def _worker_main(argv):
    import logging

    from bench.tasks_huey import huey
    logging.basicConfig(level=logging.WARNING)
    consumer = huey.create_consumer(workers=int(argv[0]), worker_type="thread", periodic=False)
    consumer.run()


if __name__ == "__main__":
    _worker_main(sys.argv[1:])

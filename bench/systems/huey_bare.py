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


class HueyAttached(HueyBare):
    """The same Huey app and consumer with `tq.attach(huey)`: history of every
    job in MariaDB (a database of this run's own), through tq's outbox (enqueue)
    and the consumer's batched writer (run)."""
    name = "huey-attached"
    attach = "attached"
    worker_note = "huey-attached: as huey, with tq.attach(huey), history to MariaDB"

    @classmethod
    def check(cls):
        super().check()
        from bench.systems.tq_sys import TQ
        TQ.check()

    def tq_env(self):
        from bench.systems.tq_sys import MYSQL
        return {"TQ_QUEUE_BACKEND": "redis", "TQ_QUEUE_URL": self.redis_url,
                "TQ_QUEUE_PREFIX": self.prefix,
                "TQ_HISTORY_URL": f"mysql://{MYSQL['user']}@{MYSQL['host']}:{MYSQL['port']}"
                                  f"/{self.database_name}",
                "TQ_TQ_DATA_DIR": self.data_dir, "TQ_TQ_LOG_LEVEL": "warning"}

    @property
    def database_name(self):
        return f"tqbench_{self.prefix}"[:64]

    def setup(self):
        import tempfile

        from bench.systems.tq_sys import mysql
        from bench.tasks_huey import make_huey
        from tq import migrations
        from tq.config import load_config
        from tq.models import open_database
        from tq.runtime import Runtime
        self.data_dir = tempfile.mkdtemp(prefix=f"{self.prefix}-data-")
        with mysql() as conn:
            conn.cursor().execute(f"CREATE DATABASE `{self.database_name}`")
        self._db_created = True
        config = load_config(env=self.tq_env())
        migrations.migrate(open_database(config.history.url))
        self.runtime = Runtime(config)
        self.huey = make_huey(self.prefix, url=self.redis_url, attach=self.attach,
                              runtime=self.runtime)
        self.t = self.huey.bench_tasks

    def worker_env(self):
        from bench.tasks_huey import ENV_ATTACH
        env = super().worker_env()
        env = {key: value for key, value in env.items() if not key.startswith("TQ_")}
        env.update(self.tq_env(), **{ENV_ATTACH: self.attach})
        return env

    def cleanup(self):
        import shutil

        from bench.systems.tq_sys import mysql
        super().cleanup()
        if getattr(self, "runtime", None) is not None:
            self.runtime.close()
        if getattr(self, "_db_created", False):
            with mysql() as conn:
                conn.cursor().execute(f"DROP DATABASE IF EXISTS `{self.database_name}`")
        if getattr(self, "data_dir", None):
            shutil.rmtree(self.data_dir, ignore_errors=True)


class HueyDurable(HueyAttached):
    """As huey-attached, with durable=True: each message claimed as it is taken."""
    name = "huey-durable"
    attach = "durable"
    worker_note = "huey-durable: as huey-attached, with durable=True (tq's claims)"

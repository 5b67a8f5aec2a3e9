"""Bare-Huey task functions (PriorityRedisHuey).

``make_huey(name)`` builds the Huey instance and registers the tasks on it;
the harness calls it with the system's prefix, and the worker process gets
the same instance through the module-level ``huey`` (name from BENCH_PREFIX).
Task names are "bench.tasks_huey.<fn>" in both processes.
"""
import os

from huey import PriorityRedisHuey

from bench import common


def make_huey(name, url=None):
    huey = PriorityRedisHuey(name, url=url or os.environ.get(common.ENV_REDIS_URL, common.DEFAULT_REDIS_URL))

    @huey.task()
    def noop():
        common.job_done()

    @huey.task()
    def sleep_ms(ms):
        common.job_sleep(ms)

    @huey.task()
    def record_start(enqueued_at):
        common.job_record_start(enqueued_at)

    @huey.on_startup()
    def ready():
        # Runs once in each worker thread before it starts polling.
        common.worker_ready()

    huey.bench_tasks = {"noop": noop, "sleep_ms": sleep_ms, "record_start": record_start}
    return huey


huey = make_huey(os.environ[common.ENV_PREFIX]) if common.ENV_PREFIX in os.environ else None

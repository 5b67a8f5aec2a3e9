"""Bare-Huey task functions (PriorityRedisHuey).

``make_huey(name)`` builds the Huey instance and registers the tasks on it;
the harness calls it with the system's prefix, and the worker process gets
the same instance through the module-level ``huey`` (name from BENCH_PREFIX).
Task names are "bench.tasks_huey.<fn>" in both processes.
"""
import os

from huey import PriorityRedisHuey

from bench import common


def make_huey(name, url=None, attach=None, runtime=None):
    """attach: None (bare Huey), "attached" (tq.attach(huey)) or "durable"
    (tq.attach(huey, durable=True)); `runtime`: the tq configuration to record
    with (a worker process reads its TQ_* variables)."""
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
    if attach:
        import tq
        tq.attach(huey, durable=attach == "durable", runtime=runtime)
    return huey


ENV_ATTACH = "BENCH_HUEY_ATTACH"  # set for the huey-attached / huey-durable workers
huey = (make_huey(os.environ[common.ENV_PREFIX], attach=os.environ.get(ENV_ATTACH) or None)
        if common.ENV_PREFIX in os.environ else None)

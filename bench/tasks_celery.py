"""Celery app + task functions.  Redis broker, no result backend.

``make_app(prefix)`` is used by the harness; the worker process loads the
module-level ``app`` (prefix from BENCH_PREFIX) via ``celery -A bench.tasks_celery``.
Every Redis key kombu writes carries the prefix (``global_keyprefix``).
"""
import os

from celery import Celery
from celery.signals import worker_ready

from bench import common


def make_app(prefix, url=None):
    app = Celery(f"bench_{prefix}", set_as_current=False)
    app.conf.update(
        broker_url=url or os.environ.get(common.ENV_REDIS_URL, common.DEFAULT_REDIS_URL),
        broker_transport_options={"global_keyprefix": f"{prefix}:"},
        broker_connection_retry_on_startup=True,
        result_backend=None,
        task_ignore_result=True,
        task_default_queue=prefix,
        worker_enable_remote_control=False,  # no pidbox fan-out keys
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
    )

    @app.task(name="bench.noop")
    def noop():
        common.job_done()

    @app.task(name="bench.sleep_ms")
    def sleep_ms(ms):
        common.job_sleep(ms)

    @app.task(name="bench.record_start")
    def record_start(enqueued_at):
        common.job_record_start(enqueued_at)

    app.bench_tasks = {"noop": noop, "sleep_ms": sleep_ms, "record_start": record_start}
    return app


app = make_app(os.environ[common.ENV_PREFIX]) if common.ENV_PREFIX in os.environ else None


@worker_ready.connect
def _ready(**_):
    # Sent once per worker process, after its pool and consumer started.
    common.worker_ready()

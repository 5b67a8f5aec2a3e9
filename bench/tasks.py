"""tq benchmark tasks (loaded by the tq consumer through TQ_TASKS_MODULES=bench.tasks).

Written against tq's intended API (``@tq.task()``); tq is not released yet,
so the harness never imports this module unless ``import tq`` works.
"""
import tq
from bench import common


@tq.task()
def noop():
    common.job_done()


@tq.task()
def sleep_ms(ms):
    common.job_sleep(ms)


@tq.task()
def record_start(enqueued_at):
    common.job_record_start(enqueued_at)

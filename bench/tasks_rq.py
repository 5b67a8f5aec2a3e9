"""RQ job functions (imported by reference "bench.tasks_rq.<fn>" in workers)."""
from bench import common


def noop():
    common.job_done()


def sleep_ms(ms):
    common.job_sleep(ms)


def record_start(enqueued_at):
    common.job_record_start(enqueued_at)

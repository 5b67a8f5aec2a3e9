"""How long a summary roll-up takes on MariaDB.

    .venv/bin/python bench/bench_rollup.py [--burst 100000] [--day-per-minute 1000]

Two histories, each in a database of its own (created and dropped here):
  - burst: BURST jobs enqueued, run and finished within one minute (5% fail,
    3% retried once), as if written at once: the cost of one very busy minute;
  - day: DAY_PER_MINUTE jobs a minute for 24 hours, each row stamped
    `updated_at` at its finish as the history writer would have: the cost of
    the first roll-up over a day, then of the steady-state one-minute step.
Rows are bulk-inserted (the point is the roll-up, not the writer). 10 tasks on
2 queues. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid

import pymysql

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tq import summaries  # noqa: E402
from tq.config import load_config  # noqa: E402
from tq.metrics import exposition  # noqa: E402
from tq.models import state_seq  # noqa: E402
from tq.runtime import Runtime  # noqa: E402
from tq.stats import task_stats  # noqa: E402

HOST = os.environ.get("TQ_TEST_MYSQL_HOST", "127.0.0.1")
PORT = int(os.environ.get("TQ_TEST_MYSQL_PORT", "3306"))
TASKS = [(f"q{i % 2}", f"bench.tasks.t{i}") for i in range(10)]
JOB_COLUMNS = ("id", "queue", "task", "state", "seq", "attempts", "enqueued_at", "started_at",
               "finished_at", "updated_at")
ATTEMPT_COLUMNS = ("job_id", "attempt", "started_at", "finished_at", "outcome")


def jobs_in_minute(minute: float, count: int, rng: random.Random, stamp: float | None):
    """Rows for `count` jobs enqueued and finished inside [minute, minute + 60)."""
    jobs, attempts = [], []
    for _ in range(count):
        queue, task = rng.choice(TASKS)
        enqueued = minute + rng.uniform(0, 50)
        # Time-ordered ids (like UUIDv7) keep the bulk load quick; the roll-up never
        # reads ids in order, so this does not flatter it.
        job_id = f"{int(enqueued * 1e6):014x}{rng.getrandbits(64):016x}"
        clock = enqueued + rng.expovariate(1 / 0.2)
        roll = rng.random()
        outcomes = ["failed"] if roll < 0.05 else (["failed", "succeeded"] if roll < 0.08
                                                   else ["succeeded"])
        for number, outcome in enumerate(outcomes, 1):
            run = min(rng.lognormvariate(-3, 1), 3)
            attempts.append((job_id, number, clock, clock + run, outcome))
            started, clock = clock, clock + run
        finished = min(clock, minute + 59.9)
        jobs.append((job_id, queue, task, outcomes[-1], state_seq(outcomes[-1], len(outcomes)),
                     len(outcomes), enqueued, started, finished,
                     finished if stamp is None else stamp))
    return jobs, attempts


def insert(database, jobs, attempts) -> None:
    for table, columns, rows in (("job", JOB_COLUMNS, jobs),
                                 ("attempt", ATTEMPT_COLUMNS, attempts)):
        sql = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
               f"({', '.join(['%s'] * len(columns))})")
        with database.atomic():
            cursor = database.cursor()
            for start in range(0, len(rows), 5000):
                cursor.executemany(sql, rows[start:start + 5000])


def timed(function, *args, **kwargs):
    started = time.monotonic()
    value = function(*args, **kwargs)
    return value, time.monotonic() - started


class Scratch:
    """A MariaDB database and a runtime on it, dropped afterwards."""

    def __init__(self) -> None:
        self.name = f"tq_bench_{uuid.uuid4().hex[:8]}"
        with pymysql.connect(host=HOST, port=PORT, user="root", autocommit=True) as conn:
            conn.cursor().execute(f"CREATE DATABASE `{self.name}`")
        data = tempfile.mkdtemp(prefix="tq-bench-")
        self.runtime = Runtime(load_config(env={
            "TQ_TQ_DATA_DIR": data, "TQ_HISTORY_URL": f"mysql://root@{HOST}:{PORT}/{self.name}"}))
        self.database = self.runtime.history_db()

    def close(self) -> None:
        self.runtime.close()
        with pymysql.connect(host=HOST, port=PORT, user="root", autocommit=True) as conn:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{self.name}`")


def bench_burst(count: int, rng: random.Random) -> list[tuple[str, str]]:
    scratch = Scratch()
    try:
        now = time.time()
        minute = now // 60 * 60 - 120
        jobs, attempts = jobs_in_minute(minute, count, rng, stamp=now)
        _, load = timed(insert, scratch.database, jobs, attempts)
        first, first_s = timed(summaries.rollup, scratch.runtime, now)
        _, again_s = timed(summaries.rollup, scratch.runtime, now + 1)
        later = now + summaries.LATE_SECONDS + 60
        summaries.rollup(scratch.runtime, later)
        idle, idle_s = timed(summaries.rollup, scratch.runtime, later + 60)
        return [
            (f"burst: insert {count:,} jobs + {len(attempts):,} attempts (setup)", f"{load:.1f}"),
            (f"burst: first roll-up of the minute ({len(first.minutes)} minute(s))",
             f"{first_s:.2f}"),
            ("burst: roll-up again (minute still in the late window, recomputed)",
             f"{again_s:.2f}"),
            (f"burst: roll-up with nothing new ({len(idle.minutes)} minutes)", f"{idle_s:.3f}"),
        ]
    finally:
        scratch.close()


def bench_day(per_minute: int, rng: random.Random) -> list[tuple[str, str]]:
    scratch = Scratch()
    try:
        now = time.time()
        end = now // 60 * 60 - 60
        start = end - 1440 * 60
        load = 0.0
        total_jobs = total_attempts = 0
        for hour in range(24):
            jobs, attempts = [], []
            for minute in range(60):
                j, a = jobs_in_minute(start + (hour * 60 + minute) * 60, per_minute, rng, None)
                jobs += j
                attempts += a
            _, seconds = timed(insert, scratch.database, jobs, attempts)
            load += seconds
            total_jobs += len(jobs)
            total_attempts += len(attempts)
        first, first_s = timed(summaries.rollup, scratch.runtime, now)
        # One more minute arrives, written now; the steady-state step picks it up.
        jobs, attempts = jobs_in_minute(end, per_minute, rng, stamp=time.time())
        insert(scratch.database, jobs, attempts)
        later = time.time() + summaries.LATE_SECONDS + 1
        step, step_s = timed(summaries.rollup, scratch.runtime, later)
        rows, stats_s = timed(task_stats, scratch.runtime, now - 86400, now + 120)
        _, metrics_s = timed(exposition, scratch.runtime)
        return [
            (f"day: insert {total_jobs:,} jobs + {total_attempts:,} attempts "
             f"({per_minute:,}/min, setup)", f"{load:.1f}"),
            (f"day: first roll-up of the whole day ({len(first.minutes):,} minutes)",
             f"{first_s:.1f}"),
            (f"day: next step, one new minute of {per_minute:,} jobs "
             f"({len(step.minutes)} minute(s) recomputed)", f"{step_s:.2f}"),
            (f"day: tq stats --since 24h ({len(rows)} rows from the summaries)", f"{stats_s:.2f}"),
            ("day: tq metrics exposition", f"{metrics_s:.3f}"),
        ]
    finally:
        scratch.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=100_000, help="jobs in the busy minute")
    parser.add_argument("--day-per-minute", type=int, default=1000,
                        help="jobs per minute over the day")
    args = parser.parse_args()
    rng = random.Random(7)
    results = bench_burst(args.burst, rng) + bench_day(args.day_per_minute, rng)
    print("| measurement (MariaDB) | seconds |")
    print("|---|---:|")
    for label, value in results:
        print(f"| {label} | {value} |")


if __name__ == "__main__":
    main()

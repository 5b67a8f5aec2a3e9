"""Ingest throughput: a dropped 100,000-event file -> queued and recorded, on Redis + MariaDB.

Measured from the moment the file appears in the inbox (renamed in from a
`.part` name, as a writer should) until its IngestedFile row says done, which
is after every job is on its Redis queue and every `queued` row is in MariaDB.
Compared, in the same run and on the same Redis, with a loop of plain Huey
enqueue calls (PriorityRedisHuey, one call per event, nothing recorded).

    .venv/bin/python bench/bench_ingest.py [--events 100000] [--batch 500]

Needs Redis on 127.0.0.1:6379 and MariaDB on 127.0.0.1:3306 (root, no password),
or TQ_TEST_REDIS_URL / TQ_TEST_MYSQL_HOST / TQ_TEST_MYSQL_PORT. Uses its own
key prefix and database and removes both afterwards.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pymysql
import redis
from huey import PriorityRedisHuey

from tq.config import load_config
from tq.ingest.pipeline import ingest_file
from tq.ingest.watcher import Watcher
from tq.models import IngestedFile, Job
from tq.runtime import Runtime

REDIS_URL = os.environ.get("TQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MYSQL_HOST = os.environ.get("TQ_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("TQ_TEST_MYSQL_PORT", "3306"))
TYPES = ("order.created", "page.click", "mail.sent")


def mysql():
    return pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", password="",
                           autocommit=True)


def write_file(path: Path, events: int) -> None:
    with open(path, "w") as handle:
        for n in range(events):
            handle.write(json.dumps({"type": TYPES[n % 3], "n": n, "user": f"u{n % 977}",
                                     "amount": n % 100}) + "\n")


class Setup:
    """A private Redis prefix, MariaDB database and data folder for one measurement."""

    def __init__(self, batch: int) -> None:
        token = uuid.uuid4().hex[:10]
        self.prefix = f"bench{token}"
        self.database = f"tq_bench_{token}"
        self.folder = Path(tempfile.mkdtemp(prefix="tq-bench-ingest-"))
        with mysql() as conn:
            conn.cursor().execute(f"CREATE DATABASE `{self.database}`")
        self.runtime = Runtime(load_config(env={
            "TQ_TQ_DATA_DIR": str(self.folder / "data"), "TQ_QUEUE_BACKEND": "redis",
            "TQ_QUEUE_URL": REDIS_URL, "TQ_QUEUE_PREFIX": self.prefix,
            "TQ_HISTORY_URL": f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{self.database}",
            "TQ_INGEST_BATCH_SIZE": str(batch), "TQ_INGEST_POLL_INTERVAL": "0.05"}))
        self.runtime.history_db()

    def queued(self) -> tuple[int, int]:
        on_queues = sum(h.storage.queue_size() for h in self.runtime.queues.values())
        return on_queues, Job.select().where(Job.state == "queued").count()

    def close(self) -> None:
        self.runtime.close()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"*{self.prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])
        with mysql() as conn:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{self.database}`")
        shutil.rmtree(self.folder, ignore_errors=True)


def bench_watcher(events: int, batch: int, source: Path) -> tuple[float, tuple[int, int]]:
    setup = Setup(batch)
    try:
        stop = threading.Event()
        watcher = Watcher(setup.runtime)
        thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
        thread.start()
        watcher.ready.wait(10)
        inbox = watcher.folders.inbox
        part = inbox / "events.jsonl.part"
        shutil.copyfile(source, part)  # ignored while it is a .part
        started = time.perf_counter()
        os.rename(part, inbox / "events.jsonl")
        while True:
            row = IngestedFile.select().where(IngestedFile.outcome == "done").first()
            if row is not None:
                break
            time.sleep(0.05)  # a light poll: the watcher thread needs the CPU
        elapsed = time.perf_counter() - started
        stop.set()
        thread.join(10)
        assert row.accepted == events, row.accepted
        return elapsed, setup.queued()
    finally:
        setup.close()


def bench_ingest_file(events: int, batch: int, source: Path) -> tuple[float, tuple[int, int]]:
    setup = Setup(batch)
    try:
        copy = setup.folder / "events.jsonl"
        shutil.copyfile(source, copy)
        started = time.perf_counter()
        result = ingest_file(setup.runtime, copy)
        elapsed = time.perf_counter() - started
        assert result.accepted == events, result
        return elapsed, setup.queued()
    finally:
        setup.close()


def bench_huey_loop(events: int, source: Path) -> float:
    name = f"bench-huey-{uuid.uuid4().hex[:8]}"
    huey = PriorityRedisHuey(name, url=REDIS_URL)

    @huey.task()
    def handle(event):
        return event

    try:
        with open(source) as handle_file:
            parsed = [json.loads(line) for line in handle_file]  # parsing is not timed
        started = time.perf_counter()
        for event in parsed:
            handle(event)
        elapsed = time.perf_counter() - started
        assert huey.pending_count() == events
        return elapsed
    finally:
        huey.storage.flush_queue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="[ingest] batch_size")
    parser.add_argument("--rounds", type=int, default=2,
                        help="the three runs are interleaved this many times; best kept")
    args = parser.parse_args()
    n = args.events
    folder = Path(tempfile.mkdtemp(prefix="tq-bench-source-"))
    best = {"huey": float("inf"), "watch": float("inf"), "direct": float("inf")}
    try:
        source = folder / "events.jsonl"
        write_file(source, n)
        size_mb = source.stat().st_size / 1e6
        for _ in range(args.rounds):  # interleaved, so load from elsewhere hits all alike
            best["huey"] = min(best["huey"], bench_huey_loop(n, source))
            for key, run in (("watch", bench_watcher), ("direct", bench_ingest_file)):
                seconds, counts = run(n, args.batch, source)
                assert counts == (n, n), (key, counts)  # on the queues, rows in MariaDB
                best[key] = min(best[key], seconds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{n:,} events ({size_mb:.1f} MB JSON lines, 3 types), batch_size {args.batch}, "
          f"best of {args.rounds}; Redis {REDIS_URL.rsplit('@', 1)[-1]}, MariaDB "
          f"{MYSQL_HOST}:{MYSQL_PORT}; Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
    print("| path | done at the end | seconds | events/s | vs huey loop |")
    print("|---|---|---:|---:|---:|")
    rows = [("plain huey: loop of `task(event)` (PriorityRedisHuey)", "on the queue", "huey"),
            ("tq: file dropped in the watched inbox", "on the queues + `queued` rows", "watch"),
            ("tq: `ingest_file()` (as `tq ingest`)", "on the queues + `queued` rows", "direct")]
    for label, done, key in rows:
        print(f"| {label} | {done} | {best[key]:.2f} | {n / best[key]:,.0f} | "
              f"{n / best[key] / (n / best['huey']):.2f}x |")
    print(f"\npeak RSS of this process: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
          "(includes the huey loop's pre-parsed events)")


if __name__ == "__main__":
    sys.exit(main())

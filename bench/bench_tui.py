"""How the console holds up on a big history: 1,000,000 jobs in MariaDB, 100,000 queued in Redis.

    .venv/bin/python bench/bench_tui.py fill      # once: a few minutes
    .venv/bin/python bench/bench_tui.py measure   # console open, page, filter, memory
    .venv/bin/python bench/bench_tui.py drop      # remove the bench database and keys

`fill` is resumable (it tops up to the target counts). `measure` runs the console
headless (Textual's run_test, 160x48) in a fresh process so its peak RSS is the
console's own, and prints a markdown table. Targets (issue 5): open < 2 s, page
change and filter < 200 ms, memory < 150 MB.

Settings: --redis-url, --mysql-url (default root@127.0.0.1:3306, database
tq_bench_tui), --prefix (Redis key namespace, default tqbenchtui).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

HISTORY_ROWS = 1_000_000
QUEUED = 100_000
QUEUES = ("default", "events", "reports")
TASKS = ("tq.tasks.demo.echo", "tq.tasks.demo.sleep", "tq.tasks.demo.flaky",
         "tq.tasks.demo.fail")
ERRORS = [("RuntimeError", "flaky failure (p_fail=0.5)"), ("TimeoutError", "upstream 504"),
          ("KeyError", "'customer_id'"), ("ConnectionError", "refused by 10.0.0.7:5432")]
CHUNK = 5000


def compact(value) -> str:
    """JSON as tq writes it (no spaces), so `args:customer=42` matches."""
    return json.dumps(value, separators=(",", ":"))


def runtime_for(args):
    from tq.config import load_config
    from tq.runtime import Runtime

    return Runtime(load_config(env={
        "TQ_QUEUE_BACKEND": "redis", "TQ_QUEUE_URL": args.redis_url,
        "TQ_QUEUE_PREFIX": args.prefix, "TQ_HISTORY_URL": args.mysql_url,
        "TQ_TQ_DATA_DIR": os.path.join(ROOT, "tq-data", "bench-tui")}))


def ensure_database(url: str) -> None:
    from urllib.parse import urlsplit

    import pymysql

    parts = urlsplit(url)
    with pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                         user=parts.username or "root", password=parts.password or "",
                         autocommit=True) as conn:
        conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{parts.path.strip('/')}`")


def fill(args) -> None:
    import tq
    from tq.models import Job, state_seq

    ensure_database(args.mysql_url)
    runtime = runtime_for(args)
    database = runtime.history_db()
    queued = sum(runtime.queue(q).storage.queue_size() for q in QUEUES)
    started = time.monotonic()
    while queued < QUEUED:
        batch = min(CHUNK, QUEUED - queued)
        tq.submit_many([{"task": "tq.tasks.demo.echo", "args": [queued + n],
                         "kwargs": {"customer": (queued + n) % 5000},
                         "queue": QUEUES[(queued + n) % 3]} for n in range(batch)],
                       runtime=runtime)
        queued += batch
        print(f"queued {queued:,} ({time.monotonic() - started:.0f}s)", file=sys.stderr)
    have = Job.select().count()
    now = time.time()
    rng = random.Random(have)
    while have < HISTORY_ROWS:
        rows = []
        for _ in range(min(CHUNK, HISTORY_ROWS - have)):
            roll = rng.random()
            state = "succeeded" if roll < 0.85 else "failed" if roll < 0.97 else "canceled"
            enqueued = now - rng.random() * 7 * 86400
            started_at = enqueued + rng.random() * 5
            error = rng.choice(ERRORS) if state == "failed" else (None, None)
            rows.append({
                "id": str(uuid.UUID(int=rng.getrandbits(128))), "queue": rng.choice(QUEUES),
                "task": rng.choice(TASKS), "args": compact([rng.randrange(10_000)]),
                "kwargs": compact({"customer": rng.randrange(5000)}),
                "priority": 0,
                "state": state, "seq": state_seq(state, 1), "attempts": 1, "max_retries": 0,
                "enqueued_at": enqueued, "started_at": started_at,
                "finished_at": started_at + rng.random(), "updated_at": started_at + 1,
                "worker": f"bench-{rng.randrange(8)}:{rng.randrange(9999)}/Worker-1",
                "error_type": error[0], "error_message": error[1],
                "traceback": f"Traceback (most recent call last):\n{error[0]}: {error[1]}"
                if error[0] else None})
        with database.atomic():
            Job.insert_many(rows).execute()
        have += len(rows)
        if have % 50_000 < CHUNK:
            print(f"history {have:,} ({time.monotonic() - started:.0f}s)", file=sys.stderr)
    print(f"filled: {Job.select().count():,} history rows, {queued:,} queued "
          f"in {time.monotonic() - started:.0f}s", file=sys.stderr)
    runtime.close()


def drop(args) -> None:
    from urllib.parse import urlsplit

    import pymysql
    import redis

    parts = urlsplit(args.mysql_url)
    with pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                         user=parts.username or "root", autocommit=True) as conn:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{parts.path.strip('/')}`")
    client = redis.Redis.from_url(args.redis_url)
    for key in client.scan_iter(f"*{args.prefix}*", count=1000):
        client.delete(key)


async def _until(pilot, predicate, timeout: float = 60.0) -> float:
    """Seconds until predicate() holds, checked every 2 ms of the event loop."""
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > timeout:
            raise TimeoutError("console did not get there")
        await pilot.pause(0.002)
    return time.perf_counter() - started


async def _measure(args) -> dict:
    started = time.perf_counter()
    from tq.tui.app import TqApp
    from tq.tui.data import Data
    from tq.tui.screens.jobs import JobsScreen
    from tq.tui.screens.queues import QueuesScreen

    imported = time.perf_counter() - started
    results: dict = {"import": imported, "rss": {"imports": _rss()}}
    _stamp_jobs_screen(JobsScreen)
    upgrade = runtime_for(args)  # a first run after an upgrade may add indexes: not timed
    upgrade.history_db()
    upgrade.close()
    runtime = runtime_for(args)
    # Timer off: a live refresh landing mid-measurement would end a wait early. (Refreshes
    # never delay the operator's loads: a page change cancels a refresh in flight.)
    app = TqApp(Data(runtime), live=False)
    opened = time.perf_counter()
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, QueuesScreen) and app.screen.loaded)
        results["open"] = time.perf_counter() - opened
        results["rss"]["queues screen"] = _rss()
        results["queues"] = {name: str(app.screen.query_one("#queues").get_cell(name, "queued"))
                             for name in QUEUES}
        refresh = []
        for _ in range(5):  # one live refresh of the home screen
            t0 = time.perf_counter()
            app.screen.refresh_data()
            await app.workers.wait_for_complete()
            refresh.append(time.perf_counter() - t0)
        results["refresh"] = refresh
        await pilot.press("2")
        await _until(pilot, lambda: isinstance(app.screen, JobsScreen) and app.screen.loaded)
        screen = app.screen
        await _until(pilot, lambda: screen.total is not None)
        pages = await _pages(pilot, screen, 10)
        results["page_all"] = pages
        results["total_all"] = screen.total
        await pilot.press("l", "l", "l", "l")  # to retrying; then time the step to failed
        await app.workers.wait_for_complete()
        before = screen.rows
        t0 = time.perf_counter()
        await pilot.press("l")
        await _until(pilot, lambda before=before: screen.rows is not before)
        results["tab_failed"] = (time.perf_counter() - t0, _internal())
        assert screen.tab == "failed" and screen.rows[0]["state"] == "failed"
        results["page_failed"] = await _pages(pilot, screen, 10)
        filters = {}
        for text in ("queue:events", "task:flaky", "args:customer=42", "error:Timeout",
                     "since:1h"):
            box = screen.query_one("#filter")
            before = screen.rows
            t0 = time.perf_counter()
            await pilot.press("slash")
            box.value = text
            await pilot.press("enter")
            await _until(pilot, lambda before=before: screen.rows is not before)
            page = (time.perf_counter() - t0, _internal())
            await _until(pilot, lambda: screen.total is not None)
            filters[text] = (page, time.perf_counter() - t0, screen.total)
        results["filters"] = filters
        results["rss"]["jobs screen, pages and filters"] = _rss()
        t0 = time.perf_counter()
        await pilot.press("3")
        await _until(pilot, lambda: type(app.screen).__name__ == "FailedScreen"
                     and app.screen.loaded)
        results["failed_groups"] = (time.perf_counter() - t0, len(app.screen.groups))
        await pilot.press("q")
    results["rss"]["failed screen"] = _rss()
    runtime.close()
    return results


STAMPS: dict[str, float] = {}


def _stamp_jobs_screen(screen_class) -> None:
    """Note when the Jobs screen starts loading a page and when it has put the rows in
    its table: the console's own latency, without Pilot's simulated typing."""
    load_page, show_rows = screen_class.load_page, screen_class.show_rows

    def stamped_load(self, *args, **kwargs):
        STAMPS["start"] = time.perf_counter()
        return load_page(self, *args, **kwargs)

    def stamped_show(self, rows):
        show_rows(self, rows)
        STAMPS["shown"] = time.perf_counter()
    screen_class.load_page, screen_class.show_rows = stamped_load, stamped_show


def _internal() -> float:
    return STAMPS["shown"] - STAMPS["start"]


def _rss() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _pages(pilot, screen, count: int) -> tuple[list[float], list[float]]:
    """(seconds per page change seen through Pilot, the console's own seconds)."""
    wall, internal = [], []
    for _ in range(count):
        before = screen.rows
        t0 = time.perf_counter()
        await pilot.press("right_square_bracket")
        await _until(pilot, lambda before=before: screen.rows is not before)
        wall.append(time.perf_counter() - t0)
        internal.append(_internal())
    return wall, internal


def measure(args) -> None:
    if not args.child:  # a fresh process: peak RSS is the console's alone
        command = [sys.executable, __file__, "measure", "--child", "--redis-url",
                   args.redis_url, "--mysql-url", args.mysql_url, "--prefix", args.prefix]
        sys.exit(subprocess.call(command))
    results = asyncio.run(_measure(args))
    ms = lambda seconds: f"{seconds * 1000:.0f} ms"  # noqa: E731

    def spread(values: list[float]) -> str:
        return (f"median {ms(statistics.median(values))}, max {ms(max(values))} "
                f"(n={len(values)})")
    def both(pair) -> str:
        wall, internal = pair
        if isinstance(wall, list):
            return f"{spread(internal)} / {ms(statistics.median(wall))}"
        return f"{ms(internal)} / {ms(wall)}"
    print("Latencies: the console's own (key handled to rows in the table) / as seen through "
          "Textual's Pilot (simulated key press, waits for idle).\n")
    print("| what | measured | target |")
    print("|---|---|---|")
    print(f"| console open: start to populated Queues table (160x48) | {ms(results['open'])}"
          f" (+ {ms(results['import'])} imports) | < 2 s |")
    print(f"| Queues refresh (status of 3 queues) | {spread(results['refresh'])} | "
          "every 1.5 s |")
    print(f"| page change, all {results['total_all']:,} jobs | {both(results['page_all'])} |"
          " < 200 ms |")
    print(f"| switch to the failed tab (first page) | {both(results['tab_failed'])} | < 200 ms |")
    print(f"| page change, failed tab | {both(results['page_failed'])} | < 200 ms |")
    for text, (page, counted, total) in results["filters"].items():
        print(f"| filter `{text}` on the failed tab: first page / \"of N\" ({total:,}) | "
              f"{both(page)} / {ms(counted)} | < 200 ms |")
    seconds, groups = results["failed_groups"]
    print(f"| Failed screen: {groups} groups from the newest 100,000 failures | {ms(seconds)} | "
          "(refreshes every 30 s) |")
    for stage, mb in results["rss"].items():
        print(f"| peak RSS of the console process, up to: {stage} | {mb:.0f} MB | < 150 MB |")
    print(f"\nqueued per queue (from Redis): {results['queues']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("fill", "measure", "drop"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--mysql-url", default="mysql://root@127.0.0.1:3306/tq_bench_tui")
    parser.add_argument("--prefix", default="tqbenchtui")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    {"fill": fill, "measure": measure, "drop": drop}[args.step](args)


if __name__ == "__main__":
    main()

"""Growth: tq's throughput and the console's queries with 10^4..10^6 history rows.

The tq system's MariaDB database is bulk-loaded (multi-row INSERTs of 1,000
rows) up to each size in turn; at each size the console's queries are timed
(p50/p99 of --growth-queries calls each, through tq.queries as the console
calls them) and one no-op throughput run is made with the history in place.

Synthetic history: one queue (`bench`, the worst case for per-queue counts),
20 task names, 95% succeeded, 4% failed (two attempts each), 0.5% canceled,
0.5% expired, enqueue times spread evenly over the 7 days up to now. Job ids
look like UUIDs but increase with time, so the load appends to every index
instead of splitting pages at random (it changes nothing for the queries
below, which look rows up by index, not by id order).
"""
from __future__ import annotations

import math
import random
import time
import uuid

# The console's queries (the target applies to these) ...
QUERIES = ("console status: status(totals=False)",
           "failed count: count_jobs(state:failed queue:bench)",
           "newest 100 failed: list_jobs(state:failed queue:bench, sort=finished_at)",
           "one job by id: job_detail()")
# ... and `tq status`, which counts every row of each queue by state.
TOTALS = "`tq status` per-state totals: status()"
SPAN = 7 * 86400
ERRORS = [("TimeoutError", "timed out after 30s talking to host-{n}"),
          ("ConnectionError", "connection refused by db-{n}:5432"),
          ("ValueError", "bad invoice total {n}"),
          ("KeyError", "'customer_{n}'"),
          ("RuntimeError", "upstream returned 503 for batch {n}")]
TRACEBACK = ("Traceback (most recent call last):\n  File \"/srv/app/tasks.py\", line 42, in run\n"
             "    result = client.call(payload)\n  File \"/srv/app/client.py\", line 117, in call\n"
             "    raise {etype}(message)\n{etype}: {message}\n")


def _quote(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def job_id_of(i: int) -> str:
    """UUID-looking, increasing with i, the same for i whatever the chunking."""
    return f"{i:08x}" + str(uuid.UUID(int=(i * 0x9E3779B97F4A7C15F39CC0605CEDC835) % (1 << 128)))[8:]


def _rows(start: int, stop: int, total: int, now: float):
    """Job and attempt rows number start..stop-1 of `total` (time order)."""
    rnd = random.Random(start)
    jobs, attempts = [], []
    for i in range(start, stop):
        job_id = job_id_of(i)
        enqueued = now - SPAN + SPAN * i / total
        started = enqueued + rnd.random() * 0.5
        finished = started + rnd.random() * 2
        roll = rnd.random()
        task = f"app.tasks.t{rnd.randrange(20)}"
        args = f"[{rnd.randrange(100000)}]"
        kwargs = f'{{"customer":{rnd.randrange(1000)}}}'
        worker = f"worker-{rnd.randrange(8)}:1234/Worker-{rnd.randrange(4)}"
        if roll < 0.95:
            state, etype, message, trace, tries = "succeeded", "", "", "", 1
        elif roll < 0.99:
            etype, template = ERRORS[rnd.randrange(len(ERRORS))]
            message = template.format(n=rnd.randrange(100))
            state, trace, tries = "failed", TRACEBACK.format(etype=etype, message=message), 2
        else:
            state = "canceled" if roll < 0.995 else "expired"
            etype, message, trace, tries = state.capitalize(), f"{state} by operator", "", 0
        seq = 1_000_000 + tries * 10 + 4
        jobs.append((job_id, "bench", task, args, kwargs, 0, state, seq, tries, 1, enqueued, None,
                     started if tries else None, finished, finished, worker if tries else None,
                     etype, message, trace, None))
        for attempt in range(1, tries + 1):
            last = attempt == tries
            attempts.append((job_id, attempt, worker, started, finished,
                             state if last else "failed", etype, message, trace))
    return jobs, attempts


JOB_COLUMNS = ("id", "queue", "task", "args", "kwargs", "priority", "state", "seq", "attempts",
               "max_retries", "enqueued_at", "eta", "started_at", "finished_at", "updated_at",
               "worker", "error_type", "error_message", "traceback", "requeued_from")
ATTEMPT_COLUMNS = ("job_id", "attempt", "worker", "started_at", "finished_at", "outcome",
                   "error_type", "error_message", "traceback")


def bulk_load(conn, start: int, stop: int, total: int, now: float, chunk: int = 1000) -> None:
    cur = conn.cursor()
    cur.execute("SET unique_checks = 0")
    for first in range(start, stop, chunk):
        jobs, attempts = _rows(first, min(stop, first + chunk), total, now)
        for table, columns, rows in (("job", JOB_COLUMNS, jobs), ("attempt", ATTEMPT_COLUMNS, attempts)):
            values = ",".join("(" + ",".join(map(_quote, row)) + ")" for row in rows)
            cur.execute(f"INSERT INTO `{table}` ({','.join(columns)}) VALUES {values}")
    cur.execute("SET unique_checks = 1")


def pct(samples, p):
    ordered = sorted(samples)
    return ordered[min(len(ordered), max(1, math.ceil(p / 100 * len(ordered)))) - 1]


def time_queries(runtime, repeats: int, loaded: int) -> dict[str, dict]:
    """p50/p99/max in ms of each console query, `repeats` calls each, interleaved
    (`tq status`'s totals: a fifth of that)."""
    from tq.queries import count_jobs, job_detail, list_jobs, status
    from tq.where import parse

    failed = parse("state:failed queue:bench")
    rnd = random.Random(loaded)
    probe_ids = [job_id_of(i) for i in rnd.sample(range(loaded), min(loaded, repeats))]
    calls = {
        QUERIES[0]: lambda k: status(runtime, totals=False),
        QUERIES[1]: lambda k: count_jobs(runtime, failed),
        QUERIES[2]: lambda k: list_jobs(runtime, failed, sort="finished_at", limit=100),
        QUERIES[3]: lambda k: job_detail(runtime, probe_ids[k % len(probe_ids)]),
    }
    calls[TOTALS] = lambda k: status(runtime)
    for call in calls.values():  # warm the connection and the server's caches once
        call(0)
    if calls[QUERIES[3]](0) is None:
        raise RuntimeError(f"growth: job {probe_ids[0]} not found")
    samples = {name: [] for name in calls}
    for k in range(repeats):
        for name, call in calls.items():
            if name == TOTALS and k >= max(3, repeats // 5):
                continue  # slow by design at 10^6 rows: a few calls tell its cost
            t0 = time.perf_counter()
            result = call(k)
            samples[name].append((time.perf_counter() - t0) * 1000)
            if name == QUERIES[2] and len(result) != 100:
                raise RuntimeError(f"growth: list_jobs returned {len(result)} rows, expected 100")
    return {name: {"p50": pct(v, 50), "p99": pct(v, 99), "max": max(v), "n": len(v)}
            for name, v in samples.items()}

"""Markdown tables for the benchmark results + the machine description."""
from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import statistics
import subprocess

from bench import common
from bench.systems import BY_NAME

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
LOAD_AT_START = None  # os.getloadavg() when the run began (set by the harness)


def _fmt(x):
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _cell(values):
    """median [min–max] of the runs; just the value for a single run."""
    if not values:
        return "—"
    med = statistics.median(values)
    if len(values) == 1:
        return _fmt(med)
    return f"{_fmt(med)} [{_fmt(min(values))}–{_fmt(max(values))}]"


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _versions():
    vs = []
    for pkg in ("huey", "rq", "celery", "kombu", "redis", "tq"):
        try:
            vs.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return ", ".join(vs)


def machine(redis_url):
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(len(os.sched_getaffinity(0)))
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    try:
        info = common.redis_client(redis_url).info("server")
        rv = f"{info.get('redis_version')} ({info.get('os', '')})"
    except Exception as e:
        rv = f"unknown ({e})"
    try:
        import pymysql
        with pymysql.connect(host="127.0.0.1", user="root") as conn:
            cur = conn.cursor()
            cur.execute("SELECT VERSION(), @@innodb_buffer_pool_size, @@innodb_flush_log_at_trx_commit")
            version, pool, flush = cur.fetchone()
        mv = f"{version}, innodb_buffer_pool_size {int(pool) // 2**20} MB, flush_log_at_trx_commit {flush}"
    except Exception as e:
        mv = f"unknown ({type(e).__name__})"
    load = "" if LOAD_AT_START is None else \
        f"{LOAD_AT_START[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    return [
        f"- nproc: {nproc}" + (f" ({cpu})" if cpu else ""),
        f"- python: {platform.python_version()} ({platform.python_implementation()}), {platform.system()} {platform.release()}",
        f"- redis server: {rv}, at {redis_url}",
        f"- mariadb server (tq history): {mv}, at 127.0.0.1:3306",
        f"- libraries: {_versions()}",
        f"- load average (1 min; other work shares this VM): {load}",
    ]


def render(args, res, systems, elapsed, redis_url, argv):
    names = [s.name for s in systems]
    now = datetime.datetime.now().astimezone()
    out = [f"## Benchmark run {now:%Y-%m-%d %H:%M:%S %Z}" + (" (--quick)" if args.quick else ""),
           "", f"`python -m bench {' '.join(argv)}`".replace(" `", "`") if argv else "`python -m bench`",
           f"— {elapsed:.0f} s in all.", ""]
    if res.skipped:
        for n, why in res.skipped.items():
            out.append(f"- **skipped {n}**: {why}")
        out.append("")

    if res.throughput:
        out += [f"### Throughput: consume rate, jobs/s (median [min–max] of {args.repeats} run(s))", "",
                f"{args.n_noop} no-op jobs / {args.n_sleep} jobs of {args.sleep_ms:g} ms sleep per run, "
                "pre-enqueued and hidden behind a gate; the clock runs from opening the gate (all workers "
                "ready) to the completion INCR of the last job. A no-op job = one Redis round trip. "
                f"Ceiling for sleep jobs: N × {1000 / args.sleep_ms:.0f} jobs/s.", ""]
        header = ["system"] + [f"no-op ×{w}" for w in args.workers] + \
                 [f"{args.sleep_ms:g} ms ×{w}" for w in args.workers] + \
                 ["CPU µs/job (no-op)", "pickup ms", "start-up s"]
        rows = []
        for n in names:
            if not any(k[0] == n for k in res.throughput):
                continue
            row = [n]
            for kind in ("noop", "sleep"):
                for w in args.workers:
                    row.append(_cell([r["rate"] for r in res.throughput.get((n, kind, w), [])]))
            runs = [r for k, v in res.throughput.items() if k[0] == n for r in v]
            noop_cpu = [r["cpu_us"] for k, v in res.throughput.items() if k[0] == n and k[1] == "noop" for r in v]
            row.append(_fmt(statistics.median(noop_cpu)) if noop_cpu else "—")
            row.append(_fmt(statistics.median(r["pickup"] * 1000 for r in runs)))
            row.append(_fmt(statistics.median(r["startup"] for r in runs)))
            rows.append(row)
        ratio = _ratio_row(res, args)
        if ratio:
            rows.append(ratio)
        out += [_table(header, rows), ""]
        scaled = [f"{n} ({BY_NAME[n].job_scale:g} × N)" for n in names if BY_NAME[n].job_scale != 1]
        lags = [r["history_lag"] for k, v in res.throughput.items() if k[0] == "tq" for r in v
                if r.get("history_lag") is not None]
        out += ["Workers: " + "; ".join(BY_NAME[n].worker_note for n in names if BY_NAME[n].worker_note) + ".",
                "CPU µs/job = user+system CPU of the worker processes during the run / N (median of the "
                "no-op runs); pickup = gate opening → first job finished; start-up = spawn → all workers "
                "ready (neither is in the jobs/s figure, pickup is in its clock)."
                + (f" Fewer jobs for {', '.join(scaled)}." if scaled else "")
                + (f" tq's history (MariaDB) held every job as succeeded {_fmt(statistics.median(lags))} s "
                   f"(median; max {_fmt(max(lags))} s) after the last job finished." if lags else ""), ""]

    if res.enqueue:
        out += [f"### Enqueue: jobs/s from one client thread, no workers running "
                f"(median [min–max] of {args.repeats} run(s) of {args.enqueue_n} jobs)", ""]
        startup = f", start-up {_fmt(statistics.median(res.file_startup))} s" if res.file_startup else ""
        how = {
            "huey": {"loop": "`noop()` task call, one ZADD per job"},
            "rq-simple": {"loop": "`Queue.enqueue(noop)`", "batch": "`Queue.enqueue_many` (500 per pipeline)"},
            "celery-threads": {"loop": "`noop.delay()`"},
            "tq": {"loop": "`tq.submit(\"bench.tasks.noop\", queue=\"bench\")`, one MULTI per job",
                   "batch": "`tq.submit_many` (500 per call)",
                   "file": f"`tq submit --file` of {args.batch_n:,} lines: wall time of the command{startup}",
                   "file-net": "the same, net of start-up: (lines − 1) / (t(lines) − t(1 line))",
                   "http-submit-1": "`POST /api/v1/jobs` to `tq serve`, 1 client (keep-alive)",
                   "http-submit-8": "the same, 8 concurrent clients",
                   "http-status-1": "`GET /api/v1/jobs/{id}`, 1 client",
                   "http-status-8": "the same, 8 concurrent clients"},
        }
        rows = []
        for (n, mode), vals in res.enqueue.items():
            label = {"rq-simple": "rq", "celery-threads": "celery"}.get(n, n)
            rows.append([label, mode, how.get(n, {}).get(mode, ""), _cell(vals)])
        out += [_table(["system", "mode", "call", "jobs/s"], rows), ""]
        ratio = _enqueue_ratio(res)
        if ratio is not None:
            out += [f"`tq submit --file` / plain Huey loop: **{ratio[0]:.2f}×** for the whole command, "
                    f"{ratio[1]:.2f}× net of start-up (medians). Every tq figure includes each job's "
                    + ("`queued` history record, which goes to Redis with the message; a consumer's "
                       "history writer moves it to MariaDB." if getattr(args, "tq_backend", "redis")
                       == "redis" else
                       "`queued` history record, written to the SQLite queue database in the same "
                       "transaction as the message (tq on the embedded default, `--tq-backend "
                       "sqlite`; Huey on Redis)."), ""]

    if res.latency:
        out += [f"### Latency: enqueue → job start under steady load ({args.latency_load:.0%} of max no-op "
                f"throughput, {args.latency_seconds:g} s)", "",
                "The job records time.time() at its start next to the enqueue time.time() it got as "
                "an argument; one run each.", ""]
        rows = []
        for n, r in res.latency.items():
            rows.append([n, r["workers"], _fmt(r["max_rate"]), _fmt(r["offered"]), _fmt(r["achieved"]),
                         r["jobs"], f"{r['p50']:.2f}", f"{r['p99']:.2f}", f"{r['max']:.2f}"])
        out += [_table(["system", "workers", "max jobs/s", "offered jobs/s", "achieved jobs/s", "jobs",
                        "p50 ms", "p99 ms", "max ms"], rows), ""]

    if res.growth:
        out += ["### Growth: tq with 10^4..10^6 rows of history (MariaDB)", "",
                f"History bulk-loaded to each size (one queue, 95% succeeded / 4% failed / 1% canceled or "
                f"expired, 7 days); each console query called {args.growth_queries} times (through "
                f"tq.queries, as the console calls it, after one warm-up call), times in ms; then one "
                f"no-op throughput run ({args.n_noop} jobs, {args.growth_workers} workers) with that "
                "history in place.", ""]
        for g in res.growth:
            rows = [[name, f"{q['p50']:.1f}", f"{q['p99']:.1f}", f"{q['max']:.1f}"]
                    for name, q in g.get("queries", {}).items()]
            tp = g.get("throughput")
            if tp:
                lag = "" if tp.get("history_lag") is None else f", history lag {tp['history_lag']:.2f} s"
                rows.append([f"throughput ×{args.growth_workers} (jobs/s{lag})", _fmt(tp["rate"]), "", ""])
            out += [f"**{g['size']:,} rows** (loaded in {g['load_s']:.0f} s)", "",
                    _table(["query", "p50 ms", "p99 ms", "max ms"], rows), ""]
        out += ["The console refreshes with `status(totals=False)`: queue depths from Redis, failed "
                "and retrying counts from index ranges of those states. `tq status` (CLI) also "
                "counts every row of each queue by state, which grows with the history; it is "
                "shown for its cost, called fewer times, and is not one of the console's queries.", ""]

    if res.memory:
        out += ["### Memory: peak RSS of a 4-worker consumer", "",
                "Jobs pre-enqueued, then run through one consumer process with 4 worker threads; "
                "peak RSS = VmHWM of the consumer process(es) at the end.", ""]
        rows = [[n, f"{r['jobs']:,}", r["workers"], f"{r['peak_mb']:.0f}", _fmt(r["rate"])]
                for n, r in res.memory.items()]
        out += [_table(["system", "jobs", "workers", "peak RSS MB", "jobs/s"], rows), ""]

    targets = _targets(args, res)
    if targets:
        out += ["### Targets", "", _table(["target", "measured", "met"], targets), ""]

    if res.errors:
        out += ["### Errors", ""] + [f"- {e}" for e in res.errors] + [""]
    out += ["### Machine", ""] + machine(redis_url) + [""]
    return "\n".join(out)


def _median_rate(res, system, kind, w):
    runs = res.throughput.get((system, kind, w))
    return statistics.median(r["rate"] for r in runs) if runs else None


def _ratio_row(res, args):
    cells = []
    for kind in ("noop", "sleep"):
        for w in args.workers:
            tq, huey = _median_rate(res, "tq", kind, w), _median_rate(res, "huey", kind, w)
            cells.append(f"**{tq / huey:.2f}**" if tq and huey else "—")
    if all(c == "—" for c in cells):
        return None
    return ["tq / huey"] + cells + ["", "", ""]


def _enqueue_ratio(res):
    """(whole command, net of start-up) `tq submit --file` rates over the Huey loop's."""
    huey = res.enqueue.get(("huey", "loop"))
    whole, net = res.enqueue.get(("tq", "file")), res.enqueue.get(("tq", "file-net"))
    if not (whole and net and huey):
        return None
    return statistics.median(whole) / statistics.median(huey), \
        statistics.median(net) / statistics.median(huey)


def _targets(args, res):
    rows = []
    ratios = {(k, w): (_median_rate(res, "tq", k, w), _median_rate(res, "huey", k, w))
              for k in ("noop", "sleep") for w in args.workers}
    ratios = {key: tq / huey for key, (tq, huey) in ratios.items() if tq and huey}
    if ratios:
        worst = min(ratios, key=ratios.get)
        rows.append(["tq throughput with history ≥ 0.9 × bare Huey, every worker count",
                     "tq / huey " + ", ".join(f"{'no-op' if k == 'noop' else 'sleep'} ×{w} {r:.2f}"
                                             for (k, w), r in ratios.items())
                     + f" (lowest: {worst[0]} ×{worst[1]})",
                     "yes" if ratios[worst] >= 0.9 else "**no**"])
    ratio = _enqueue_ratio(res)
    if ratio is not None:
        rows.append(["batch submit ≥ 5 × plain Huey enqueue loop",
                     f"`tq submit --file` of {args.batch_n:,} lines {ratio[0]:.2f} × "
                     f"(net of start-up {ratio[1]:.2f} ×)",
                     "yes" if ratio[0] >= 5 else "**no**"])
    if res.growth:
        top = res.growth[-1]
        from bench.growth import QUERIES
        console = {k: v for k, v in top.get("queries", {}).items() if k in QUERIES}
        worst = max(console.items(), key=lambda kv: kv[1]["p99"], default=None)
        if worst:
            rows.append([f"console queries < 50 ms p99 at {top['size']:,} rows on MariaDB",
                         f"slowest p99: {worst[0]} {worst[1]['p99']:.1f} ms",
                         "yes" if worst[1]["p99"] < 50 else "**no**"])
    return rows


def write(md):
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{datetime.date.today():%Y-%m-%d}.md")
    new = not os.path.exists(path)
    with open(path, "a") as f:
        if not new:
            f.write("\n---\n\n")
        f.write(md)
        f.write("\n")
    return path

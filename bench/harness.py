"""The benchmark driver: ``python -m bench [--quick] [...]``.

Runs every available system against the same Redis, one system at a time,
workers in subprocesses, and prints/saves one markdown table per benchmark.
"""
from __future__ import annotations

import argparse
import math
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback

from bench import common, report
from bench.systems import ALL, BY_NAME
from bench.systems.base import SkipSystem

RUN_PREFIX = "tqbench"

PROFILES = {
    "default": dict(repeats=3, n_noop=2000, n_sleep=400, enqueue_n=5000, batch_n=100000,
                    latency_seconds=5.0, growth_sizes="10000,100000,1000000", growth_queries=50,
                    memory_jobs=100000),
    "quick": dict(repeats=1, n_noop=400, n_sleep=100, enqueue_n=1000, batch_n=5000,
                  latency_seconds=2.0, growth_sizes="10000,100000", growth_queries=15,
                  memory_jobs=10000),
}
PHASES = ("throughput", "enqueue", "latency", "growth", "memory")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small N, 1 repeat (under a minute)")
    ap.add_argument("--systems", default=",".join(c.name for c in ALL),
                    help="comma list, default: %(default)s")
    ap.add_argument("--only", default=",".join(PHASES),
                    help="benchmarks to run (comma list of %(default)s)")
    ap.add_argument("--workers", default="1,2,4", help="worker counts, default %(default)s")
    ap.add_argument("--repeats", type=int, help="runs per figure (median); default 3, quick 1")
    ap.add_argument("--n-noop", type=int, help="no-op jobs per throughput run")
    ap.add_argument("--n-sleep", type=int, help="sleep jobs per throughput run")
    ap.add_argument("--sleep-ms", type=float, default=5.0)
    ap.add_argument("--enqueue-n", type=int, help="jobs per enqueue-rate run")
    ap.add_argument("--batch-n", type=int, help="lines of the `tq submit --file` batch")
    ap.add_argument("--http-n", type=int, default=2000,
                    help="jobs per HTTP submit/status measurement (`tq serve`)")
    ap.add_argument("--latency-seconds", type=float, help="duration of the steady load")
    ap.add_argument("--growth-sizes", help="history rows to grow through (tq), comma list")
    ap.add_argument("--growth-queries", type=int, help="calls per console query and size")
    ap.add_argument("--growth-workers", type=int, default=2,
                    help="workers of the throughput run at each size (default %(default)s)")
    ap.add_argument("--memory-jobs", type=int, help="jobs through `-w 4` before reading peak RSS")
    ap.add_argument("--latency-workers", type=int,
                    help="workers for the latency test (default: the count with the best no-op throughput)")
    ap.add_argument("--latency-load", type=float, default=0.5,
                    help="offered load as a fraction of max no-op throughput (default %(default)s)")
    ap.add_argument("--settle", type=float, default=0.1,
                    help="seconds between 'all workers ready' and opening the gate")
    ap.add_argument("--run-timeout", type=float, default=120.0)
    ap.add_argument("--tq-backend", choices=("redis", "sqlite"), default="redis",
                    help="tq's queue backend: redis (history in MariaDB, the default) or sqlite "
                         "(the embedded default, queues and history in SQLite; enqueue only)")
    ap.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", common.DEFAULT_REDIS_URL))
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results/<date>.md")
    ap.add_argument("--keep-logs", action="store_true", help="keep worker logs (printed path)")
    ap.add_argument("--cleanup-stale", action="store_true",
                    help=f"delete keys left by killed runs ({RUN_PREFIX}_*) and exit")
    a = ap.parse_args(argv)
    prof = PROFILES["quick" if a.quick else "default"]
    for k, v in prof.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.systems = [s.strip() for s in a.systems.split(",") if s.strip()]
    unknown = [s for s in a.systems if s not in BY_NAME]
    if unknown:
        ap.error(f"unknown systems {unknown}; known: {list(BY_NAME)}")
    a.only = {s.strip() for s in a.only.split(",") if s.strip()}
    if a.only - set(PHASES):
        ap.error(f"unknown benchmarks {sorted(a.only - set(PHASES))}; known: {', '.join(PHASES)}")
    if a.tq_backend == "sqlite" and "tq" in a.systems and a.only - {"enqueue"}:
        ap.error("--tq-backend sqlite measures only the enqueue benchmark (--only enqueue)")
    a.workers = [int(w) for w in a.workers.split(",")]
    a.growth_sizes = sorted(int(n) for n in str(a.growth_sizes).split(",") if n.strip())
    return a


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def rotate(seq, k):
    if not seq:
        return seq
    k %= len(seq)
    return seq[k:] + seq[:k]


# ------------------------------------------------------------------ runs ---
def throughput_run(s, workers, kind, n, args):
    """Pre-enqueue n jobs, hide them (gate), start workers, wait until all are
    ready, open the gate, time until the n-th job's completion INCR."""
    s.purge()
    if kind == "noop":
        s.enqueue_noop(n)
    else:
        s.enqueue_sleep(n, args.sleep_ms)
    s.close_gate()
    h = s.start_workers(workers)
    try:
        s.wait_ready(h, timeout=args.run_timeout)
        time.sleep(args.settle)
        s.arm(n)
        cpu0 = s.cpu_seconds(h)
        t0 = s.open_gate()
        t1 = s.wait_done(n, args.run_timeout, h)
        cpu = s.cpu_seconds(h) - cpu0
        first = float(s.r.get(s.keys.first))
        lag = s.after_run(n, t1)
    finally:
        s.stop_workers(h)
        s.purge()
    return {"rate": n / (t1 - t0), "steady": (n - 1) / (t1 - first), "pickup": first - t0,
            "seconds": t1 - t0, "startup": h.ready_at - h.spawned_at, "history_lag": lag,
            "cpu_us": cpu / n * 1e6}


def latency_run(s, workers, rate, seconds, args):
    """Steady load at `rate` jobs/s for `seconds`; each job records
    (enqueued_at, started_at); returns percentiles of the difference."""
    s.purge()
    count = max(20, int(rate * seconds))
    h = s.start_workers(workers)
    try:
        s.wait_ready(h, timeout=args.run_timeout)
        time.sleep(args.settle)
        s.arm(count)
        interval = 1.0 / rate
        start = time.perf_counter()
        for i in range(count):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            s.enqueue_record_start(time.time())
        sent_in = time.perf_counter() - start
        s.wait_done(count, args.run_timeout, h)
        raw = s.r.lrange(s.keys.lat, 0, -1)
    finally:
        s.stop_workers(h)
        s.purge()
    lat = sorted((float(b) - float(a)) * 1000.0 for a, b in (x.decode().split(",") for x in raw))

    def pct(p):  # nearest-rank percentile
        return lat[min(len(lat), max(1, math.ceil(p / 100.0 * len(lat)))) - 1]
    return {"workers": workers, "offered": rate, "achieved": count / sent_in, "jobs": len(lat),
            "p50": pct(50), "p99": pct(99), "max": lat[-1]}


# ---------------------------------------------------------------- phases ---
def phase_throughput(systems, args, res):
    kinds = [("noop", args.n_noop), ("sleep", args.n_sleep)]
    for rep in range(args.repeats):
        order = rotate(list(systems), rep)
        kinds_rep = kinds if rep % 2 == 0 else kinds[::-1]
        log(f"[throughput] run {rep + 1}/{args.repeats}: order {', '.join(s.name for s in order)}")
        for s in order:
            for w in args.workers:
                for kind, n_all in kinds_rep:
                    n = max(20, int(n_all * s.job_scale))
                    key = (s.name, kind, w)
                    try:
                        r = throughput_run(s, w, kind, n, args)
                    except Exception as e:
                        log(f"  {s.name} {kind} x{w}: FAILED: {e}")
                        res.errors.append(f"throughput {s.name} {kind} x{w}: {e}")
                        continue
                    res.throughput.setdefault(key, []).append(r)
                    lag = "" if r["history_lag"] is None else f", history lag {r['history_lag']:.2f}s"
                    log(f"  {s.name:15s} {kind:5s} x{w}: {r['rate']:8.1f} jobs/s, steady {r['steady']:8.1f} "
                        f"({r['seconds']:.2f}s, cpu {r['cpu_us']:.0f} us/job, pickup {r['pickup'] * 1000:.0f} ms, "
                        f"startup {r['startup']:.2f}s{lag})")


def phase_enqueue(systems, args, res):
    systems = [s for s in systems if s.do_enqueue]
    for rep in range(args.repeats):
        order = rotate(list(systems), rep)
        log(f"[enqueue] run {rep + 1}/{args.repeats}")
        for s in order:
            try:
                s.purge()
                loop = s.enqueue_loop_rate(args.enqueue_n)
                batch = s.enqueue_batch_rate(args.enqueue_n)
            except Exception as e:
                log(f"  {s.name}: FAILED: {e}")
                res.errors.append(f"enqueue {s.name}: {e}")
                continue
            res.enqueue.setdefault((s.name, "loop"), []).append(loop)
            if batch is not None:
                res.enqueue.setdefault((s.name, "batch"), []).append(batch)
            log(f"  {s.name:15s} loop {loop:8.0f}/s" + (f"  batch {batch:8.0f}/s" if batch else ""))
            if hasattr(s, "submit_file_rate"):
                try:
                    rate, net, startup = s.submit_file_rate(args.batch_n, s.log_dir)
                except Exception as e:
                    log(f"  {s.name} submit --file: FAILED: {e}")
                    res.errors.append(f"enqueue {s.name} submit --file: {e}")
                    continue
                res.enqueue.setdefault((s.name, "file"), []).append(rate)
                res.enqueue.setdefault((s.name, "file-net"), []).append(net)
                res.file_startup.append(startup)
                log(f"  {s.name:15s} submit --file {args.batch_n}: {rate:8.0f}/s, {net:8.0f}/s net "
                    f"(start-up {startup:.2f}s)")
            if hasattr(s, "http_rates"):
                try:
                    rates = s.http_rates(args.http_n)
                except Exception as e:
                    log(f"  {s.name} http: FAILED: {e}")
                    res.errors.append(f"enqueue {s.name} http: {e}")
                    continue
                for mode, rate in rates.items():
                    res.enqueue.setdefault((s.name, mode), []).append(rate)
                log(f"  {s.name:15s} http " + ", ".join(f"{m} {r:6.0f}/s" for m, r in rates.items()))


def phase_latency(systems, args, res):
    for s in [s for s in systems if s.do_latency]:
        # max no-op throughput measured in this run (calibrate if not measured)
        per_w = {w: statistics.median(x["rate"] for x in res.throughput[(s.name, "noop", w)])
                 for w in args.workers if (s.name, "noop", w) in res.throughput}
        if not per_w:
            w = args.latency_workers or max(args.workers)
            log(f"[latency] {s.name}: no throughput figure yet, calibrating with {w} workers")
            try:
                per_w[w] = throughput_run(s, w, "noop", args.n_noop, args)["rate"]
            except Exception as e:
                res.errors.append(f"latency calibration {s.name}: {e}")
                continue
        w_best = max(per_w, key=per_w.get)
        w = args.latency_workers or w_best
        max_rate = per_w.get(w) or per_w[w_best]
        rate = args.latency_load * max_rate
        log(f"[latency] {s.name}: {w} workers, {rate:.0f} jobs/s for {args.latency_seconds:.0f}s "
            f"({args.latency_load:.0%} of {max_rate:.0f})")
        try:
            r = latency_run(s, w, rate, args.latency_seconds, args)
        except Exception as e:
            log(f"  {s.name}: FAILED: {e}")
            res.errors.append(f"latency {s.name}: {e}")
            continue
        r["max_rate"] = max_rate
        res.latency[s.name] = r
        log(f"  p50 {r['p50']:.2f} ms  p99 {r['p99']:.2f} ms  (achieved {r['achieved']:.0f}/s)")


def phase_growth(systems, args, res):
    """tq only: bulk-load history to each size; time the console's queries and
    one throughput run there."""
    from bench import growth
    tq = next((s for s in systems if s.name == "tq"), None)
    if tq is None:
        return
    loaded, now = 0, time.time()
    tq.purge()
    tq.truncate = False  # from here on, runs leave the loaded history in place
    for size in args.growth_sizes:
        t0 = time.time()
        growth.bulk_load(tq.sql, loaded, size, args.growth_sizes[-1], now)
        loaded = size
        load_s = time.time() - t0
        log(f"[growth] {size:,} rows loaded in {load_s:.1f}s; timing queries")
        entry = {"size": size, "load_s": load_s}
        try:
            entry["queries"] = growth.time_queries(tq.runtime, args.growth_queries, size)
            for name, q in entry["queries"].items():
                log(f"  {name}: p50 {q['p50']:.1f} ms, p99 {q['p99']:.1f} ms")
            entry["throughput"] = throughput_run(tq, args.growth_workers, "noop", args.n_noop, args)
            log(f"  throughput x{args.growth_workers}: {entry['throughput']['rate']:.0f} jobs/s")
        except Exception as e:
            log(f"  growth {size}: FAILED: {e}")
            res.errors.append(f"growth {size}: {e}")
        res.growth.append(entry)
    tq.truncate = True
    tq.purge()


def memory_run(s, workers, n, args):
    s.purge()
    s.enqueue_noop(n)
    h = s.start_workers(workers)
    try:
        s.wait_ready(h, timeout=args.run_timeout)
        s.arm(n)
        t0 = time.time()
        t1 = s.wait_done(n, max(args.run_timeout, n / 50), h)
        lag = s.after_run(n, t1)
        peak = s.peak_rss_mb(h)
    finally:
        s.stop_workers(h)
        s.purge()
    return {"jobs": n, "workers": workers, "peak_mb": peak, "rate": n / (t1 - t0), "history_lag": lag}


def phase_memory(systems, args, res):
    for s in [s for s in systems if s.name in ("huey", "tq")]:
        log(f"[memory] {s.name}: {args.memory_jobs:,} no-op jobs through 4 workers")
        try:
            r = memory_run(s, 4, args.memory_jobs, args)
        except Exception as e:
            log(f"  {s.name}: FAILED: {e}")
            res.errors.append(f"memory {s.name}: {e}")
            continue
        res.memory[s.name] = r
        log(f"  peak RSS {r['peak_mb']:.0f} MB ({r['rate']:.0f} jobs/s)")


class Results:
    def __init__(self):
        self.throughput = {}   # (system, kind, workers) -> [run dicts]
        self.enqueue = {}      # (system, "loop"|"batch"|"file") -> [rates]
        self.file_startup = []  # s: `tq submit --file` of one line
        self.growth = []       # [{size, load_s, queries, throughput}]
        self.memory = {}       # system -> dict
        self.latency = {}      # system -> dict
        self.skipped = {}      # system -> reason
        self.errors = []


# ------------------------------------------------------------------ main ---
def cleanup_stale(url):
    r = common.redis_client(url)
    n = common.delete_pattern(r, f"*{RUN_PREFIX}_*")
    for key in (b"rq:queues", b"rq:workers"):
        members = [m for m in r.smembers(key) if RUN_PREFIX.encode() in m]
        if members:
            r.srem(key, *members)
    print(f"deleted {n} stale keys")


def main(argv=None):
    args = parse_args(argv)
    if args.cleanup_stale:
        cleanup_stale(args.redis_url)
        return 0
    try:
        common.redis_client(args.redis_url).ping()
    except Exception as e:
        log(f"cannot reach Redis at {args.redis_url}: {e}")
        return 2

    # SIGTERM/SIGHUP behave like Ctrl-C so the finally-block cleans up.
    def _interrupt(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)

    report.LOAD_AT_START = os.getloadavg()
    run_id = f"{RUN_PREFIX}_{os.getpid()}_{secrets.token_hex(2)}"
    log_dir = tempfile.mkdtemp(prefix=f"{run_id}-logs-")
    res = Results()
    BY_NAME["tq"].backend = args.tq_backend
    systems = []
    t_start = time.time()
    interrupted = False
    try:
        for name in args.systems:
            cls = BY_NAME[name]
            s = None
            try:
                cls.check()
                s = cls(run_id, args.redis_url, log_dir)
                systems.append(s)  # registered before setup(): cleaned up whatever happens
                s.setup()
            except Exception as e:
                if isinstance(e, SkipSystem):
                    res.skipped[name] = str(e)
                    log(f"SKIP {name}: {e}")
                else:
                    res.skipped[name] = f"setup failed: {type(e).__name__}: {e}"
                    log(f"SKIP {name}: setup failed:\n{traceback.format_exc()}")
                if s is not None:
                    systems.remove(s)
                    s.cleanup()
        if "throughput" in args.only:
            phase_throughput(systems, args, res)
        if "enqueue" in args.only:
            phase_enqueue(systems, args, res)
        if "latency" in args.only:
            phase_latency(systems, args, res)
        if "growth" in args.only:
            phase_growth(systems, args, res)
        if "memory" in args.only:
            phase_memory(systems, args, res)
    except KeyboardInterrupt:
        interrupted = True
        log("\ninterrupted: stopping workers and deleting keys...")
    finally:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # don't interrupt the cleanup
        for s in systems:
            try:
                s.cleanup()
            except Exception as e:
                log(f"cleanup {s.name}: {e}")
        signal.signal(signal.SIGINT, old)
        if args.keep_logs or res.errors:
            log(f"worker logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    if interrupted:
        return 130

    md = report.render(args, res, [s for s in systems], elapsed=time.time() - t_start,
                       redis_url=args.redis_url, argv=sys.argv[1:] if argv is None else argv)
    print(md)
    if not args.no_write:
        path = report.write(md)
        log(f"written to {path}")
    return 0

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
    return [
        f"- nproc: {nproc}" + (f" ({cpu})" if cpu else ""),
        f"- python: {platform.python_version()} ({platform.python_implementation()}), {platform.system()} {platform.release()}",
        f"- redis server: {rv}, at {redis_url}",
        f"- libraries: {_versions()}",
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
                 [f"{args.sleep_ms:g} ms ×{w}" for w in args.workers] + ["start-up s"]
        rows = []
        for n in names:
            if not any(k[0] == n for k in res.throughput):
                continue
            row = [n]
            for kind in ("noop", "sleep"):
                for w in args.workers:
                    row.append(_cell([r["rate"] for r in res.throughput.get((n, kind, w), [])]))
            ups = [r["startup"] for k, v in res.throughput.items() if k[0] == n for r in v]
            row.append(_fmt(statistics.median(ups)) if ups else "—")
            rows.append(row)
        out += [_table(header, rows), ""]
        out += ["Workers: " + "; ".join(BY_NAME[n].worker_note for n in names if BY_NAME[n].worker_note) + ".",
                "Start-up = spawn → all workers ready (not in the jobs/s figure).", ""]

    if res.enqueue:
        out += [f"### Enqueue: jobs/s from one client thread, no workers running "
                f"(median [min–max] of {args.repeats} run(s) of {args.enqueue_n} jobs)", ""]
        how = {
            "huey": {"loop": "`noop()` task call, one ZADD per job"},
            "rq-simple": {"loop": "`Queue.enqueue(noop)`", "batch": "`Queue.enqueue_many` (500 per pipeline)"},
            "celery-threads": {"loop": "`noop.delay()`"},
            "tq": {"loop": "`tq.submit(\"bench.tasks.noop\", queue=\"bench\")`",
                   "batch": "`tq.submit_many` (500 per call)"},
        }
        rows = []
        for (n, mode), vals in res.enqueue.items():
            label = {"rq-simple": "rq", "celery-threads": "celery"}.get(n, n)
            rows.append([label, mode, how.get(n, {}).get(mode, ""), _cell(vals)])
        out += [_table(["system", "mode", "call", "jobs/s"], rows), ""]

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

    if res.errors:
        out += ["### Errors", ""] + [f"- {e}" for e in res.errors] + [""]
    out += ["### Machine", ""] + machine(redis_url) + [""]
    return "\n".join(out)


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

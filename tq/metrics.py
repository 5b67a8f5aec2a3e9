"""`tq metrics`: the Prometheus text exposition format (version 0.0.4), by hand,
served by a threaded HTTP server (an idle client never blocks a scrape).

The format is a few lines of text; writing it here keeps tq free of another
dependency. What is exported:
  - tq_queue_depth{queue,state}: gauge, from the queue backend (the truth about
    what waits: queued, scheduled, running, held);
  - tq_jobs_total{queue,task,outcome}, tq_jobs_enqueued_total, tq_attempts_*_total,
    tq_events_total{type}: counters, from the summaries' running totals;
  - tq_job_run_seconds / tq_job_wait_seconds{queue,task}: summaries whose
    quantiles cover the last QUANTILE_WINDOW seconds of per-minute histograms
    (like a client-side summary's sliding window) and whose _sum/_count are
    running totals;
  - tq_summaries_updated_timestamp_seconds: when the last roll-up ran, so an
    alert can tell stale numbers from quiet queues;
  - tq_quarantined{kind}: gauge, entries set aside (kind message or record).
"""
from __future__ import annotations

import logging
import math
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tq.queries import quarantine_counts, queue_depths
from tq.summaries import (EventTotal, SummaryState, TaskMinute, TaskTotal, load_histogram,
                          percentile)

logger = logging.getLogger("tq.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUANTILE_WINDOW = 300
QUANTILES = (0.5, 0.95)
OUTCOMES = ("succeeded", "failed", "canceled", "expired")


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _number(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _Family:
    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name, self.kind, self.help_text = name, kind, help_text
        self.samples: list[str] = []

    def add(self, value: float | int, suffix: str = "", **labels: str) -> None:
        label_text = ",".join(f'{key}="{_escape_label(str(val))}"' for key, val in labels.items())
        self.samples.append(f"{self.name}{suffix}{{{label_text}}} {_number(value)}"
                            if labels else f"{self.name}{suffix} {_number(value)}")

    def render(self) -> str:
        help_text = self.help_text.replace("\\", "\\\\").replace("\n", "\\n")
        return "".join([f"# HELP {self.name} {help_text}\n", f"# TYPE {self.name} {self.kind}\n"]
                       + [sample + "\n" for sample in self.samples])


def exposition(runtime, now: float | None = None) -> str:
    now = time.time() if now is None else now
    depth = _Family("tq_queue_depth", "gauge", "Jobs in the queue backend, by queue and state.")
    for queue in runtime.queues:
        for state, count in queue_depths(runtime, queue).items():
            depth.add(int(count), queue=queue, state=state)

    runtime.database
    jobs = _Family("tq_jobs_total", "counter", "Jobs that reached an outcome.")
    enqueued = _Family("tq_jobs_enqueued_total", "counter", "Jobs enqueued.")
    started = _Family("tq_attempts_started_total", "counter", "Attempts started.")
    retried = _Family("tq_attempts_retried_total", "counter",
                      "Attempts that ended without success and were retried.")
    run = _Family("tq_job_run_seconds", "summary",
                  f"Attempt run time; quantiles over the last {QUANTILE_WINDOW} s.")
    wait = _Family("tq_job_wait_seconds", "summary",
                   f"Enqueue to first start; quantiles over the last {QUANTILE_WINDOW} s.")
    recent = _recent_histograms(now)
    for total in TaskTotal.select().order_by(TaskTotal.queue, TaskTotal.task):
        labels = {"queue": total.queue, "task": total.task}
        for outcome in OUTCOMES:
            jobs.add(int(getattr(total, outcome)), **labels, outcome=outcome)
        enqueued.add(int(total.enqueued), **labels)
        started.add(int(total.started), **labels)
        retried.add(int(total.retried), **labels)
        for family, kind in ((run, "run"), (wait, "wait")):
            histogram, maximum = recent.get((total.queue, total.task, kind), ({}, None))
            for q in QUANTILES:
                value = percentile(histogram, q, maximum)
                if value is not None:
                    family.add(value, **labels, quantile=str(q))
            family.add(float(getattr(total, f"{kind}_sum")), "_sum", **labels)
            family.add(int(getattr(total, f"{kind}_count")), "_count", **labels)

    events = _Family("tq_events_total", "counter", "Ingested events stored, by type.")
    for total in EventTotal.select().order_by(EventTotal.type):
        events.add(int(total.count), type=total.type)
    updated = _Family("tq_summaries_updated_timestamp_seconds", "gauge",
                      "When the summaries were last rolled up (epoch seconds).")
    watermark = (SummaryState.select(SummaryState.watermark)
                 .where(SummaryState.name == "rollup").scalar())
    updated.add(float(watermark or 0.0))
    quarantined = _Family("tq_quarantined", "gauge",
                          "Entries set aside (tq quarantine), by kind: queue messages a "
                          "consumer refused, history records the writer refused.")
    for kind, count in quarantine_counts(runtime).items():
        if count is not None:
            quarantined.add(int(count), kind=kind.rstrip("s"))
    return "".join(family.render() for family in (depth, jobs, enqueued, started, retried, run,
                                                   wait, events, updated, quarantined))


def _recent_histograms(now: float) -> dict[tuple[str, str, str], tuple[dict, float | None]]:
    merged: dict[tuple[str, str, str], tuple[Counter, float | None]] = {}
    query = TaskMinute.select(TaskMinute.queue, TaskMinute.task, TaskMinute.run_hist,
                              TaskMinute.run_max, TaskMinute.wait_hist, TaskMinute.wait_max
                              ).where(TaskMinute.minute >= now - QUANTILE_WINDOW)
    for queue, task, run_hist, run_max, wait_hist, wait_max in query.tuples():
        for kind, text, maximum in (("run", run_hist, run_max), ("wait", wait_hist, wait_max)):
            histogram, top = merged.get((queue, task, kind), (Counter(), None))
            histogram.update(load_histogram(text))
            if maximum is not None:
                top = maximum if top is None else max(top, maximum)
            merged[(queue, task, kind)] = (histogram, top)
    return merged


CLIENT_TIMEOUT = 10.0  # seconds a client may take to send its request or read the reply


class MetricsServer(ThreadingHTTPServer):
    """A thread per connection, so an idle or slow client (a port scanner, a
    half-open TCP connection, a scraper that never sends its request) never
    keeps another scrape waiting; each connection is dropped after
    CLIENT_TIMEOUT seconds of silence, so idle ones do not pile up."""

    daemon_threads = True
    request_queue_size = 64


def make_server(runtime, host: str, port: int) -> MetricsServer:
    """An HTTP server answering GET /metrics, concurrently."""

    class Handler(BaseHTTPRequestHandler):
        timeout = CLIENT_TIMEOUT  # applied to the socket: bounds every read and write
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self._reply(404, "text/plain; charset=utf-8", b"not found: try /metrics\n")
                return
            try:
                body = exposition(runtime).encode()
            except Exception as exc:
                logger.warning("metrics scrape failed: %s", exc)
                self._reply(500, "text/plain; charset=utf-8",
                            f"tq metrics failed: {str(exc).splitlines()[0] if str(exc) else exc}"
                            "\n".encode())
                return
            self._reply(200, CONTENT_TYPE, body)

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:
            logger.debug("metrics: " + format, *args)

    return MetricsServer((host, port), Handler)

"""`tq metrics`: tq's state as Prometheus metrics, read at scrape time.

A prometheus-client Collector (TqCollector) reads the queue backend and the
summaries each time it is collected; nothing is counted in process, so every
scrape of every `tq metrics --serve`, on any machine, says the same. The
library writes the exposition (text 0.0.4, or OpenMetrics when the scraper asks
for it) and the HTTP app; the server is the standard library's threaded WSGI
server, a thread per connection, so an idle client never blocks a scrape.

What is exported:
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
  - tq_quarantined{kind}: gauge, entries set aside (kind message or record);
  - tq_server_up{server}: 1 when the queue backend / history database answered
    this scrape, 0 when not. A server down leaves its own metrics out (never a
    false 0) and the scrape still answers 200 with the other's, as the
    Prometheus exporters' `*_up` gauges do: the queue depths matter most while
    the history database is down.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.simple_server import make_server as make_wsgi_server

from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from tq.format import first_line
from tq.queries import (
    AppUnreachable,
    history_unreachable,
    quarantine_counts,
    queue_depths,
    queue_names,
    queue_unreachable,
)
from tq.summaries import EventTotal, SummaryState, TaskMinute, TaskTotal, load_histogram, percentile

if TYPE_CHECKING:
    from tq.runtime import Runtime

logger = logging.getLogger("tq.metrics")
QUANTILE_WINDOW = 300
QUANTILES = (0.5, 0.95)
OUTCOMES = ("succeeded", "failed", "canceled", "expired")
TASK_LABELS = ("queue", "task")


class TqCollector:
    """The metrics above, read from `runtime` whenever the registry is collected."""

    def __init__(self, runtime: Runtime, now: Callable[[], float] = time.time) -> None:
        self.runtime, self.now = runtime, now

    def collect(self) -> Iterator[Metric]:
        runtime = self.runtime
        up = GaugeMetricFamily("tq_server_up", "1 when the server answered this scrape, 0 when "
                               "it did not (its metrics are then absent, never a false 0).",
                               labels=("server",))
        try:
            depth = self._depths()
            up.add_metric(("queue",), 1)
        except Exception as exc:
            if not queue_unreachable(exc):
                raise
            logger.warning("metrics without queue depths: %s", first_line(exc))
            depth = None
            up.add_metric(("queue",), 0)
        if depth is not None:
            yield depth
        try:
            history, history_up = list(self._history()), True
            up.add_metric(("history",), 1)
        except Exception as exc:
            if not history_unreachable(exc):
                raise
            logger.warning("metrics without history: %s", first_line(exc))
            history, history_up = [], False
            up.add_metric(("history",), 0)
        yield from history
        quarantined = GaugeMetricFamily("tq_quarantined",
                                        "Entries set aside (tq quarantine), by kind: queue messages "
                                        "a consumer refused, history records the writer refused.",
                                        labels=("kind",))
        for kind, entries in quarantine_counts(runtime, queue=depth is not None,
                                               history=history_up).items():
            if entries is not None:
                quarantined.add_metric((kind.rstrip("s"),), entries)
        yield quarantined
        yield up

    def _depths(self) -> GaugeMetricFamily:
        runtime = self.runtime
        runtime.check_queue_backend()  # the one rule: no answer to a PING is "unreachable"
        depth = GaugeMetricFamily("tq_queue_depth", "Jobs in the queue backend, by queue and state.",
                                  labels=("queue", "state"))
        for queue in queue_names(runtime):
            try:
                depths = queue_depths(runtime, queue)
            except AppUnreachable:
                continue  # no sample rather than a false 0: absent() alerts on it
            for state, count in depths.items():
                depth.add_metric((queue, state), count)
        return depth

    def _history(self) -> Iterator[Metric]:
        runtime = self.runtime
        runtime.history_db()  # binds the history models (see Runtime.history_db)
        jobs = CounterMetricFamily("tq_jobs_total", "Jobs that reached an outcome.",
                                   labels=(*TASK_LABELS, "outcome"))
        enqueued = CounterMetricFamily("tq_jobs_enqueued_total", "Jobs enqueued.",
                                       labels=TASK_LABELS)
        started = CounterMetricFamily("tq_attempts_started_total", "Attempts started.",
                                      labels=TASK_LABELS)
        retried = CounterMetricFamily("tq_attempts_retried_total",
                                      "Attempts that ended without success and were retried.",
                                      labels=TASK_LABELS)
        run = SummaryMetricFamily("tq_job_run_seconds",
                                  f"Attempt run time; quantiles over the last {QUANTILE_WINDOW} s.",
                                  labels=TASK_LABELS)
        wait = SummaryMetricFamily("tq_job_wait_seconds", "Enqueue to first start; quantiles over "
                                   f"the last {QUANTILE_WINDOW} s.", labels=TASK_LABELS)
        recent = _recent_histograms(self.now())
        for total in TaskTotal.select().order_by(TaskTotal.queue, TaskTotal.task):
            labels = (total.queue, total.task)
            for outcome in OUTCOMES:
                jobs.add_metric((*labels, outcome), getattr(total, outcome))
            enqueued.add_metric(labels, total.enqueued)
            started.add_metric(labels, total.started)
            retried.add_metric(labels, total.retried)
            for family, kind in ((run, "run"), (wait, "wait")):
                histogram, maximum = recent.get((total.queue, total.task, kind), (Counter(), None))
                for q in QUANTILES:
                    value = percentile(histogram, q, maximum)
                    if value is not None:
                        family.add_sample(family.name, {"queue": total.queue, "task": total.task,
                                                        "quantile": str(q)}, value)
                family.add_metric(labels, getattr(total, f"{kind}_count"),
                                  getattr(total, f"{kind}_sum"))
        yield from (jobs, enqueued, started, retried, run, wait)

        events = CounterMetricFamily("tq_events_total", "Ingested events stored, by type.",
                                     labels=("type",))
        for event in EventTotal.select().order_by(EventTotal.type):
            events.add_metric((event.type,), event.count)
        yield events
        watermark = (SummaryState.select(SummaryState.watermark)
                     .where(SummaryState.name == "rollup").scalar())
        yield GaugeMetricFamily("tq_summaries_updated_timestamp_seconds",
                                "When the summaries were last rolled up (epoch seconds).",
                                value=float(watermark or 0.0))


def _recent_histograms(now: float) -> dict[tuple[str, str, str], tuple[Counter[int], float | None]]:
    merged: dict[tuple[str, str, str], tuple[Counter[int], float | None]] = {}
    query = TaskMinute.select(TaskMinute.queue, TaskMinute.task, TaskMinute.run_hist,
                              TaskMinute.run_max, TaskMinute.wait_hist, TaskMinute.wait_max
                              ).where(TaskMinute.minute >= now - QUANTILE_WINDOW)
    rows = cast(Iterable[tuple[str, str, str | None, float | None, str | None, float | None]],
                query.tuples())
    for queue, task, run_hist, run_max, wait_hist, wait_max in rows:
        for kind, text, maximum in (("run", run_hist, run_max), ("wait", wait_hist, wait_max)):
            histogram, top = merged.get((queue, task, kind), (Counter(), None))
            histogram.update(load_histogram(text))
            if maximum is not None:
                top = maximum if top is None else max(top, maximum)
            merged[(queue, task, kind)] = (histogram, top)
    return merged


def registry(runtime: Runtime, now: Callable[[], float] = time.time) -> CollectorRegistry:
    """A registry holding only tq's collector (no process metrics, nothing global)."""
    collectors = CollectorRegistry()
    collectors.register(TqCollector(runtime, now))
    return collectors


def exposition(runtime: Runtime, now: float | None = None) -> str:
    """The metrics in the Prometheus text format 0.0.4 (what `tq metrics` prints)."""
    return generate_latest(registry(runtime, time.time if now is None else lambda: now)).decode()


CLIENT_TIMEOUT = 10.0  # seconds a client may take to send its request or read the reply


class MetricsServer(ThreadingMixIn, WSGIServer):
    """A thread per connection, so an idle or slow client (a port scanner, a
    half-open TCP connection, a scraper that never sends its request) never
    keeps another scrape waiting; each connection is dropped after
    CLIENT_TIMEOUT seconds of silence, so idle ones do not pile up."""

    daemon_threads = True
    request_queue_size = 64

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out or hung up: nothing to print a traceback for.
        logger.debug("metrics: connection from %s dropped", client_address, exc_info=True)


class _Handler(WSGIRequestHandler):
    timeout = CLIENT_TIMEOUT  # applied to the socket: bounds every read and write

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("metrics: " + format, *args)


def make_server(runtime: Runtime, host: str, port: int) -> MetricsServer:
    """An HTTP server answering GET /metrics, concurrently (call serve_forever)."""
    metrics = make_wsgi_app(registry(runtime))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: try /metrics\n"]
        try:
            return list(metrics(environ, start_response))  # collected here, before any reply
        except Exception as exc:
            logger.warning("metrics scrape failed: %s", exc)
            first = first_line(exc)
            start_response("500 Internal Server Error",
                           [("Content-Type", "text/plain; charset=utf-8")])
            return [f"tq metrics failed: {first}\n".encode()]

    server = make_wsgi_server(host, port, app, MetricsServer, _Handler)
    assert isinstance(server, MetricsServer)
    return server

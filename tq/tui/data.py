"""The console's one way into tq: reads through tq.queries, acts through tq.ops.

Nothing else in tq.tui imports tq. Every method here blocks (Redis, the history
database), so screens never call them directly: `fetch()` runs a call in a
Textual thread worker and hands the result back on the event loop, where
widgets may be touched. A slow or dead server therefore stalls a worker
thread, never the keyboard.

Which jobs an action touches is tq.ops's rule (ops.RULES): a screen says what
is selected (ids, a filter, a group's filter, `queue_filter` for a whole
queue), `preview` counts what the action will touch and the action takes the
same selection; neither this module nor a screen decides any state.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import peewee
import redis
from textual.worker import Worker, get_current_worker

from tq import audit, ops, queries
from tq.config import ConfigError
from tq.models import STATES, IngestedFile
from tq.registry import TASKS
from tq.scheduler import periodic_specs
from tq.submit import submit
from tq.summaries import TaskTotal, recent_minutes
from tq.where import Filter, FilterError, group_filter, parse

__all__ = ["Data", "Preview", "ReadOnly", "FilterError", "ActionError", "ActionResult",
           "Filter", "STATES", "SORTABLE", "SERVERS", "fetch", "is_connection_error",
           "server_of", "group_filter", "reason"]

ActionError = ops.ActionError
Preview = ops.Preview
ActionResult = ops.ActionResult
reason = ops.reason
SORTABLE = queries.SORTABLE


class ReadOnly(PermissionError):
    """An action was attempted in a console started with --readonly."""


def is_connection_error(exc: BaseException) -> bool:
    """A server that went away (banner and retry), as opposed to a mistake to show:
    the rule tq status, tq metrics and the HTTP API use (tq.queries)."""
    return queries.queue_unreachable(exc) or queries.history_unreachable(exc)


# The two servers the console reads, each with its own banner: a read declares which
# one it needs, and only an answer from that server clears that server's banner.
SERVERS = {"queue": "queue backend", "history": "history database"}


def server_of(exc: BaseException, default: str) -> str:
    """Which server a connection error came from (`default`: the one the read used)."""
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return "queue"
    if isinstance(exc, (peewee.OperationalError, peewee.InterfaceError)):
        return "history"
    if isinstance(exc, ConfigError):  # Runtime names the server it could not open
        text = str(exc)
        if text.startswith("queue backend"):
            return "queue"
        if text.startswith("history database"):
            return "history"
    return default


class Data:
    def __init__(self, runtime, readonly: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.runtime = runtime
        self.readonly = readonly
        self.clock = clock

    # --- plumbing -------------------------------------------------------------------
    def now(self) -> float:
        return self.clock()

    def release(self) -> None:
        """Give back this thread's history connection (to the pool on MySQL)."""
        # Not `runtime.history_db()`: while the server is down that would try to connect.
        database = getattr(self.runtime, "_database", None)
        if database is not None:
            try:
                database.close()
            except Exception:
                pass

    def _check_writable(self) -> None:
        if self.readonly:
            raise ReadOnly("read-only console: actions are disabled")

    def describe_backends(self) -> str:
        config = self.runtime.config
        return f"{config.queue_url_safe} · {config.history_url_safe}"

    @staticmethod
    def parse_filter(text: str) -> Filter:
        return parse(text)

    def probe(self, server: str) -> None:
        """One cheap read from `server` (raises if it does not answer): the app asks each
        server this on every refresh, whatever the screen reads, for the banners."""
        if server == "queue":
            self.runtime.control.paused()
        else:
            self.runtime.history_db().execute_sql("SELECT 1").fetchall()

    # --- reading --------------------------------------------------------------------
    # A screen's refresh is one read of history (its rows), so each history read a
    # screen makes starts with the one door (queries.catch_up): a job just submitted
    # is in the page that read returns. Not the probe: it runs in a worker of its own,
    # beside the screen's, and not at all while the refresh is paused.
    def queue_state(self) -> dict[str, Any]:
        """The Queues screen's part from the queue backend (depths, pause, held, consumers)."""
        return queries.queue_state(self.runtime, now=self.now())

    def queue_history(self, minutes: int = 60) -> dict[str, Any]:
        """The Queues screen's part from history: counts and the per-minute charts."""
        queries.catch_up(self.runtime)
        now = self.now()
        starts, series = recent_minutes(self.runtime, now=now, minutes=minutes)
        return {"queues": queries.queue_history(self.runtime, now=now, totals=False),
                "minutes": starts, "series": series}

    def status(self) -> dict[str, Any]:
        # No per-state totals: counting every history row each refresh grows with history.
        queries.catch_up(self.runtime)
        return queries.status(self.runtime, now=self.now(), totals=False)

    def jobs_page(self, flt: Filter | None, sort: str, descending: bool,
                  after: tuple[Any, str] | None, limit: int) -> list[dict]:
        queries.catch_up(self.runtime)
        return queries.list_jobs(self.runtime, flt, sort=sort, descending=descending,
                                 limit=limit, after=after)

    def count(self, flt: Filter | None) -> int:
        queries.catch_up(self.runtime)
        return queries.count_jobs(self.runtime, flt)

    def job(self, job_id: str) -> dict | None:
        queries.catch_up(self.runtime)
        return queries.job_detail(self.runtime, job_id)

    def failure_groups(self, flt: Filter | None) -> list[dict]:
        queries.catch_up(self.runtime)
        return queries.failure_groups(self.runtime, flt)

    def workers(self) -> list[dict]:
        return queries.list_workers(self.runtime, now=self.now())

    def periodic(self) -> list[dict]:
        return queries.list_periodic(self.runtime, now=self.now())

    def ingested(self, limit: int = 200) -> list[dict]:
        """The most recent files the watcher took from the inbox, newest first."""
        self.runtime.history_db()
        query = IngestedFile.select().order_by(IngestedFile.id.desc()).limit(limit)
        return list(cast(Iterable[dict], query.dicts()))

    @staticmethod
    def task_names() -> list[str]:
        return sorted(TASKS)

    def task_names_of(self, queue: str) -> list[str]:
        """Task types to pick from for `queue`: those it has run (the summaries' small
        totals table, when history answers), then every registered one."""
        seen: list[str] = []
        try:
            self.runtime.history_db()
            seen = [row.task for row in TaskTotal.select(TaskTotal.task)
                    .where(TaskTotal.queue == queue).order_by(TaskTotal.task)]
        except Exception:  # history down: the registered names still make a list
            pass
        return list(dict.fromkeys([*seen, *sorted(TASKS)]))

    # --- which jobs an action touches, and how many (tq.ops decides) ------------------
    def preview(self, action: str, ids: list[str] | None = None,
                flt: Filter | None = None) -> Preview:
        return ops.preview(self.runtime, action, ids, flt)

    @staticmethod
    def queue_filter(action: str, queue: str) -> Filter | None:
        """What `action` acts on for a whole queue (None: not offered for a queue)."""
        return ops.queue_filter(action, queue)

    def audit(self, limit: int = 200) -> list[dict]:
        """The newest audit entries (tq audit), each with the ids it touched."""
        queries.catch_up(self.runtime)
        return audit.entries(self.runtime.history_db(), limit=limit)

    # --- acting ----------------------------------------------------------------------
    def pause(self, queue: str, task: str | None = None) -> None:
        self._check_writable()
        ops.pause(self.runtime, queue, task)

    def resume(self, queue: str, task: str | None = None) -> int:
        self._check_writable()
        return ops.resume(self.runtime, queue, task)

    def forget_worker(self, worker_id: str) -> None:
        self._check_writable()
        ops.forget_worker(self.runtime, worker_id)

    def paused_targets(self) -> set[str]:
        return set(self.runtime.control.paused())

    def requeue(self, ids: list[str] | None = None, flt: Filter | None = None
                ) -> ActionResult:
        self._check_writable()
        return ops.requeue(self.runtime, ids, flt)

    def cancel(self, ids: list[str] | None = None, flt: Filter | None = None) -> ActionResult:
        self._check_writable()
        return ops.cancel(self.runtime, ids, flt)

    def run_now(self, ids: list[str] | None = None, flt: Filter | None = None) -> ActionResult:
        self._check_writable()
        return ops.run_now(self.runtime, ids, flt)

    def purge(self, ids: list[str] | None = None, flt: Filter | None = None) -> ActionResult:
        self._check_writable()
        return ops.purge(self.runtime, ids, flt)

    def run_periodic(self, name: str) -> str:
        """Submit a periodic task's job now, outside its schedule."""
        self._check_writable()
        spec = next((s for s in periodic_specs(self.runtime) if s.name == name), None)
        if spec is None:
            raise LookupError(f"no periodic task {name!r}")
        job_id = submit(spec.task, queue=spec.queue, runtime=self.runtime)
        ops.audit(self.runtime, "run-now", f"periodic:{name}", 1)
        return job_id


def fetch(node, call: Callable[[], Any], done: Callable[[Any], None],
          failed: Callable[[BaseException], None], *, data: Data, group: str = "fetch",
          exclusive: bool = False) -> Worker:
    """Run `call` in a thread worker; `done(result)` or `failed(error)` then runs
    on the event loop of `node`. A worker cancelled meanwhile (by an exclusive
    newer one) delivers nothing, so a stale page never overwrites a fresh one."""
    def deliver(worker: Worker, callback: Callable, value: Any) -> None:
        if not worker.is_cancelled:
            callback(value)

    def work() -> None:
        worker = get_current_worker()
        try:
            result = call()
        except Exception as exc:  # delivered to the screen; a worker must not kill the app
            node.call_later(deliver, worker, failed, exc)
            return
        finally:
            data.release()
        node.call_later(deliver, worker, done, result)

    return node.run_worker(work, group=group, exclusive=exclusive, thread=True,
                           exit_on_error=False, description=getattr(call, "__name__", ""))


def running(node, group: str) -> bool:
    return any(worker.group == group and worker.node is node and not worker.is_finished
               for worker in node.app.workers)


"""Home: one row per queue, live, with per-interval charts; workers below on a tall terminal.

Two reads, one per server, each shown on its own: depths, pause and held state
from the queue backend; counts and charts from history. While one server does
not answer, its columns keep their last values, dimmed, and its banner says so;
the other server's columns stay live (a pause just made reads "paused" while
the history database is down).

The charts are jobs finished (and failed) per interval over the last hour,
from the summaries (tq.summaries.recent_minutes), so a new console shows the
hour at once. Every bar of the screen shares one scale, whose figure the status
line shows; an interval with no data (the roll-up stopped) is a gap, not zero.
"""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from tq.text import console_markup, literal
from tq.tui.data import Filter
from tq.tui.screens.base import TqScreen
from tq.tui.widgets import (
    PickerDialog,
    StatusLine,
    Table,
    bucket,
    cursor_key,
    fill_table,
    fit_columns,
    fmt_age,
    fmt_count,
    shorten,
    sparkline,
    table_width,
)

CHART_MINUTES = 60
# (column, width), the most telling first: an 80-column terminal shows through the
# throughput chart and err%; a wide one the rest. "queue" takes what is left.
QUEUE = "queue"
HISTORY_COLUMNS = {"retry", "fail", "done", "failures", "ok/1m", "ok/1h", "oldest", "err%"}


def columns(chart: int) -> list[tuple[str, int]]:
    return [(QUEUE, 8), ("state", 7), ("queued", 6), ("run", 4), ("fail", 5), ("done", chart),
            ("err%", 6), ("oldest", 6), ("sched", 5), ("retry", 5), ("held", 5),
            ("failures", chart), ("ok/1m", 6), ("ok/1h", 6), ("paused tasks", 30)]


def chart_width(width: int) -> int:
    """Bars per hour for a terminal width: 12 (5 min each), 30 (2 min) or 60 (1 min)."""
    return 60 if width >= 220 else 30 if width >= 140 else 12


class QueuesScreen(TqScreen):
    TITLE = "Queues"
    MAIN = "#queues"
    SERVER = "queue"
    BINDINGS = [
        Binding("enter", "open_queue", "Jobs", show=False),
        Binding("p", "pause", "Pause/resume"),
        Binding("t", "pause_task", "Pause task"),
        Binding("R", "requeue", "Requeue failed"),
        Binding("c", "cancel", "Cancel waiting", show=False),
        Binding("ctrl+d", "purge", "Purge failed", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.status: dict | None = None  # from the queue backend
        self.history: dict | None = None  # from the history database (last answer)
        self.history_stale = False  # its last read failed: shown dimmed

    def compose_body(self) -> ComposeResult:
        yield Table(id="queues", cursor_type="row", zebra_stripes=True)
        yield StatusLine(id="status")
        workers = Table(id="queue-workers", cursor_type="none")
        workers.add_columns("consumer", "queues", "workers", "heartbeat", "running now")
        yield workers

    def on_mount(self) -> None:
        super().on_mount()
        self.focus_main()

    def refresh_data(self) -> None:
        self.load(self.data.queue_state, self.show_state, server="queue")
        if not any(w.group == "history" and not w.is_finished for w in self.app.workers
                   if w.node is self):
            self.load(lambda: self.data.queue_history(CHART_MINUTES), self.show_history,
                      group="history", server="history", failed=self.history_failed)

    def topbar_text(self) -> str:
        if self.status is None:
            return "loading…"
        alive = self.status["workers_alive"]
        text = f"workers alive: [b]{alive}[/b]" if alive else "[b red]no workers alive[/]"
        if self.size.width >= 120:
            text += f"  │  {console_markup(self.data.describe_backends())}"
        return text

    def show_state(self, status: dict) -> None:
        self.status = status
        fill_table(self.query_one("#queue-workers", DataTable),
                   [(w["id"], (literal(w["id"]), literal(",".join(w["queues"])),
                               str(w["workers"]),
                               Text(fmt_age(w["heartbeat_age"]),
                                    style="" if w["alive"] else "bold red"),
                               str(len(w["running"]))))
                    for w in status["workers"]])
        self.redraw()
        self.update_topbar()
        self.settle()

    def show_history(self, history: dict) -> None:
        self.history = history
        self.history_stale = False
        if self.status is not None:
            self.redraw()
        self.settle()

    def history_failed(self, error: BaseException) -> None:
        self.history_stale = True
        if self.status is not None:
            self.redraw()
        self.settle()

    def settle(self) -> None:
        # Loaded once both halves have answered (or history has failed): the two
        # reads finish in either order, and a screen judged on one half alone
        # (a test, a snapshot, the bench) would see a status line still growing.
        self.loaded = self.status is not None and (self.history is not None
                                                   or self.history_stale)

    def on_resize(self) -> None:
        if self.status is not None:
            self.redraw()

    def redraw(self) -> None:
        status = self.status
        if status is None:  # drawn once the queue backend has answered
            return
        table = self.query_one("#queues", DataTable)
        chart = chart_width(self.size.width)
        widths = fit_columns(table, columns(chart), table_width(table), flexible=QUEUE)
        per = CHART_MINUTES // chart
        series = {name: {kind: bucket(values, per) for kind, values in entry.items()}
                  for name, entry in (self.history or {}).get("series", {}).items()}
        top = max([v for entry in series.values() for v in entry["done"] if v] or [0])
        fill_table(table, [(name, [cells[c] for c in widths])
                           for name, entry in status["queues"].items()
                           for cells in [self.cells(name, entry, series.get(name), top,
                                                    widths, chart)]])
        self.update_status(status, top, per)

    def cells(self, name: str, entry: dict, series: dict | None, top: int,
              widths: dict[str, int], chart: int) -> dict[str, Text]:
        history = (self.history or {}).get("queues", {}).get(name)
        dim = "dim" if self.history_stale else ""

        def past(key: str, alert: str = "") -> Text:
            if history is None:
                return Text("…" if not self.history_stale else "?", justify="right")
            return number(history[key], alert, dim)
        if entry.get("unreachable"):  # an attached app's own storage: depths unknown
            state = Text("unreachable", style="bold red")
        elif entry["paused"]:
            state = Text("paused", style="bold yellow")
        elif entry["paused_tasks"]:
            state = Text("partial", style="bold yellow")  # some task types paused: see status
        else:
            state = Text("running", style="green")
        rate = history["error_rate_last_hour"] if history else None
        blank = Text(" " * chart)
        return {
            QUEUE: literal(shorten(name, widths.get(QUEUE, 8)), style="bold"),
            "state": state,
            "queued": number(entry["queued"]), "sched": number(entry["scheduled"]),
            "run": number(entry["running"]), "held": number(entry["held"], "yellow"),
            "retry": past("retrying"), "fail": past("failed", "red"),
            "ok/1m": past("succeeded_last_minute"), "ok/1h": past("succeeded_last_hour"),
            "oldest": Text(fmt_age(history["oldest_queued_age"]) if history else "",
                           style=dim, justify="right"),
            "err%": Text("" if rate is None else f"{rate:.1%}",
                         style=("red " if rate and rate >= 0.05 else "") + dim,
                         justify="right"),
            "done": sparkline(series["done"], top, "cyan" if not dim else "dim cyan")
            if series else blank,
            "failures": sparkline(series["failed"], top, "red" if not dim else "dim red")
            if series else blank,
            "paused tasks": literal(shorten(", ".join(entry["paused_tasks"]),
                                            widths.get("paused tasks", 30))),
        }

    def update_status(self, status: dict, top: int, per: int) -> None:
        parts = [f"{len(status['queues'])} queues"]
        if self.history is not None:
            total_failed = sum(e["failed"] for e in self.history["queues"].values())
            parts.append(f"{fmt_count(total_failed)} failed"
                         + (" (history unreachable: last known)" if self.history_stale else ""))
            parts.append(f"charts: last hour, {per} min a bar, █ = {fmt_count(top)} jobs")
        paused = [f"{q}/{t}" for q, e in status["queues"].items() for t in e["paused_tasks"]]
        if paused:
            parts.append("[b yellow]paused task types:[/] " + ", ".join(map(console_markup, paused)))
        if status.get("quarantined"):
            parts.append(f"[b yellow]{fmt_count(status['quarantined'])} messages set aside[/]"
                         " (tq quarantine)")
        workers = len(status["workers"])
        if not workers:
            parts.append("no consumer registered (start one: tq up / tq consumer)")
        self.query_one(StatusLine).update(" · ".join(parts))

    # --- keys ----------------------------------------------------------------------------
    def current_queue(self) -> str | None:
        return cursor_key(self.query_one("#queues", DataTable))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "queues":
            self.action_open_queue()

    def action_open_queue(self) -> None:
        queue = self.current_queue()
        if queue:
            self.app.open_jobs(queue=queue)

    def action_pause(self) -> None:
        queue = self.current_queue()
        if queue:
            self.toggle_pause(queue)

    def action_pause_task(self) -> None:
        queue = self.current_queue()
        if self.refuse_if_readonly() or not queue or self.status is None:
            return
        paused = self.status["queues"][queue]["paused_tasks"]

        def chosen(task: str | None) -> None:
            if task:
                self.toggle_pause(queue, task)
        def pick(names: list[str]) -> None:
            self.app.push_screen(PickerDialog(
                f"Pause or resume which task type in queue {queue}?", names,
                marked=paused, marked_label="paused"), chosen)
        self.load(lambda: self.data.task_names_of(queue), pick, group="action",
                  server="queue")

    def selection(self, action: str) -> tuple[list[str] | None, Filter | None] | None:
        """The queue under the cursor, as tq.ops says `action` takes a whole queue."""
        queue = self.current_queue()
        flt = self.data.queue_filter(action, queue) if queue is not None else None
        return None if flt is None else (None, flt)


def number(value: int | None, alert: str = "", dim: str = "") -> Text:
    if value is None:  # not known (an unreachable app's depths): never shown as 0
        return Text("?", style="red", justify="right")
    return Text(fmt_count(value), style=" ".join(s for s in (alert if value else "", dim) if s),
                justify="right")

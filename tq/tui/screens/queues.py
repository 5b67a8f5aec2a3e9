"""Home: one row per queue, live, with a throughput sparkline; workers below on a tall terminal."""
from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from tq.tui.data import Filter
from tq.tui.screens.base import TqScreen
from tq.tui.widgets import (PromptDialog, StatusLine, Table, cursor_key, fill_table, fmt_age,
                            fmt_count, sparkline)

# Short headers: through err% fits 80 columns; a wide terminal shows the rest.
COLUMNS = ("queue", "state", "queued", "sched", "run", "retry", "fail", "ok/1m", "ok/1h",
           "oldest", "err%", "done/s (1 min)", "held", "paused tasks")
SAMPLES = 120


class QueuesScreen(TqScreen):
    TITLE = "Queues"
    MAIN = "#queues"
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
        self.status: dict | None = None
        # queue -> jobs finished per second over the last minute, one sample per refresh.
        self.throughput: dict[str, deque[float]] = {}

    def compose_body(self) -> ComposeResult:
        table = Table(id="queues", cursor_type="row", zebra_stripes=True)
        for name in COLUMNS:
            table.add_column(name, key=name)
        yield table
        yield StatusLine(id="status")
        workers = Table(id="queue-workers", cursor_type="none")
        workers.add_columns("consumer", "queues", "workers", "heartbeat", "running now")
        yield workers

    def on_mount(self) -> None:
        super().on_mount()
        self.focus_main()

    def refresh_data(self) -> None:
        self.load(self.data.status, self.show)

    def topbar_text(self) -> str:
        if self.status is None:
            return "loading…"
        alive = self.status["workers_alive"]
        text = f"workers alive: [b]{alive}[/b]" if alive else "[b red]no workers alive[/]"
        if self.size.width >= 120:
            text += f"  │  {self.data.describe_backends()}"
        return text

    def show(self, status: dict) -> None:
        self.status = status
        for name, entry in status["queues"].items():
            done = entry["succeeded_last_minute"] + entry["failed_last_minute"]
            self.throughput.setdefault(name, deque(maxlen=SAMPLES)).append(done / 60)
        width = max(8, min(40, self.size.width // 5))
        fill_table(self.query_one("#queues", DataTable),
                   [(name, self.row(name, entry, width))
                    for name, entry in status["queues"].items()])
        fill_table(self.query_one("#queue-workers", DataTable),
                   [(w["id"], (w["id"], ",".join(w["queues"]), str(w["workers"]),
                               Text(fmt_age(w["heartbeat_age"]),
                                    style="" if w["alive"] else "bold red"),
                               str(len(w["running"]))))
                    for w in status["workers"]])
        total_failed = sum(e["failed"] for e in status["queues"].values())
        workers = len(status["workers"])
        # Shown only when something was set aside (quarantine: tq quarantine lists it).
        aside = sum(count or 0 for count in (status.get("quarantine") or {}).values())
        self.query_one(StatusLine).update(
            f"{len(status['queues'])} queues · {fmt_count(total_failed)} failed in history · "
            + (f"[b yellow]{fmt_count(aside)} set aside (tq quarantine)[/] · " if aside else "")
            + (f"{workers} consumer{'s' if workers != 1 else ''} below" if workers else
               "no consumer registered (start one: tq up / tq consumer)"))
        self.update_topbar()
        self.loaded = True

    def row(self, name: str, entry: dict, width: int) -> tuple:
        rate = entry["error_rate_last_hour"]
        samples = self.throughput.get(name, ())
        return (
            Text(name, style="bold"),
            Text("paused", style="bold yellow") if entry["paused"] else Text("running",
                                                                             style="green"),
            number(entry["queued"]), number(entry["scheduled"]), number(entry["running"]),
            number(entry["retrying"]), number(entry["failed"], "red"),
            number(entry["succeeded_last_minute"]), number(entry["succeeded_last_hour"]),
            Text(fmt_age(entry["oldest_queued_age"]), justify="right"),
            Text(f"{rate:.1%}", style="red" if rate >= 0.05 else "", justify="right"),
            Text(sparkline(samples, width).ljust(width), style="cyan")
            + Text(f" {samples[-1]:.2f}" if samples else ""),
            number(entry["held"]),
            ", ".join(entry["paused_tasks"]),
        )

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
        self.app.push_screen(PromptDialog(
            f"Pause or resume which task type in queue {queue}?", self.data.task_names(),
            hint=("paused now: " + ", ".join(paused)) if paused else ""), chosen)

    def selection(self, action: str):
        queue = self.current_queue()
        if queue is None:
            return None
        states = {"requeue": ("failed",), "purge": ("failed",),
                  "cancel": ("queued", "scheduled", "retrying")}.get(action)
        if states is None:
            return None
        return None, Filter(queues=(queue,), states=states)


def number(value: int, alert: str = "") -> Text:
    return Text(fmt_count(value), style=alert if value else "", justify="right")

"""Consumers: where they run, what they serve, whether they still heartbeat."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable

from tq.tui.screens.base import TqScreen
from tq.tui.widgets import StatusLine, Table, fill_table, fmt_age, fmt_time, shorten


class WorkersScreen(TqScreen):
    TITLE = "Workers"

    def __init__(self) -> None:
        super().__init__()
        self.loaded = False

    def compose_body(self) -> ComposeResult:
        yield StatusLine(id="status")
        table = Table(id="workers", cursor_type="row", zebra_stripes=True)
        for name in ("consumer", "host", "pid", "queues", "workers", "heartbeat", "started",
                     "running", "running jobs"):
            table.add_column(name, key=name)
        yield table

    def on_mount(self) -> None:
        super().on_mount()
        self.focus_main()

    def refresh_data(self) -> None:
        self.load(self.data.workers, self.show)

    def show(self, workers: list[dict]) -> None:
        now = self.data.now()
        fill_table(self.query_one(DataTable), [
            (w["id"], (
                w["id"], w["host"], str(w["pid"]), ",".join(w["queues"]),
                f"{w['workers']} {w.get('worker_type', '')}".strip(),
                Text(fmt_age(w["heartbeat_age"]) + " ago", style="") if w["alive"] else
                Text(fmt_age(w["heartbeat_age"]) + " ago (silent)", style="bold red"),
                fmt_time(w.get("started"), now), str(len(w["running"])),
                shorten(", ".join(w["running"]), 80)))
            for w in workers])
        alive = sum(1 for w in workers if w["alive"])
        silent = len(workers) - alive
        self.query_one(StatusLine).update(
            f"[b]{alive}[/b] alive" + (f", [b red]{silent} silent[/]" if silent else "")
            + "  ·  a silent consumer's running jobs go back on their queues after the lease")
        self.loaded = True

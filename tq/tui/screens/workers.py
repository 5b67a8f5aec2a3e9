"""Consumers: where they run, what they serve, whether they still heartbeat."""
from __future__ import annotations

from rich.text import Text

from tq.tui.screens.base import TableScreen
from tq.tui.widgets import StatusLine, Table, fill_table, fmt_age, fmt_time, shorten


class WorkersScreen(TableScreen):
    TITLE = "Workers"
    COLUMNS = ("consumer", "host", "pid", "queues", "workers", "heartbeat", "started", "running",
               "running jobs")
    SOURCE = "workers"

    def show(self, workers: list[dict]) -> None:
        now = self.data.now()
        fill_table(self.query_one(Table), [
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

"""Consumers: where they run, what they serve, whether they still heartbeat.

`x` forgets a silent consumer (one killed with SIGKILL stays listed otherwise)
through tq.ops.forget_worker, which refuses a live one and audits the removal."""
from __future__ import annotations

from rich.text import Text
from textual.binding import Binding

from tq.text import console_markup
from tq.tui.screens.base import TableScreen
from tq.tui.widgets import StatusLine, Table, cursor_key, fmt_age, fmt_time, shorten


class WorkersScreen(TableScreen):
    TITLE = "Workers"
    COLUMNS = ("consumer", "host", "pid", "queues", "workers", "heartbeat", "started", "running",
               "running jobs")
    FLEXIBLE = "running jobs"
    ORDER = ("consumer", "heartbeat", "running", "queues", "workers", "host", "pid", "started",
             "running jobs")
    SOURCE = "workers"
    SERVER = "queue"
    BINDINGS = [Binding("x", "forget", "Forget silent consumer")]

    def __init__(self) -> None:
        super().__init__()
        self.consumers: list[dict] = []

    def show(self, workers: list[dict]) -> None:
        self.consumers = workers
        now = self.data.now()
        self.fill([
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
            + "  ·  a silent consumer's running jobs go back on their queues after the lease"
            + ("  ·  x forgets a silent one" if silent else ""))
        self.loaded = True

    def action_forget(self) -> None:
        if self.refuse_if_readonly():
            return
        key = cursor_key(self.query_one(Table))
        worker = next((w for w in self.consumers if w["id"] == key), None)
        if worker is None:
            self.notify("no consumer under the cursor", severity="warning")
            return
        if worker["alive"]:
            self.notify(f"consumer {console_markup(worker['id'])} is alive: stop it first, it would "
                        "register again", severity="warning")
            return
        self.confirm_then(
            f"Forget consumer {console_markup(worker['id'])} (silent for {fmt_age(worker['heartbeat_age'])})? "
            "It leaves the list; jobs it was running go back on their queues as usual.",
            "Forget", lambda: self.data.forget_worker(worker["id"]),
            lambda _: f"forgot consumer {console_markup(worker['id'])}", server="queue")

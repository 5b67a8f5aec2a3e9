"""Periodic tasks: schedule, next and last run, outcome; `r` runs one now."""
from __future__ import annotations

from textual.binding import Binding

from tq.text import console_markup, literal
from tq.tui.screens.base import TableScreen
from tq.tui.widgets import StatusLine, Table, cursor_key, fmt_time

OUTCOME_STYLE = {"failed": "red", "succeeded": "green"}


class PeriodicScreen(TableScreen):
    TITLE = "Periodic"
    COLUMNS = ("name", "schedule", "task", "queue", "next run", "last run", "outcome", "last job")
    FLEXIBLE = "last job"
    SOURCE = "periodic"
    SERVER = "queue"  # schedules and last runs; outcomes only when history answers
    BINDINGS = [Binding("r", "run_now", "Run now")]

    def show(self, rows: list[dict]) -> None:
        now = self.data.now()
        self.fill([
            (row["name"], (row["name"], row["schedule"], row["task"], row["queue"],
                           fmt_time(row["next_run"], now), fmt_time(row["last_run"], now),
                           literal(row["last_outcome"] or "",
                                   style=OUTCOME_STYLE.get(row["last_outcome"] or "", "")),
                           row["last_job"] or ""))
            for row in rows])
        self.query_one(StatusLine).update(
            f"[b]{len(rows)}[/b] periodic tasks (times UTC)" if rows else
            "no periodic tasks: add them under \\[periodic] in tq.ini or with @tq.periodic")
        self.loaded = True

    def action_run_now(self) -> None:
        name = cursor_key(self.query_one(Table))
        if self.refuse_if_readonly() or not name:
            return
        shown = console_markup(name)
        self.confirm_then(f"Run periodic task {shown} now (1 job, outside its schedule)?",
                          "Run now", lambda: self.data.run_periodic(name),
                          lambda job_id: f"submitted {shown} as job {console_markup(job_id)}")

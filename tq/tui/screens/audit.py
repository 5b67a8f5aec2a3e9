"""Audit: every operator action, newest first (the same entries as `tq audit`)."""
from __future__ import annotations

from rich.text import Text

from tq.text import literal
from tq.tui.screens.base import TableScreen
from tq.tui.widgets import StatusLine, Table, fill_table, fmt_count, fmt_time

OUTCOME_STYLE = {"done": "green", "nothing": "", "partly": "yellow", "failed": "bold red"}


class AuditScreen(TableScreen):
    TITLE = "Audit"
    COLUMNS = ("when", "action", "count", "outcome", "target", "user", "host", "jobs")
    SOURCE = "audit"
    MIN_TICK_SECONDS = 5.0

    def show(self, entries: list[dict]) -> None:
        now = self.data.now()
        fill_table(self.query_one(Table), [
            (str(entry["id"]), (
                fmt_time(entry["at"], now), literal(entry["action"]),
                Text(fmt_count(entry["count"]), justify="right"),
                literal((entry["outcome"] or "") + (f": {entry['detail']}" if entry["detail"]
                                                    else ""),
                        style=OUTCOME_STYLE.get(entry["outcome"] or "", "")),
                literal(entry["target"] or ""), literal(entry["user"]),
                literal(entry["host"]),
                literal(", ".join(entry["ids"][:3]) + (" …" if len(entry["ids"]) > 3 else ""))))
            for entry in entries])
        self.query_one(StatusLine).update(
            f"[b]{len(entries):,}[/b] most recent actions, newest first  ·  "
            "tq audit --json lists every job id of each")
        self.loaded = True

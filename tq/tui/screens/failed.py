"""Failures grouped by exception type and normalised message; act on a whole group."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from tq.text import console_markup, literal
from tq.tui.data import group_filter
from tq.tui.screens.base import TableScreen
from tq.tui.widgets import (
    FilterInput,
    StatusLine,
    Table,
    cursor_key,
    fmt_count,
    fmt_time,
    shorten,
)


class FailedScreen(TableScreen):
    TITLE = "Failed"
    COLUMNS = ("count", "error", "message", "queues", "first seen", "last seen")
    FLEXIBLE = "message"
    # Grouping reads up to 100,000 failures: live, but not every 1.5 s.
    MIN_TICK_SECONDS = 30.0
    BINDINGS = [
        Binding("enter", "open_group", "Jobs", show=False),
        Binding("R", "requeue", "Requeue group"),
        Binding("c", "cancel", "Cancel group", show=False),
        Binding("ctrl+d", "purge", "Purge group"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear", "Clear", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.groups: list[dict] = []

    def compose_body(self) -> ComposeResult:
        yield from super().compose_body()
        yield FilterInput(placeholder="narrow the failures: queue:q task:x since:1h "
                          "(Enter applies, Esc clears)", id="filter")

    def refresh_data(self, exclusive: bool = False) -> None:
        flt = self.user_filter
        self.load(lambda: self.data.failure_groups(flt), self.show, exclusive=exclusive)

    def show(self, groups: list[dict]) -> None:
        self.groups = groups
        now = self.data.now()
        width = max(30, self.size.width - 70)
        self.fill([
            (self.group_key(group), (
                Text(fmt_count(group["count"]), style="bold red"),
                literal(group["error_type"] or "?"), literal(shorten(group["message"], width)),
                literal(", ".join(group["queues"])), fmt_time(group["first_seen"], now),
                fmt_time(group["last_seen"], now)))
            for group in groups])
        total = sum(group["count"] for group in groups)
        text = (f"[b]{fmt_count(total)}[/b] failed job{'' if total == 1 else 's'} in "
                f"[b]{len(groups)}[/b] group{'' if len(groups) == 1 else 's'}")
        if self.user_filter is not None:
            text += f"  ·  filter [b]{console_markup(self.user_filter.text)}[/b]"
        self.query_one(StatusLine).update(text + "  ·  Enter: the group's jobs  ·  "
                                          "refreshed every 30 s")
        self.loaded = True

    @staticmethod
    def group_key(group: dict) -> str:
        return f"{group['error_type']}\x00{group['message']}"

    def current_group(self) -> dict | None:
        key = cursor_key(self.query_one(Table))
        return next((g for g in self.groups if self.group_key(g) == key), None)

    # --- keys ----------------------------------------------------------------------------
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_group()

    def group_filter(self, group: dict):
        """Exactly the group's failed jobs (tq/groups.py: the rule that made the group),
        within the screen's own filter."""
        flt = group_filter(group["error_type"], group["message"])
        narrow = self.user_filter
        if narrow is not None:
            flt = narrow.merged(states=flt.states, group=flt.group,
                                text=f"{narrow.text} {flt.text}".strip())
        return flt

    def action_open_group(self) -> None:
        group = self.current_group()
        if group:
            self.app.open_jobs(filter_text=self.group_filter(group).text, tab="failed")

    def selection(self, action: str):
        group = self.current_group()
        return (None, self.group_filter(group)) if group else None

    def action_clear(self) -> None:
        self.on_filter_input_cleared()

    def filter_changed(self) -> None:
        self.refresh_data(exclusive=True)

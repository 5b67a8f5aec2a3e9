"""Jobs by state, one page of 40 at a time from history (keyset paging, never a whole table)."""
from __future__ import annotations

import shlex
import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from tq.text import console_markup, literal
from tq.tui.data import SORTABLE, Filter, running
from tq.tui.screens.base import ACTION_BINDINGS, TqScreen
from tq.tui.widgets import (
    FilterInput,
    StateTabs,
    StatusLine,
    Table,
    cursor_key,
    fill_table,
    fit_columns,
    fmt_count,
    fmt_duration,
    fmt_time,
    shorten,
    table_width,
)

TABS = ("all", "queued", "scheduled", "running", "retrying", "failed", "canceled",
        "succeeded", "requeued")
PAGE = 40
RECOUNT_SECONDS = 15.0
# (column, width), what an operator reads first first: an 80-column terminal shows
# through the error, which takes the room left (widgets.fit_columns), so no column
# is cut at the edge; a wider one the rest.
COLUMNS = (("✓", 1), ("id", 10), ("state", 9), ("task", 24), ("error", 20),
           ("enqueued", 8), ("duration", 8), ("tries", 5), ("args", 30), ("prio", 4),
           ("started", 8), ("finished", 8))
FLEXIBLE = "error"
# Shift+letter sorts by a column; again reverses it.
SORT_KEYS = {"E": "enqueued_at", "S": "started_at", "F": "finished_at", "P": "priority",
             "A": "attempts", "T": "task", "I": "id"}
STATE_STYLE = {"failed": "red", "succeeded": "green", "running": "cyan", "retrying": "yellow",
               "canceled": "magenta", "expired": "magenta", "scheduled": "blue",
               "requeued": "dim"}


def without_states(text: str) -> str:
    """A filter's text less its `state:` terms."""
    try:
        tokens = shlex.split(text)
    except ValueError:
        return text
    return " ".join(shlex.quote(t) for t in tokens if not t.startswith("state:"))


class JobsTable(Table):
    # Left/right switch state tabs here rather than scroll columns.
    BINDINGS = [Binding("left,h", "screen.tab(-1)", "Prev tab", show=False),
                Binding("right,l", "screen.tab(1)", "Next tab", show=False)]


class JobsScreen(TqScreen):
    TITLE = "Jobs"
    BINDINGS = [
        Binding("enter", "open_job", "Detail", show=False),
        Binding("space", "mark", "Mark"),
        Binding("a", "mark_all", "Mark all"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear", "Clear marks, filter, queue", show=False),
        Binding("right_square_bracket", "page(1)", "Next page", show=False),
        Binding("left_square_bracket", "page(-1)", "Prev page", show=False),
        *ACTION_BINDINGS,
        Binding("p", "pause", "Pause queue", show=False),
        Binding("t", "pause_task", "Pause task", show=False),
        *[Binding(key, f"sort('{column}')", f"Sort by {column.removesuffix('_at')}",
                  show=False) for key, column in SORT_KEYS.items()],
    ]

    def __init__(self) -> None:
        super().__init__()
        self.queue: str | None = None
        self.tab = "all"
        self.user_filter: Filter | None = None
        self.sort = "enqueued_at"
        self.descending = True
        self.page_starts: list[tuple[Any, str] | None] = [None]
        self.rows: list[dict] = []
        self.total: int | None = None
        self.marked: set[str] = set()
        self._counted_at = 0.0
        self.all_marked = False

    def compose_body(self) -> ComposeResult:
        yield StateTabs(id="tabs")
        yield StatusLine(id="status")
        yield JobsTable(id="jobs", cursor_type="row", zebra_stripes=True)
        yield FilterInput(placeholder="task:x state:failed queue:q args:k=v since:1h "
                          "error:E  (Enter applies, Esc clears)", id="filter")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(JobsTable).focus()
        self.show_tabs()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()  # the same page again, fresh
        self.load_count()

    def topbar_text(self) -> str:
        if self.queue:
            return f"queue: [b]{console_markup(self.queue)}[/b] (Esc: all queues)"
        return "queue: [b]all[/b]"

    # --- what is shown ------------------------------------------------------------------
    def effective_filter(self) -> Filter:
        flt = self.user_filter or Filter()
        if not flt.states and self.tab != "all":
            flt = flt.merged(states=(self.tab,))
        if self.queue and not flt.queues:
            flt = flt.merged(queues=(self.queue,))
        return flt

    def scope(self, queue: str | None = None, filter_text: str | None = None,
              tab: str | None = None) -> None:
        """Show one queue (None: all), optionally with a filter and a tab (from other screens)."""
        self.queue = queue
        if tab is not None:
            self.tab = tab
        if filter_text is not None:
            self.user_filter = self.data.parse_filter(filter_text) if filter_text else None
            self.query_one(FilterInput).value = filter_text
        self.marked.clear()
        self.all_marked = False
        self.show_tabs()
        self.update_topbar()
        self.reload()

    def reload(self) -> None:
        """Filter, tab, sort or scope changed: back to page 1 and count again."""
        self.page_starts = [None]
        self.total = None
        self.load_page(exclusive=True)
        self.load_count()

    def load_count(self) -> None:
        flt = self.effective_filter()
        self.load(lambda: self.data.count(flt), self.show_total, group="count", exclusive=True)

    def refresh_data(self) -> None:
        self.load_page()
        # "of N" is counted when the filter changes, not per page or refresh (on a big
        # history a count is the costly query); while live it is redone now and then,
        # and at once when a page shows it is out of date (show_rows).
        if self.total is not None and time.monotonic() - self._counted_at > RECOUNT_SECONDS:
            self.recount()

    def recount(self) -> None:
        if not running(self, "count"):
            self.load_count()

    def load_page(self, exclusive: bool = False, back_if_empty: bool = False) -> None:
        """The page starting after page_starts[-1]. The timer's refreshes and the
        operator's page changes share one worker group, so an exclusive page change
        cancels a refresh in flight and an old page never overwrites a new one."""
        flt, sort, descending = self.effective_filter(), self.sort, self.descending
        after = self.page_starts[-1]

        def done(rows: list[dict]) -> None:
            if back_if_empty and not rows and len(self.page_starts) > 1:
                self.page_starts.pop()
                self.notify("last page")
                return
            self.show_rows(rows)
        self.load(lambda: self.data.jobs_page(flt, sort, descending, after, PAGE), done,
                  exclusive=exclusive)

    def show_total(self, total: int) -> None:
        self.total = total
        self._counted_at = time.monotonic()
        self.update_status()

    def show_rows(self, rows: list[dict]) -> None:
        self.rows = rows
        now = self.data.now()
        table = self.query_one(JobsTable)
        widths = fit_columns(table, COLUMNS, table_width(table), flexible=FLEXIBLE)
        fill_table(table, [(row["id"], [cells[c] for c in widths])
                           for row in rows for cells in [self.cells(row, now, widths)]])
        self.update_status()
        self.loaded = True
        if self.total is not None and self.total < (len(self.page_starts) - 1) * PAGE + len(rows):
            self.recount()

    def cells(self, row: dict, now: float, widths: dict[str, int]) -> dict:
        error = f"{row['error_type']}: {row['error_message'] or ''}" if row["error_type"] else ""
        args = row["args"] if row["args"] not in (None, "[]") else ""
        if row["kwargs"] not in (None, "{}"):
            args = f"{args} {row['kwargs']}".strip()
        end = row["finished_at"] or (now if row["state"] == "running" else None)

        def cut(text: str, column: str, style: str = "") -> Text:
            # Cut to the column with an ellipsis, never mid-word without one.
            return literal(shorten(text, widths.get(column, 1)), style=style)
        return {
            "✓": Text("●" if row["id"] in self.marked or self.all_marked else " ",
                      style="bold yellow"),
            "id": cut(row["id"], "id"), "task": cut(row["task"], "task"),
            "state": literal(row["state"], style=STATE_STYLE.get(row["state"], "")),
            "enqueued": fmt_time(row["enqueued_at"], now),
            "duration": fmt_duration(row["started_at"], end),
            "error": cut(error, "error", "red"), "args": cut(args, "args"),
            "prio": str(row["priority"] or 0), "tries": str(row["attempts"] or 0),
            "started": fmt_time(row["started_at"], now),
            "finished": fmt_time(row["finished_at"], now),
        }

    def update_status(self) -> None:
        first = (len(self.page_starts) - 1) * PAGE
        shown = f"{first + 1:,}–{first + len(self.rows):,}" if self.rows else "0"
        total = "…" if self.total is None else fmt_count(self.total)
        parts = [f"[b]{shown}[/b] of [b]{total}[/b]",
                 f"sort {self.sort.removesuffix('_at')} {'↓' if self.descending else '↑'}"]
        if self.user_filter is not None:
            parts.append(f"filter [b]{console_markup(self.user_filter.text)}[/b]")
        if self.all_marked:
            parts.append(f"[b yellow]all {total} matching marked[/]")
        elif self.marked:
            parts.append(f"[b yellow]{len(self.marked):,} marked[/]")
        self.query_one(StatusLine).update("  ·  ".join(parts))

    def on_resize(self) -> None:
        if self.loaded:
            self.show_rows(self.rows)  # the columns laid out again for the new width

    def redraw_marks(self) -> None:
        self.show_rows(self.rows)

    # --- keys ----------------------------------------------------------------------------
    def shown_tab(self) -> str | None:
        """The tab to highlight: the filter's state when it names one (a filter that
        names several highlights none), else the chosen tab."""
        states = self.user_filter.states if self.user_filter is not None else ()
        if not states:
            return self.tab
        return states[0] if len(states) == 1 and states[0] in TABS else None

    def show_tabs(self) -> None:
        self.query_one(StateTabs).show(TABS, self.shown_tab())

    def action_tab(self, step: int) -> None:
        current = self.shown_tab() or "all"
        self.tab = TABS[(TABS.index(current) + step) % len(TABS)]
        if self.user_filter is not None and self.user_filter.states:
            # The tab now says the state: the filter's own state terms give way to it.
            self.user_filter = self.data.parse_filter(without_states(self.user_filter.text)) \
                if without_states(self.user_filter.text) else None
            self.query_one(FilterInput).value = self.user_filter.text if self.user_filter else ""
        self.show_tabs()
        self.all_marked = False
        self.reload()

    def action_page(self, step: int) -> None:
        if step > 0:
            if len(self.rows) < PAGE:
                self.notify("last page")
                return
            last = self.rows[-1]
            self.page_starts.append((last[self.sort], last["id"]))
            self.load_page(exclusive=True, back_if_empty=True)
        elif len(self.page_starts) > 1:
            self.page_starts.pop()
            self.load_page(exclusive=True)

    def action_sort(self, column: str) -> None:
        assert column in SORTABLE
        if self.sort == column:
            self.descending = not self.descending
        else:
            self.sort, self.descending = column, column not in ("task", "id")
        self.reload()

    def action_mark(self) -> None:
        table = self.query_one(JobsTable)
        key = cursor_key(table)
        if key is None:
            return
        self.all_marked = False
        self.marked.symmetric_difference_update({key})
        self.redraw_marks()
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)

    def action_mark_all(self) -> None:
        self.all_marked = not self.all_marked
        self.marked.clear()
        self.redraw_marks()

    def action_clear(self) -> None:
        """Esc: forget the marks, else the filter, else the queue scope."""
        if self.marked or self.all_marked:
            self.clear_marks()
        elif self.user_filter is not None:
            self.on_filter_input_cleared()
        elif self.queue is not None:
            self.queue = None
            self.update_topbar()
            self.reload()

    def filter_changed(self) -> None:
        self.all_marked = False
        self.show_tabs()
        self.reload()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_job()

    def action_open_job(self) -> None:
        key = cursor_key(self.query_one(JobsTable))
        if key:
            self.app.open_job(key)

    def cursor_row_data(self) -> dict | None:
        key = cursor_key(self.query_one(JobsTable))
        return next((row for row in self.rows if row["id"] == key), None)

    def action_pause(self) -> None:
        row = self.cursor_row_data()
        queue = row["queue"] if row else self.queue
        if queue:
            self.toggle_pause(queue)

    def action_pause_task(self) -> None:
        row = self.cursor_row_data()
        if row:
            self.toggle_pause(row["queue"], row["task"])

    def selection(self, action: str):
        if self.all_marked:
            return None, self.effective_filter()
        if self.marked:
            return sorted(self.marked), None
        key = cursor_key(self.query_one(JobsTable))
        return ([key], None) if key else None

    def clear_marks(self) -> None:
        self.marked.clear()
        self.all_marked = False
        self.redraw_marks()

    def after_action(self) -> None:
        self.clear_marks()
        self.load_count()

"""Widgets shared by the screens: dialogs, the filter line, the banner, formatting.

Nothing here reads data; screens hand these widgets what tq.tui.data fetched.

Outside text is shown literally (tq.text): a str cell of a tq Table is never
markup (Table turns it into `literal()` Text), and a str given to a Static,
Label, border title or notification is Textual markup, so outside values in it
go through `console_markup()`.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, DataTable, Input, Label, Static

from tq.text import literal, visible

BARS = "▁▂▃▄▅▆▇█"


# --- formatting --------------------------------------------------------------------------

def fmt_count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def fmt_age(seconds: float | None) -> str:
    """Compact age for narrow columns: 45s, 12m, 3.5h, 2d."""
    if seconds is None:
        return ""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def fmt_time(value: float | None, now: float | None = None) -> str:
    """UTC like the CLI; the date only when it is not today's."""
    if not value:
        return ""
    moment = datetime.fromtimestamp(value, timezone.utc)
    if now is not None and moment.date() == datetime.fromtimestamp(now, timezone.utc).date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%m-%d %H:%M")


def fmt_duration(start: float | None, end: float | None) -> str:
    if not start or not end:
        return ""
    seconds = end - start
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else fmt_age(seconds)


def shorten(text: str | None, width: int) -> str:
    """One line of at most `width` characters, control characters made visible."""
    text = visible(" ".join((text or "").split()))
    return text if len(text) <= width else text[:max(1, width - 1)] + "…"


def sparkline(values: Sequence[float], width: int) -> str:
    """The last `width` values as block characters, scaled to their maximum."""
    values = list(values)[-width:]
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return BARS[0] * len(values)
    return "".join(BARS[min(len(BARS) - 1, int(v / top * (len(BARS) - 1) + 0.5))]
                   for v in values)


# --- tables ------------------------------------------------------------------------------

def as_cell(value: Any) -> Any:
    """What a table shows for `value`: a str as written (DataTable reads a str
    cell as markup: `[/]` in a job's data would crash the console)."""
    return literal(value) if isinstance(value, str) else value


class Table(DataTable):
    """A DataTable whose str cells are shown literally, and that redraws once its
    column widths are measured.

    Textual 8.2 measures new rows' widths on idle but keeps lines it drew before
    that in its caches, so a frame drawn in between could stay on screen with
    cells cut to the header's width until a cell changed."""

    def add_row(self, *cells: Any, **options: Any):
        return super().add_row(*(as_cell(value) for value in cells), **options)

    def update_cell(self, row_key, column_key, value: Any, **options: Any) -> None:
        super().update_cell(row_key, column_key, as_cell(value), **options)

    async def _on_idle(self, event) -> None:
        widths = [column.content_width for column in self.columns.values()]
        await super()._on_idle(event)
        if widths != [column.content_width for column in self.columns.values()]:
            self.notify_style_update()


def fill_table(table: DataTable, rows: Iterable[tuple[str, Sequence[Any]]]) -> None:
    """Replace a table's rows, keeping the cursor on the same row key if it is still
    there (a refresh must not throw the operator's cursor back to the top)."""
    rows = [(key, [as_cell(value) for value in cells]) for key, cells in rows]
    current = None
    if table.row_count and 0 <= table.cursor_row < table.row_count:
        current = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    same_keys = [key.value for key in table.rows] == [key for key, _ in rows]
    if same_keys:
        columns = list(table.columns)
        for key, cells in rows:
            for column, cell in zip(columns, cells):
                if table.get_cell(key, column) != cell:
                    table.update_cell(key, column, cell, update_width=True)
        return
    column = table.cursor_column
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    keys = [key for key, _ in rows]
    if current in keys:
        table.move_cursor(row=keys.index(current), column=column, animate=False)


def cursor_key(table: DataTable) -> str | None:
    if not table.row_count:
        return None
    return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value


# --- bars --------------------------------------------------------------------------------

class TopBar(Static):
    """One line: where you are, who is alive, how fresh the data is."""


class Banner(Static):
    """Shown while the queue backend or the history database cannot be reached."""

    def show_error(self, text: str | None) -> None:
        self.display = bool(text)
        if text:
            self.update(text)


class StatusLine(Static):
    """Counts, paging, sort and filter of the table below it."""


class StateTabs(Static):
    """One-line tabs (the built-in Tabs widget takes two lines of an 80x24 terminal)."""

    def show(self, names: Sequence[str], active: str) -> None:
        text = Text()
        for name in names:
            text.append(f" {name} ", style="reverse bold" if name == active else "")
            text.append(" ")
        self.update(text)


class FilterInput(Input):
    """`/` opens it; Enter applies the filter, Esc closes it (and clears the filter)."""

    BINDINGS = [Binding("escape", "clear", "Clear filter", show=False)]

    class Applied(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Cleared(Message):
        pass

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Applied(event.value.strip()))

    def action_clear(self) -> None:
        self.value = ""
        self.post_message(self.Cleared())


# --- dialogs -------------------------------------------------------------------------------

class ConfirmDialog(ModalScreen[bool]):
    """Asks before any action, with the exact count it will touch; default is no."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n", "answer(False)", "No"),
                Binding("escape", "answer(False)", "No")]

    def __init__(self, question: str, confirm: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            # Literal: the question names tasks, queues and errors from outside.
            yield Label(literal(self.question, multiline=True), id="question")
            with Horizontal(id="buttons"):
                yield Button(f"{self.confirm} (y)", variant="error", id="yes")
                yield Button("Cancel (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class PromptDialog(ModalScreen[str | None]):
    """One line of input with completion: `:` screen names, task names to pause."""

    BINDINGS = [Binding("escape", "dismiss_none", "Cancel")]

    def __init__(self, prompt: str, suggestions: Sequence[str] = (), value: str = "",
                 hint: str = "") -> None:
        super().__init__()
        self.prompt = prompt
        self.suggestions = list(suggestions)
        self.value = value
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.prompt, id="question")
            yield Input(self.value, suggester=SuggestFromList(self.suggestions,
                                                              case_sensitive=False),
                        id="prompt")
            if self.hint:
                yield Label(self.hint, id="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """`?`: every key of the screen it was opened on, with what it does."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, title: str, keys: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.keys = keys

    def compose(self) -> ComposeResult:
        table = Table(id="help-keys", cursor_type="none", show_header=False)
        table.add_columns("key", "action")
        for key, description in self.keys:
            table.add_row(Text(key, style="bold"), description)
        with Vertical(id="dialog"):
            yield Label(f"Keys: {self.title_text}", id="question")
            yield table
            yield Label("Esc closes", id="hint")

"""Widgets shared by the screens: dialogs, the filter line, the banner, formatting.

Nothing here reads data; screens hand these widgets what tq.tui.data fetched.

Outside text is shown literally (tq.text): a str cell of a tq Table is never
markup (Table turns it into `literal()` Text), and a str given to a Static,
Label, border title or notification is Textual markup, so outside values in it
go through `console_markup()`.
"""
from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, DataTable, Input, Label, OptionList, Static
from textual.widgets.data_table import ColumnKey, RowKey

# The console's formatting is tq.format's, one rule with the CLI (imported for the screens).
from tq.format import BARS
from tq.format import fmt_age as fmt_age
from tq.format import fmt_count as fmt_count
from tq.format import fmt_duration as fmt_duration
from tq.format import fmt_time as fmt_time
from tq.format import fmt_times as fmt_times
from tq.format import sparkline as format_sparkline
from tq.text import literal, visible

# --- formatting --------------------------------------------------------------------------

def sparkline(values: Sequence[int | float | None], top: float, style: str = "cyan") -> Text:
    """tq.format's sparkline on the screen's scale `top` (so bars of different rows
    compare): the baseline (nothing) dim, the bars in `style`, an unknown value a gap."""
    text = Text()
    for char in format_sparkline(values, top):
        text.append(char, style="dim" if char == BARS[0] else "" if char == " " else style)
    return text


def shorten(text: str | None, width: int) -> str:
    """One line of at most `width` characters, control characters made visible."""
    text = visible(" ".join((text or "").split()))
    return text if len(text) <= width else text[:max(1, width - 1)] + "…"


def bucket(values: Sequence[int | None], size: int) -> list[int | None]:
    """Sum consecutive runs of `size` values (oldest first); None when all are unknown."""
    out = []
    for start in range(0, len(values), size):
        known = [v for v in values[start:start + size] if v is not None]
        out.append(sum(known) if known else None)
    return out


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

    BINDINGS = [Binding("j", "cursor_down", "Down", show=False),
                Binding("k", "cursor_up", "Up", show=False)]

    def add_row(self, *cells: Any, **options: Any) -> RowKey:
        return super().add_row(*(as_cell(value) for value in cells), **options)

    def update_cell(self, row_key: RowKey | str, column_key: ColumnKey | str, value: Any,
                    **options: Any) -> None:
        super().update_cell(row_key, column_key, as_cell(value), **options)

    async def _on_idle(self, event: events.Idle) -> None:
        widths = [column.content_width for column in self.columns.values()]
        await super()._on_idle(event)
        if widths != [column.content_width for column in self.columns.values()]:
            self.notify_style_update()


# table -> the (name, width) columns fit_columns last gave it
_layouts: weakref.WeakKeyDictionary[DataTable[Any], tuple[tuple[str, int], ...]] = \
    weakref.WeakKeyDictionary()


def fit_columns(table: DataTable[Any], specs: Sequence[tuple[str, int]], width: int,
                flexible: str | None = None) -> dict[str, int]:
    """Lay out `table`'s columns for `width` cells: in order (the most telling first),
    as many as fit at their width, `flexible` taking what is left, so a column is
    never cut at the edge and no horizontal scrollbar appears. Re-adds the columns
    (which clears the rows) only when the layout changes; returns {name: width}."""
    pad = 2 * table.cell_padding
    chosen: list[list[Any]] = []
    used = 0
    for name, size in specs:
        if used + size + pad > width:
            break
        chosen.append([name, size])
        used += size + pad
    for entry in chosen:
        if entry[0] == flexible:
            entry[1] += width - used
    layout = tuple((name, size) for name, size in chosen)
    if _layouts.get(table) != layout:
        table.clear(columns=True)
        for name, size in layout:
            table.add_column(name, key=name, width=size)
        _layouts[table] = layout
    return dict(layout)


def ellipsize(cell: Any, width: int) -> Any:
    """A cell cut to `width` with an ellipsis, never cut mid-word without one."""
    cell = as_cell(cell)  # a str is outside text: literal, never markup
    if isinstance(cell, Text) and cell.cell_len > width:
        cell = cell.copy()
        cell.truncate(width, overflow="ellipsis")
    return cell


def natural_width(cell: Any) -> int:
    """The cells `cell` takes as shown (a str literally, control characters escaped)."""
    cell = as_cell(cell)
    return cell.cell_len if isinstance(cell, Text) else cell_len(str(cell))


def table_width(table: DataTable[Any]) -> int:
    """The cells a table's columns may use: its width less the vertical scrollbar."""
    width = table.size.width or table.screen.size.width or table.app.size.width
    return max(10, width - table.styles.scrollbar_size_vertical)


def fill_table(table: DataTable[Any], rows: Iterable[tuple[str, Sequence[Any]]],
               current: str | None = None) -> None:
    """Replace a table's rows, keeping the cursor on the same row key if it is still
    there (a refresh must not throw the operator's cursor back to the top)."""
    rows = [(key, [as_cell(value) for value in cells]) for key, cells in rows]
    if current is None and table.row_count and 0 <= table.cursor_row < table.row_count:
        current = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    same_keys = [key.value for key in table.rows] == [key for key, _ in rows]
    if same_keys:
        columns = list(table.columns)
        for key, cells in rows:
            for column_key, cell in zip(columns, cells):
                if table.get_cell(key, column_key) != cell:
                    table.update_cell(key, column_key, cell, update_width=True)
        return
    column = table.cursor_column
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    keys = [key for key, _ in rows]
    if current in keys:
        table.move_cursor(row=keys.index(current), column=column, animate=False)


def cursor_key(table: DataTable[Any]) -> str | None:
    if not table.row_count:
        return None
    return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value


# --- bars --------------------------------------------------------------------------------

class TopBar(Static):
    """One line: where you are, who is alive, how fresh the data is."""


class Banner(Static):
    """Shown while the queue backend or the history database cannot be reached: one
    line per server that does not answer (TqApp.server_failed), on every screen."""

    def show_error(self, text: str | None) -> None:
        self.display = bool(text)
        if text:
            self.update(Text(text))  # carries a server's error message: never markup


class StatusLine(Static):
    """Counts, paging, sort and filter of the table below it."""


class StateTabs(Static):
    """One-line tabs (the built-in Tabs widget takes two lines of an 80x24 terminal)."""

    def show(self, names: Sequence[str], active: str | None) -> None:
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

    def __init__(self, question: str, confirm: str = "Yes", keep: str = "Keep") -> None:
        super().__init__()
        self.question = question
        # The two buttons never share a word: "Cancel jobs" against "Keep", not two
        # "Cancel"s; an action's label names what it does to what.
        self.confirm = confirm if confirm.lower() != "cancel" else "Cancel jobs"
        self.keep = keep

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.question, id="question")  # Textual markup; it wraps
            with Horizontal(id="buttons"):
                yield Button(f"{self.confirm} (y)", variant="error", id="yes")
                yield Button(f"{self.keep} (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_key(self, event: events.Key) -> None:
        # Text typed into the console ("Ready?" on a detail screen opened this dialog
        # with its R) must not answer it with a later "y": any other letter is a "no".
        if event.is_printable and event.character and event.character not in "yn ":
            event.stop()
            self.notify(f"typed {event.character!r}: not an answer, nothing done "
                        "(y confirms, n or Esc keeps)", severity="warning")
            self.dismiss(False)

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


class PickerDialog(ModalScreen[str | None]):
    """Pick one of a list: type to narrow it, arrows (or Ctrl+N/P) to move, Enter
    takes the highlighted entry (or exactly what was typed when nothing matches)."""

    BINDINGS = [Binding("escape", "dismiss_none", "Cancel"),
                Binding("down,ctrl+n", "move(1)", "Next", show=False),
                Binding("up,ctrl+p", "move(-1)", "Previous", show=False)]

    def __init__(self, prompt: str, choices: Sequence[str], marked: Sequence[str] = (),
                 marked_label: str = "") -> None:
        super().__init__()
        self.prompt = prompt
        self.choices = list(dict.fromkeys([*marked, *choices]))
        self.marked = set(marked)
        self.marked_label = marked_label
        self.shown: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.prompt, id="question", markup=False)
            yield Input(placeholder="type to narrow", id="prompt")
            yield OptionList(id="choices")
            yield Label("↑↓ move · Enter picks · Esc cancels", id="hint")

    def on_mount(self) -> None:
        self.narrow("")

    def narrow(self, text: str) -> None:
        needle = text.strip().lower()
        self.shown = [c for c in self.choices if needle in c.lower()]
        options = self.query_one(OptionList)
        options.clear_options()
        for choice in self.shown:
            label = literal(choice)
            if choice in self.marked and self.marked_label:
                label.append(f"  ({self.marked_label})", style="bold yellow")
            options.add_option(label)
        if self.shown:
            options.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        self.narrow(event.value)

    def action_move(self, step: int) -> None:
        options = self.query_one(OptionList)
        if self.shown:
            current = options.highlighted or 0
            options.highlighted = max(0, min(len(self.shown) - 1, current + step))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        highlighted = self.query_one(OptionList).highlighted
        if self.shown and highlighted is not None:
            self.dismiss(self.shown[highlighted])
        else:
            self.dismiss(event.value.strip() or None)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.shown[event.option_index])

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


def help_rows(height: int) -> int:
    """Rows for the help table: the dialog is at most 90% of the terminal, and its
    border, padding, title and hint take 9 of them."""
    return max(3, int(height * 0.9) - 9)


class HelpScreen(ModalScreen[None]):
    """`?`: every key of the screen it was opened on, with what it does."""

    def __init__(self, title: str, keys: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.keys = keys

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close"),
                Binding("j", "scroll('down')", "Down", show=False),
                Binding("k", "scroll('up')", "Up", show=False)]

    def compose(self) -> ComposeResult:
        # Every key, however many: the table scrolls (arrows, j/k, PgUp/PgDn, wheel)
        # inside a dialog that never grows past the terminal.
        table = Table(id="help-keys", cursor_type="none", show_header=False)
        table.add_columns("key", "action")
        for key, description in self.keys:
            table.add_row(Text(key, style="bold"), description)
        with Vertical(id="dialog"):
            yield Label(f"Keys: {self.title_text} ({len(self.keys)})", id="question")
            yield table
            yield Label("↑↓ j k PgUp PgDn scroll · Esc closes", id="hint")

    def on_mount(self) -> None:
        table = self.query_one("#help-keys", DataTable)
        table.styles.max_height = help_rows(self.app.size.height)
        table.focus()

    def on_resize(self) -> None:
        self.query_one("#help-keys", DataTable).styles.max_height = help_rows(self.size.height)

    def action_scroll(self, direction: str) -> None:
        table = self.query_one("#help-keys", DataTable)
        (table.scroll_down if direction == "down" else table.scroll_up)(animate=False)

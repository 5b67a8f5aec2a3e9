"""What every console screen shares: top bar, banner, footer, loading through
tq.tui.data in workers, read-only enforcement and confirm-then-act."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Footer, Input

from tq.text import console_markup
from tq.tui.data import (
    ActionResult,
    Filter,
    FilterError,
    Preview,
    fetch,
    is_connection_error,
    reason,
    running,
    server_of,
)
from tq.tui.widgets import (
    Banner,
    ConfirmDialog,
    FilterInput,
    StatusLine,
    Table,
    TopBar,
    cursor_key,
    ellipsize,
    fill_table,
    fit_columns,
    natural_width,
    table_width,
)

if TYPE_CHECKING:
    from textual import getters

    from tq.tui.app import TqApp

# Actions that change anything: hidden and refused in a --readonly console.
WRITE_ACTIONS = frozenset({"pause", "pause_task", "requeue", "cancel", "run_now", "purge",
                           "forget"})
ACTION_BINDINGS = [
    Binding("R", "requeue", "Requeue"),
    Binding("c", "cancel", "Cancel"),
    Binding("r", "run_now", "Run now", show=False),
    Binding("ctrl+d", "purge", "Purge", show=False),
]
READ_ONLY = "read-only console"  # the one line every refused action shows
# How an action's outcome is shown (ActionResult.outcome -> notification severity).
SEVERITY: dict[str, SeverityLevel] = {"done": "information", "nothing": "warning", "partly": "warning", "failed": "error"}


class TqScreen(Screen):
    TITLE = ""
    MAIN = "DataTable"  # what has the focus when no dialog or filter line does
    user_filter: Filter | None = None
    loaded = False  # set once the screen has shown its first data (tests and bench wait on it)
    MIN_TICK_SECONDS = 0.0  # a screen whose query is heavy refreshes on the timer this seldom
    _last_tick = 0.0
    SERVER = "history"  # the server this screen's reads need (see TqApp.server_failed)
    if TYPE_CHECKING:
        app = getters.app(TqApp)  # the console's app, with its banners and navigation

    def compose(self) -> ComposeResult:
        yield TopBar(id="topbar")
        yield Banner(id="banner")
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_key(self, event) -> None:
        """A printable key that no binding took (an input takes its own): said, not
        ignored, so text typed into the wrong place is seen to do nothing."""
        if (event.is_printable and event.character and event.character != " "
                and not isinstance(self.focused, Input)
                and event.key not in self.active_bindings
                and not self.refused_key(event.key)):
            self.notify(f"key {event.character!r} does nothing here (? lists the keys)",
                        severity="warning", timeout=3)

    def refused_key(self, key: str) -> bool:
        """Whether `key` is a hidden action of a read-only console (TqApp.run_action
        answers it with READ_ONLY, so it is not also said to do nothing)."""
        if not self.app.readonly:
            return False
        return any(binding.action.removeprefix("screen.").split("(")[0] in WRITE_ACTIONS
                   for _, bindings in self._modal_binding_chain
                   for binding in bindings.key_to_bindings.get(key, ()))

    @property
    def data(self):
        return self.app.data

    def on_mount(self) -> None:
        self.query_one(Banner).show_error(self.app.connection_error)
        self.update_topbar()

    def on_screen_resume(self) -> None:
        self.query_one(Banner).show_error(self.app.connection_error)
        self.update_topbar()
        self.refresh_data()

    # --- refreshing ---------------------------------------------------------------------
    def refresh_data(self) -> None:
        """Start loading what the screen shows (in a worker)."""

    def tick(self) -> None:
        """The app's refresh timer: skipped while the previous refresh still runs, so a
        slow server gets fewer queries, not a pile of them."""
        if running(self, "refresh") or time.monotonic() - self._last_tick < self.MIN_TICK_SECONDS:
            return
        self._last_tick = time.monotonic()
        self.refresh_data()

    def load(self, call: Callable[[], Any], done: Callable[[Any], None], *,
             group: str = "refresh", exclusive: bool = False, server: str | None = None,
             failed: Callable[[BaseException], None] | None = None) -> None:
        """Run `call` (a read from `server`, the screen's SERVER by default) in a worker;
        its answer clears that server's banner, a connection error raises it."""
        server = server or self.SERVER

        def answered(result: Any) -> None:
            self.app.server_answered(server)
            done(result)

        def refused(error: BaseException) -> None:
            if failed is not None:
                failed(error)
            self.load_failed(error, server)
        fetch(self, call, answered, refused, data=self.data, group=group, exclusive=exclusive)

    def load_failed(self, error: BaseException, server: str = "history") -> None:
        if is_connection_error(error):
            self.app.server_failed(server_of(error, server), error)
        else:
            self.notify(f"{type(error).__name__}: {console_markup(error)}", severity="error",
                        timeout=8)

    def topbar_text(self) -> str:
        return ""

    def update_topbar(self) -> None:
        app = self.app
        refresh = f"⟳ {app.interval:g}s" if app.live else "⟳ paused (z)"
        parts = [f"[b]tq[/b] {self.TITLE}", self.topbar_text(), refresh]
        if app.readonly:  # second, so a narrow window (a read token's browser) still shows it
            parts.insert(1, "[reverse] READ-ONLY [/reverse]")
        self.query_one(TopBar).update("  │  ".join(p for p in parts if p))

    def focus_main(self) -> None:
        self.query_one(self.MAIN).focus()

    # --- the filter line (screens that compose a FilterInput) --------------------------------
    def filter_changed(self) -> None:
        """Reload what the screen shows under the new self.user_filter."""

    def action_filter(self) -> None:
        box = self.query_one(FilterInput)
        box.display = True
        box.focus()

    def on_filter_input_applied(self, event: FilterInput.Applied) -> None:
        box = self.query_one(FilterInput)
        try:
            self.user_filter = self.data.parse_filter(event.text) if event.text else None
        except FilterError as exc:
            box.border_title = console_markup(exc)
            box.add_class("error")
            return
        box.border_title = None
        box.remove_class("error")
        box.display = False
        self.focus_main()
        self.filter_changed()

    def on_filter_input_cleared(self, event: FilterInput.Cleared | None = None) -> None:
        box = self.query_one(FilterInput)
        box.value = ""
        box.border_title = None
        box.display = False
        box.remove_class("error")
        self.focus_main()
        if self.user_filter is not None:
            self.user_filter = None
            self.filter_changed()

    # --- acting ---------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in WRITE_ACTIONS and self.app.readonly:
            return False
        return True

    def refuse_if_readonly(self) -> bool:
        if self.app.readonly:
            self.notify(READ_ONLY, severity="warning")
            return True
        return False

    def selection(self, action: str) -> tuple[list[str] | None, Filter | None] | None:
        """What `action` applies to here: (ids, None) or (None, filter); None for nothing."""
        return None

    def act(self, action: str) -> None:
        """Count what `action` would touch, ask with that exact count, then do it."""
        if self.refuse_if_readonly():
            return
        target = self.selection(action)
        if target is None:
            self.notify("nothing selected", severity="warning")
            return
        ids, flt = target
        verb = action.replace("_", " ")
        fetch(self, lambda: self.data.preview(action, ids, flt),
              lambda preview: self._confirm(preview, ids, flt),
              self.action_failed(f"could not count what to {verb}"), data=self.data,
              group="action")

    def _confirm(self, preview: Preview, ids: list[str] | None, flt: Filter | None) -> None:
        if preview.count == 0:
            self.notify(f"nothing to {preview.action.replace('_', ' ')}: "
                        f"no matching job is in a state it applies to", severity="warning")
            return
        run = getattr(self.data, preview.action)
        self.confirm_then(console_markup(preview.text, multiline=True),
                          preview.action.replace("_", " ").capitalize(), lambda: run(ids, flt), lambda result: result.line(),
                          failed=f"{preview.action.replace('_', ' ').capitalize()} failed")

    def confirm_then(self, question: str, label: str, call: Callable[[], Any],
                     describe: Callable[[Any], str], failed: str = "",
                     server: str | None = None) -> None:
        """Ask; on yes run `call` in a worker and say what happened: a success
        notice, a warning for partly done or nothing done, an error (with the
        reason) if it failed or raised: never a success toast for a failure."""
        def answered(yes: bool | None) -> None:
            if yes:
                fetch(self, call, self._acted(describe),
                      self.action_failed(failed or f"{label} failed", server), data=self.data,
                      group="action")
        self.app.push_screen(ConfirmDialog(question, label), answered)

    def _acted(self, describe: Callable[[Any], str]) -> Callable[[Any], None]:
        def done(result: Any) -> None:
            outcome = result.outcome if isinstance(result, ActionResult) else "done"
            # Notifications are markup; the outcome names outside things (ids, errors).
            # Notices are markup: an action's outcome line names outside things (ids,
            # errors), so it is escaped; describe() of a pause already is.
            text = describe(result)
            if isinstance(result, ActionResult):
                text = console_markup(text)
            if outcome not in ("failed", "partly"):
                self.app.server_answered("queue")
                self.app.server_answered("history")
            self.notify(text, severity=SEVERITY[outcome],
                        timeout=4 if outcome == "done" else 12)
            self.after_action()
            self.refresh_data()
        return done

    def action_failed(self, what: str, server: str | None = None
                      ) -> Callable[[BaseException], None]:
        """An action that raised: an error notice saying so (and the banner for an outage)."""
        def failed(error: BaseException) -> None:
            self.notify(f"{what}: {console_markup(reason(error))}; nothing changed",
                        severity="error",
                        timeout=12)
            if is_connection_error(error):
                self.app.server_failed(server_of(error, server or "queue"), error)
        return failed

    def toggle_pause(self, queue: str, task: str | None = None) -> None:
        """Pause a queue (or one task type in it), or resume it if it is paused."""
        if self.refuse_if_readonly():
            return
        target = f"{queue}/{task}" if task else queue
        what = console_markup(f"task {task} in queue {queue}" if task else f"queue {queue}")

        def ask(paused: set[str]) -> None:
            if target in paused:
                self.confirm_then(f"Resume {what}?", "Resume",
                                  lambda: self.data.resume(queue, task),
                                  lambda moved: f"resumed {what}"
                                  + (f"; {moved:,} held job(s) back on the queue" if moved else ""),
                                  failed=f"Resume of {what} failed")
            else:
                self.confirm_then(f"Pause {what}? Running jobs finish; nothing is dropped.",
                                  "Pause", lambda: self.data.pause(queue, task),
                                  lambda _: f"paused {what}", failed=f"Pause of {what} failed")
        fetch(self, self.data.paused_targets, ask,
              self.action_failed(f"could not read whether {what} is paused"), data=self.data,
              group="action")

    def after_action(self) -> None:
        """Forget marks and the like once an action has run."""

    def action_requeue(self) -> None:
        self.act("requeue")

    def action_cancel(self) -> None:
        self.act("cancel")

    def action_run_now(self) -> None:
        self.act("run_now")

    def action_purge(self) -> None:
        self.act("purge")


class TableScreen(TqScreen):
    """A status line over one table, filled from one Data method on every refresh."""
    COLUMNS: tuple[str, ...] = ()
    SOURCE = ""  # the Data method that returns what the table shows

    def compose_body(self) -> ComposeResult:
        yield StatusLine(id="status")
        table = Table(id="table", cursor_type="row", zebra_stripes=True)
        for name in self.COLUMNS:
            table.add_column(name, key=name)
        yield table

    def on_mount(self) -> None:
        super().on_mount()
        self.focus_main()

    def refresh_data(self) -> None:
        self.load(getattr(self.data, self.SOURCE), self.show)

    def show(self, rows: Any) -> None:
        raise NotImplementedError

    # Columns take their data's width up to MAX_WIDTH, in COLUMNS order as many as
    # the terminal holds (widgets.fit_columns), FLEXIBLE taking what is left, and a
    # cell wider than its column ends in an ellipsis.
    MAX_WIDTH = 40
    FLEXIBLE: str | None = None
    ORDER: tuple[str, ...] = ()  # the order shown, most telling first (default COLUMNS)

    def fill(self, rows: Iterable[tuple[str, Sequence[Any]]]) -> None:
        rows = list(rows)
        table = self.query_one(Table)
        current = cursor_key(table)
        index = {name: i for i, name in enumerate(self.COLUMNS)}
        specs = [(name, min(self.MAX_WIDTH, max([cell_len(name)] + [
            natural_width(cells[index[name]]) for _, cells in rows])))
            for name in self.ORDER or self.COLUMNS]
        widths = fit_columns(table, specs, table_width(table), flexible=self.FLEXIBLE)
        fill_table(table, [(key, [ellipsize(cells[index[name]], width)
                                  for name, width in widths.items()])
                           for key, cells in rows], current=current)
        self._rows = rows

    def on_resize(self) -> None:
        if getattr(self, "_rows", None) is not None:
            self.fill(self._rows)

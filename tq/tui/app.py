"""The console shell: screens as modes, global keys, refresh timer, command palette.

Each screen keeps its own state (tab, filter, page, marks) while another is
shown, because every screen is a Textual mode with its own stack; job detail
is pushed on top of the screen it was opened from.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode
from textual.screen import Screen
from textual.timer import Timer

from tq.config import BackendUnavailable
from tq.format import first_line
from tq.text import console_markup, visible
from tq.tui.data import SERVERS, Data, fetch, is_connection_error
from tq.tui.screens.audit import AuditScreen
from tq.tui.screens.base import READ_ONLY, WRITE_ACTIONS, TqScreen
from tq.tui.screens.failed import FailedScreen
from tq.tui.screens.ingest import IngestScreen
from tq.tui.screens.job_detail import JobDetailScreen
from tq.tui.screens.jobs import JobsScreen
from tq.tui.screens.periodic import PeriodicScreen
from tq.tui.screens.queues import QueuesScreen
from tq.tui.screens.workers import WorkersScreen
from tq.tui.widgets import Banner, HelpScreen, PromptDialog

if TYPE_CHECKING:
    from tq.runtime import Runtime

SCREENS: dict[str, type[TqScreen]] = {"queues": QueuesScreen, "jobs": JobsScreen, "failed": FailedScreen,
           "workers": WorkersScreen, "periodic": PeriodicScreen, "ingest": IngestScreen,
           "audit": AuditScreen}
INTERVALS = (0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
DEFAULT_INTERVAL = 1.5


def tq_bindings(screen: Screen[Any]) -> list[tuple[Binding, DOMNode]]:
    """The keys tq defines that work on `screen` now, from the classes that declare
    them (focused tq widget, screen, app): not Textual's own cursor and focus keys,
    not the actions a --readonly console hides."""
    app = screen.app
    sources: list[tuple[DOMNode, Any]] = [
        (screen, type(screen).__dict__.get("BINDINGS", ())), (app, TqApp.BINDINGS)]
    focused = screen.focused
    if focused is not None:
        # Every tq class the focused widget is made of (JobsTable's h/l, Table's j/k).
        sources[:0] = [(focused, cls.__dict__.get("BINDINGS", ()))
                       for cls in type(focused).__mro__ if cls.__module__.startswith("tq.")]
    found: list[tuple[Binding, DOMNode]] = []
    keys: set[str] = set()
    for node, bindings in sources:
        for binding in Binding.make_bindings(bindings):
            action = binding.action.removeprefix("screen.").split("(")[0]
            if not binding.description or binding.key in keys or \
                    not screen.check_action(action, ()):
                continue
            keys.add(binding.key)
            found.append((binding, node))
    return found


class TqCommands(Provider):
    """Ctrl+P: every screen, and every action the current screen offers."""

    def commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = self.app
        assert isinstance(app, TqApp)  # the provider is only installed by TqApp.COMMANDS
        found: list[tuple[str, str, Callable[[], object]]] = [(f"Go to {name}", f"screen :{name} (key {number})", partial(app.goto, name))
                 for number, name in enumerate(SCREENS, 1)]
        seen: set[str] = set()
        for binding, node in tq_bindings(self.screen):
            if binding.action in seen or binding.action.startswith("goto("):
                continue
            seen.add(binding.action)
            found.append((binding.description, f"key {app.get_key_display(binding)}",
                          partial(app.run_action, binding.action, node)))
        return found

    async def discover(self) -> Hits:
        for name, help_text, callback in self.commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self.commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class TqApp(App):
    TITLE = "tq"
    CSS_PATH = Path(__file__).with_name("tq.tcss")  # absolute: subclasses live elsewhere
    MODES = dict(SCREENS)
    DEFAULT_MODE = "queues"
    COMMANDS = App.COMMANDS | {TqCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]
    BINDINGS = [
        # The footer of an 80-column terminal has room for a screen's main keys and
        # "? Help"; help lists every key, these included.
        Binding("q", "quit", "Quit", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("colon", "jump", "Go to (:q quits)", show=False),
        Binding("plus", "interval(-1)", "Faster", show=False),
        Binding("minus", "interval(1)", "Slower", show=False),
        Binding("z", "toggle_live", "Pause refresh", show=False),
        *[Binding(str(number), f"goto('{name}')", name.capitalize(), show=False)
          for number, name in enumerate(SCREENS, 1)],
    ]

    def __init__(self, data: Data, interval: float = DEFAULT_INTERVAL, live: bool = True
                 ) -> None:
        super().__init__()
        self.data = data
        self.readonly = data.readonly
        self.interval = interval
        self.live = live
        self.lost: dict[str, str] = {}  # server -> its banner line, while it does not answer
        self._lost_since: dict[str, float] = {}
        self._timer: Timer | None = None

    async def run_action(self, action: Any, default_namespace: DOMNode | None = None,
                         namespaces: Any = None) -> bool:
        # A read-only console hides its actions (check_action), but a key pressed out
        # of habit is answered, not silently dropped: refused here, before any screen
        # method (and so any tq.ops call) runs.
        if self.readonly:
            name = action if isinstance(action, str) else action[1]
            if name.removeprefix("screen.").split("(")[0] in WRITE_ACTIONS:
                self.notify(READ_ONLY, severity="warning")
                return True
        return await super().run_action(action, default_namespace, namespaces)

    def on_mount(self) -> None:
        self._timer = self.set_interval(self.interval, self.tick, pause=not self.live)

    def tick(self) -> None:
        self.tick_probes()
        screen = self.screen
        if isinstance(screen, TqScreen):
            screen.tick()

    # --- a banner per server --------------------------------------------------------------
    # Each server's state is its own: a read that the queue backend answered says
    # nothing about the history database, so only an answer from a server (a read
    # of a screen, or the probe every refresh sends to each server whatever the
    # screen shows) clears that server's banner.
    def tick_probes(self) -> None:
        for server in SERVERS:
            if not any(w.group == f"probe-{server}" and not w.is_finished for w in self.workers):
                fetch(self, partial(self.data.probe, server),
                      partial(self._probe_answered, server), partial(self.server_failed, server),
                      data=self.data, group=f"probe-{server}")

    def _probe_answered(self, server: str, _answer: object) -> None:
        self.server_answered(server)

    def server_failed(self, server: str, error: BaseException) -> None:
        if not is_connection_error(error):
            self.notify(f"{SERVERS[server]}: {type(error).__name__}: {console_markup(error)}",
                        severity="error", timeout=8)
            return
        first = first_line(error)
        self._lost_since.setdefault(server, time.monotonic())
        # BackendUnavailable's line names the server already; a driver's error says
        # what the server said (never its class name).
        said = first if isinstance(error, BackendUnavailable) else \
            f"{SERVERS[server]} unreachable: {first}"
        self.lost[server] = f"{visible(said[:200])} — retrying every {self.interval:g}s"
        self._show_banner()

    def server_answered(self, server: str) -> None:
        if self.lost.pop(server, None) is None:
            return
        down = time.monotonic() - self._lost_since.pop(server, time.monotonic())
        self._show_banner()
        self.notify(f"{SERVERS[server]} back (after {down:.0f}s)")

    @property
    def connection_error(self) -> str | None:
        """Every server's banner line, or None while all answer."""
        return "\n".join(self.lost[s] for s in SERVERS if s in self.lost) or None

    def _show_banner(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, TqScreen) and screen.is_mounted:
                # query, not query_one: a screen mounted but not yet composed has
                # no banner yet (it shows the current error when it mounts one),
                # and a failure reported at that moment took the console down.
                for banner in screen.query("#banner").results(Banner):
                    banner.show_error(self.connection_error)

    # --- navigation -------------------------------------------------------------------------
    async def goto(self, name: str) -> None:
        await self.switch_mode(name)

    async def action_goto(self, name: str) -> None:
        await self.goto(name)

    def open_jobs(self, queue: str | None = None, filter_text: str | None = None,
                  tab: str | None = None) -> None:
        """The Jobs screen scoped to a queue and/or a filter (Enter on Queues, Failed)."""
        async def go() -> None:
            await self.switch_mode("jobs")
            if isinstance(self.screen, JobsScreen):
                self.screen.scope(queue, filter_text=filter_text or "", tab=tab or "all")
        self.run_worker(go(), group="navigate", exclusive=True)

    def open_job(self, job_id: str) -> None:
        """Job detail: one screen, however far f/n follow requeue links (its trail)."""
        if isinstance(self.screen, JobDetailScreen):
            self.screen.go(job_id)
        else:
            self.push_screen(JobDetailScreen(job_id))

    def action_jump(self) -> None:
        def chosen(name: str | None) -> None:
            if not name:
                return
            name = name.lstrip(":").lower()
            if name in ("q", "quit", "q!", "qa"):
                self.exit()
                return
            match = [screen for screen in SCREENS if screen.startswith(name)]
            if match:
                self.run_worker(self.goto(match[0]), group="navigate", exclusive=True)
            else:
                self.notify(f"no screen {console_markup(repr(name))} "
                            f"(screens: {', '.join(SCREENS)})",
                            severity="error")
        self.push_screen(PromptDialog("Go to screen", list(SCREENS),
                                      hint=" ".join(f":{name}" for name in SCREENS)
                                      + "  ·  :q quits"), chosen)

    def action_help(self) -> None:
        screen = self.screen
        if not isinstance(screen, TqScreen):
            return
        keys = [(self.get_key_display(binding), binding.description)
                for binding, _ in tq_bindings(screen)]
        keys.append(("ctrl+p", "Command palette: every screen and action"))
        self.push_screen(HelpScreen(screen.TITLE, keys))

    # --- refresh ----------------------------------------------------------------------------
    def action_interval(self, step: int) -> None:
        index = min(range(len(INTERVALS)), key=lambda i: abs(INTERVALS[i] - self.interval))
        self.interval = INTERVALS[max(0, min(len(INTERVALS) - 1, index + step))]
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_interval(self.interval, self.tick, pause=not self.live)
        self.notify(f"refresh every {self.interval:g}s", timeout=2)
        self._update_topbars()

    def action_toggle_live(self) -> None:
        self.live = not self.live
        if self._timer is not None:
            (self._timer.resume if self.live else self._timer.pause)()
        self.notify("refresh " + ("on" if self.live else "paused (z resumes)"), timeout=2)
        self._update_topbars()

    def _update_topbars(self) -> None:
        if isinstance(self.screen, TqScreen):
            self.screen.update_topbar()


def run_tui(runtime: Runtime, readonly: bool = False) -> int:
    """`tq tui`: run the console until `q`; the exit status of the command."""
    TqApp(Data(runtime, readonly=readonly)).run()
    return 0

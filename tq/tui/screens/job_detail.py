"""Everything about one job: arguments, result, each attempt, the traceback, requeue links.

One detail screen however far `f`/`n` follow requeue links: each step shows the
other job in place and remembers the way (the trail, shown in the top bar);
Esc steps back along it, and leaves the screen from the first job.
"""
from __future__ import annotations

import json

from rich.console import ConsoleRenderable, Group
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from tq.text import console_markup, literal, visible
from tq.tui.screens.base import ACTION_BINDINGS, TqScreen
from tq.tui.widgets import fmt_duration, fmt_times, shorten

# ANSI themes follow the terminal's own colours.
THEME = "ansi_dark"
RESULT_SHOWN = 4000  # characters of a result shown (all of it: tq show --json)


class JobDetailScreen(TqScreen):
    TITLE = "Job"
    BINDINGS = [
        Binding("escape,backspace", "back", "Back"),
        *ACTION_BINDINGS,
        Binding("p", "pause", "Pause queue", show=False),
        Binding("f", "follow('from')", "Requeued from (same screen; Esc back)", show=False),
        Binding("n", "follow('to')", "Requeued to (same screen; Esc back)", show=False),
    ]

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.job: dict | None = None
        self.trail: list[str] = []  # the jobs followed to get here, first one first

    def compose_body(self) -> ComposeResult:
        # Narrow: one column, the traceback right after the summary. Wide: a 2x2 grid.
        with VerticalScroll(id="detail"):
            yield Static(id="summary")
            yield Static(id="traceback", classes="section")
            yield Static(id="attempts", classes="section")
            yield Static(id="args", classes="section")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#detail").focus()

    def topbar_text(self) -> str:
        crumbs = [console_markup(shorten(job, 14)) for job in self.trail[-3:]]
        if len(self.trail) > 3:
            crumbs.insert(0, "…")
        return " › ".join([*crumbs, f"[b]{console_markup(self.job_id)}[/b]"])

    def go(self, job_id: str, back: bool = False) -> None:
        """Show another job here (a requeue link followed, or a step back)."""
        if not back:
            self.trail.append(self.job_id)
        self.job_id = job_id
        self.job = None
        self.loaded = False
        self.update_topbar()
        self.query_one("#detail").scroll_home(animate=False)
        self.load(lambda: self.data.job(job_id), self.show, exclusive=True)

    def refresh_data(self) -> None:
        job_id = self.job_id
        self.load(lambda: self.data.job(job_id), self.show)

    def show(self, job: dict | None) -> None:
        if job is not None and job.get("id") not in (None, self.job_id):
            return  # a read of the job shown before `go`
        self.job = job
        self.loaded = True
        if job is None:
            self.query_one("#summary", Static).update(
                literal(f"no job {self.job_id!r} in history (purged, or not written yet)",
                        style="bold red"))
            return
        now = self.data.now()
        summary = Table.grid(padding=(0, 2))
        summary.add_column(style="bold", justify="right")
        summary.add_column()
        rows = [("state", literal(job["state"], style="bold")), ("task", job["task"]),
                ("queue", job["queue"]), ("priority", job["priority"]),
                ("attempts", f"{job['attempts'] or 0} of {1 + (job['max_retries'] or 0)}"),
                ("worker", job["worker"]),
                *zip(("enqueued", "eta", "started", "finished"),
                     fmt_times([job["enqueued_at"], job["eta"], job["started_at"],
                                job["finished_at"]], now)),
                ("duration", fmt_duration(job["started_at"], job["finished_at"])),
                ("error", literal(f"{job['error_type']}: {job['error_message']}", style="red")
                 if job.get("error_type") else ""),
                ("requeued from", job["requeued_from"] and f"{job['requeued_from']}  (f)"),
                ("requeued to", f"{', '.join(job['requeued_to'])}  (n)"
                 if job["requeued_to"] else None)]
        for label, value in rows:
            if value not in (None, ""):
                summary.add_row(label, value if isinstance(value, Text) else literal(value))
        self.query_one("#summary", Static).update(summary)
        arguments = {"args": job["args"], "kwargs": job["kwargs"]}
        parts: list[ConsoleRenderable] = [
            Text("arguments", style="bold underline"),
            Syntax(visible(json.dumps(arguments, indent=2, ensure_ascii=False), multiline=True),
                   "json", theme=THEME, background_color="default", word_wrap=True)]
        if job.get("has_result"):
            # Made visible, never markup: a result is outside text like the arguments.
            text = json.dumps(job["result"], indent=2, ensure_ascii=False, sort_keys=True)
            cut = len(text) > RESULT_SHOWN
            parts += [Text("result", style="bold underline"),
                      Syntax(visible(text[:RESULT_SHOWN], multiline=True), "json", theme=THEME,
                             background_color="default", word_wrap=True)]
            if cut:
                parts.append(Text(f"(cut at {RESULT_SHOWN:,} characters: tq show --json "
                                  "for all of it)", style="dim"))
        self.query_one("#args", Static).update(Group(*parts))
        attempts = Table(box=None, header_style="bold", expand=True)
        for column in ("#", "outcome", "started", "finished", "took", "worker"):
            attempts.add_column(column, no_wrap=True)
        attempts.add_column("error", overflow="fold", ratio=1)
        moments = fmt_times([t for a in job["attempt_log"]
                             for t in (a["started_at"], a["finished_at"])], now)
        for index, attempt in enumerate(job["attempt_log"]):
            error = (f"{attempt['error_type']}: {attempt['error_message']}"
                     if attempt.get("error_type") else "")
            attempts.add_row(str(attempt["attempt"]), literal(attempt["outcome"] or "running"),
                             moments[2 * index], moments[2 * index + 1],
                             fmt_duration(attempt["started_at"], attempt["finished_at"]),
                             literal(attempt["worker"] or ""), literal(error, style="red"))
        self.query_one("#attempts", Static).update(Group(
            Text("attempts", style="bold underline"),
            attempts if job["attempt_log"] else Text("none yet")))
        traceback = visible((job.get("traceback") or "").rstrip(), multiline=True)
        self.query_one("#traceback", Static).update(Group(
            Text("traceback", style="bold underline"),
            Syntax(traceback, "pytb", theme=THEME, background_color="default",
                   word_wrap=True) if traceback else Text("none")))

    # --- keys ----------------------------------------------------------------------------
    def action_back(self) -> None:
        if self.trail:
            self.go(self.trail.pop(), back=True)
        else:
            self.app.pop_screen()

    def action_follow(self, direction: str) -> None:
        if self.job is None:
            return
        target = (self.job["requeued_from"] if direction == "from"
                  else (self.job["requeued_to"] or [None])[-1])
        if target:
            self.app.open_job(target)
        else:
            self.notify(f"not requeued {direction} another job")

    def action_pause(self) -> None:
        if self.job and self.job["queue"]:
            self.toggle_pause(self.job["queue"])

    def selection(self, action: str):
        return [self.job_id], None

"""The console shows hostile text literally on every screen, and keeps running.

History rows, a consumer heartbeat, a paused task, an ingested file and a
connection error hold Rich/Textual markup (`[/]`, `[bold]`, `[$accent]`,
`[link=...]`), ESC sequences and bidi overrides. Every screen is opened (Queues,
Jobs and each tab, the filter line, Job detail, a confirm dialog, Failed and a
group, Workers, Periodic, Ingest, help, the `:` prompt and its notification):
the app must keep running and the screen, as rendered, must show each value in
its visible form (tq.text.visible) with no markup applied.
"""
from __future__ import annotations

import html
import re
import time

from textual.content import Content

from tq import ops
from tq.history import write_records
from tq.models import IngestedFile, state_seq
from tq.tui.screens.failed import FailedScreen
from tq.tui.screens.ingest import IngestScreen
from tq.tui.screens.job_detail import JobDetailScreen
from tq.tui.screens.jobs import TABS, JobsScreen
from tq.tui.screens.periodic import PeriodicScreen
from tq.tui.screens.workers import WorkersScreen
from tq.tui.widgets import ConfirmDialog, FilterInput, HelpScreen, PromptDialog

from test_tui import loaded, make_app, pilot_test, until

QUEUE = "[b]q\x1b[0m"
TASK = "[/]t\x1b[2J"
ERROR_TYPE = "[bold]E"
MESSAGE = "[/]boom\x1b[31m[$accent]"
WORKER = "[i]w\x1b]0;t\x07"
CONSUMER = "[/]c\x1b[31m"
HOST = "[$accent]h\u202e"
PAUSED_TASK = "[/]pt\x1b[0m"
FILE = "[link=x]f\x1b[1m.jsonl"
REASON = "[/]bad\x1b[0m (is its module in [tasks] modules?)"
IDS = ("[/]j1", "[b]j2")


def records(now: float) -> list[dict]:
    return [{"kind": "job", "id": job_id, "state": "failed", "seq": state_seq("failed", 1),
             "queue": QUEUE if index == 0 else "default", "task": TASK, "worker": WORKER,
             "args": '["[/]", "\\u001b[31m", "\\ud800"]', "kwargs": '{"[b]k": "[link=x]v"}',
             "priority": 0, "max_retries": 0, "attempts": 1, "enqueued_at": now - 60 + index,
             "started_at": now - 30, "finished_at": now - 20, "updated_at": now - 20,
             "error_type": ERROR_TYPE, "error_message": MESSAGE,
             "traceback": f"Traceback (most recent call last):\n  [/]\x1b[31mred\n"
                          f"{ERROR_TYPE}: {MESSAGE}"}
            for index, job_id in enumerate(IDS)]


def seed(runtime) -> None:
    now = time.time()
    write_records(runtime.history_db(), records(now))
    runtime.control.heartbeat(CONSUMER, {
        "id": CONSUMER, "host": HOST, "pid": 1, "queues": [QUEUE, "default"], "workers": 1,
        "worker_type": "[/]thread", "started": now, "beat": now})
    ops.pause(runtime, "default", PAUSED_TASK)
    IngestedFile.create(name=FILE, path=FILE, size=10, sha256="0" * 64, accepted=1, rejected=2,
                        started_at=now - 5, finished_at=now - 4, outcome="rejected",
                        reason=REASON, errors_path=FILE + ".errors.jsonl")


def shown(value: str) -> str:
    from tq.text import visible
    return visible(value)


def screen_text(app) -> str:
    """What the terminal shows now, line by line, from Textual's own screenshot."""
    svg = app.export_screenshot()
    lines: dict[float, list[tuple[float, str]]] = {}
    for x, y, text in re.findall(r'<text [^>]*?x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>',
                                 svg):
        lines.setdefault(float(y), []).append((float(x), html.unescape(text)))
    return "\n".join("".join(text for _, text in sorted(parts)).replace("\xa0", " ")
                     for _, parts in sorted(lines.items()))


def running(app) -> None:
    assert app.is_running and app._exception is None, app._exception


async def shows(pilot, *texts: str) -> str:
    """Wait until the screen shows every text (in its visible form, literally)."""
    # Compared without whitespace: the screenshot places cells by position.
    wanted = ["".join(shown(text).split()) for text in texts]
    last = [""]

    def showing() -> str | None:
        last[0] = screen_text(pilot.app)
        flat = "".join(last[0].split())
        return last[0] if all(text in flat for text in wanted) else None
    try:
        found = await until(pilot, showing, timeout=10, message=f"{wanted} on screen")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nscreen:\n{last[0]}") from None
    running(pilot.app)
    assert "\x1b" not in found
    return found


@pilot_test
async def test_every_screen_shows_hostile_text_literally(backend):
    runtime = backend.runtime()
    seed(runtime)
    app = make_app(runtime)
    async with app.run_test(size=(220, 50)) as pilot:
        await loaded(pilot)
        await shows(pilot, CONSUMER, PAUSED_TASK)

        # Jobs: every tab, then the failed ones with their hostile cells.
        await pilot.press("2")
        screen = await loaded(pilot, JobsScreen)
        for _ in TABS:
            await pilot.press("l")
            await loaded(pilot, JobsScreen)
            running(app)
        while screen.tab != "failed":
            await pilot.press("l")
        await loaded(pilot, JobsScreen)
        await shows(pilot, *IDS, TASK, f"{ERROR_TYPE}: {MESSAGE}"[:40], '["[/]", "\\u001b[31m"')

        # The filter line, echoed in the status line (or its error in the box's title).
        box = screen.query_one(FilterInput)
        screen.action_filter()
        box.value = "[/]x:[b]y"
        await pilot.press("enter")
        await shows(pilot, "[/]x:[b]y")
        screen.action_filter()
        box.value = f'error:"{ERROR_TYPE}"'
        await pilot.press("enter")
        await shows(pilot, f'filter error:"{ERROR_TYPE}"')

        # Job detail of the job in the hostile queue, and a confirm dialog naming it.
        app.open_job(IDS[0])
        await loaded(pilot, JobDetailScreen)
        detail = await shows(pilot, IDS[0], TASK, QUEUE, WORKER, f"{ERROR_TYPE}: {MESSAGE}",
                             '"[b]k": "[link=x]v"', "  [/]\x1b[31mred")
        assert "\\ud800" in detail
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), message="dialog")
        await shows(pilot, QUEUE)
        await pilot.press("n")
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), message="dialog")
        await shows(pilot, f"Pause queue {QUEUE}?")
        await pilot.press("n")
        await pilot.press("escape")

        # Failed: the group, then its jobs (the filter built from the hostile type).
        await pilot.press("3")
        await loaded(pilot, FailedScreen)
        # (the group's message is normalised: numbers show as <n>)
        await shows(pilot, ERROR_TYPE, "[/]boom\x1b[<n>m[$accent]", QUEUE)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen), message="group's jobs")
        await loaded(pilot, JobsScreen)
        await shows(pilot, f"'group:{ERROR_TYPE}: [/]boom", *IDS)  # exactly the group (issue 14)

        await pilot.press("4")
        await loaded(pilot, WorkersScreen)
        await shows(pilot, CONSUMER, HOST, f"{QUEUE},default", "1 [/]thread")

        await pilot.press("5")
        await loaded(pilot, PeriodicScreen)
        await shows(pilot, "add them under [periodic]")

        await pilot.press("6")
        await loaded(pilot, IngestScreen)
        await shows(pilot, FILE, REASON[:40], "rejected")

        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), message="help")
        await shows(pilot, "Keys: Ingest")
        await pilot.press("escape")

        # The `:` prompt, and the notification that names what was typed.
        await pilot.press("colon")
        await until(pilot, lambda: isinstance(app.screen, PromptDialog), message="prompt")
        prompt = app.screen.query_one("#prompt")
        prompt.value = "[/]z\x1b[0m"
        prompt.focus()
        await pilot.press("enter")
        # A toast renders its message as Textual markup: read it the way the toast does.
        await until(pilot, lambda: app._notifications, message="notification")
        [toast] = [Content.from_markup(n.message).plain for n in app._notifications]
        assert toast.startswith("no screen '[/]z\\x1b[0m' (screens:"), toast
        running(app)

        # The connection banner, with an error text holding markup.
        app.server_failed("queue", ConnectionError("[/]down\x1b[0m [Errno 111] [$accent]"))
        await shows(pilot, "[/]down\x1b[0m [Errno 111] [$accent]")
        running(app)

"""The console driven headless with Textual's Pilot, on both backends.

The refresh timer is off in these tests (live=False): screens load when shown
and after every action, and each test waits for the state it asserts, so no
test depends on how fast a refresh comes round.
"""
from __future__ import annotations

import asyncio
import functools
import io
import time

import pytest
from rich.console import Console

import tq
from tq.history import write_records
from tq.models import Job, state_seq
from tq.queries import status
from tq.tui.app import TqApp, TqCommands
from tq.tui.data import Data, ReadOnly
from tq.tui.screens.job_detail import JobDetailScreen
from tq.tui.screens.jobs import JobsScreen, JobsTable
from tq.tui.widgets import ConfirmDialog

from conftest import REDIS_URL, wait_for_states
from proxy import CuttableProxy


def pilot_test(func):
    """Run an async Pilot scenario as a plain test (no asyncio plugin needed)."""
    @functools.wraps(func)
    def run(*args, **kwargs):
        asyncio.run(func(*args, **kwargs))
    return run


def make_app(runtime, readonly: bool = False, live: bool = False) -> TqApp:
    return TqApp(Data(runtime, readonly=readonly), live=live)


async def until(pilot, predicate, timeout: float = 15.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            notes = [n.message for n in pilot.app._notifications]
            raise AssertionError(f"timed out waiting for {message}; notifications: {notes}")
        await pilot.pause(0.02)


async def loaded(pilot, screen_type=None):
    app = pilot.app
    await until(pilot, lambda: (screen_type is None or isinstance(app.screen, screen_type))
                and getattr(app.screen, "loaded", False), message="screen data")
    await app.workers.wait_for_complete()
    await pilot.pause()
    return app.screen


async def dialog(pilot) -> ConfirmDialog:
    await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog),
                message="confirmation dialog")
    return pilot.app.screen


def question(screen: ConfirmDialog) -> str:
    return str(screen.query_one("#question").content)


def keys(text: str) -> list[str]:
    return ["space" if char == " " else char for char in text]


def rendered(widget) -> str:
    console = Console(width=200, record=True, color_system=None, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


def failed_records(ids, queue="default", task="tq.tasks.demo.echo", now=None):
    """History rows of jobs that failed, without running anything."""
    now = now or time.time()
    return [{"kind": "job", "id": job_id, "state": "failed", "seq": state_seq("failed", 1),
             "queue": queue, "task": task, "args": f"[{index}]", "kwargs": "{}",
             "priority": 0, "max_retries": 0, "attempts": 1, "enqueued_at": now - 60 + index,
             "started_at": now - 30, "finished_at": now - 20, "updated_at": now - 20,
             "error_type": "RuntimeError", "error_message": f"broken {index}",
             "traceback": "Traceback (most recent call last):\nRuntimeError: broken"}
            for index, job_id in enumerate(ids)]


async def open_jobs_tab(pilot, tab: str) -> JobsScreen:
    await pilot.press("2")
    screen = await loaded(pilot, JobsScreen)
    while screen.tab != tab:
        await pilot.press("l")
    return await loaded(pilot, JobsScreen)


@pilot_test
async def test_queues_screen_shows_configured_queues_with_submitted_counts(backend):
    runtime = backend.runtime()
    tq.submit_many([{"task": "tq.tasks.demo.echo", "args": [i]} for i in range(3)],
                   runtime=runtime)
    tq.submit_many([{"task": "tq.tasks.demo.echo", "queue": "reports"} for _ in range(2)],
                   runtime=runtime)
    tq.submit("tq.tasks.demo.echo", queue="events", delay=3600, runtime=runtime)
    app = make_app(runtime)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await loaded(pilot)
        table = screen.query_one("#queues")
        assert [key.value for key in table.rows] == list(runtime.config.queues)

        def cell(queue, column):
            return str(table.get_cell(queue, column))
        assert (cell("default", "queued"), cell("reports", "queued"),
                cell("events", "queued")) == ("3", "2", "0")
        assert cell("events", "sched") == "1" and cell("default", "sched") == "0"
        assert all(cell(q, "state") == "running" for q in runtime.config.queues)


@pilot_test
async def test_p_pauses_the_queue_under_the_cursor_and_again_resumes_it(backend):
    runtime = backend.runtime()
    app = make_app(runtime)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot)
        await pilot.press("down")  # events
        await pilot.press("p")
        assert question(await dialog(pilot)).startswith("Pause queue events?")
        await pilot.press("y")
        await until(pilot, lambda: status(runtime)["queues"]["events"]["paused"],
                    message="events paused")
        assert not status(runtime)["queues"]["default"]["paused"]
        await until(pilot, lambda: str(app.screen.query_one("#queues").get_cell(
            "events", "state")) == "paused", message="table to show paused")
        await pilot.press("p")
        assert question(await dialog(pilot)) == "Resume queue events?"
        await pilot.press("y")
        await until(pilot, lambda: not status(runtime)["queues"]["events"]["paused"],
                    message="events resumed")


@pilot_test
async def test_requeue_of_three_marked_failed_jobs_creates_three_new_jobs(backend):
    runtime = backend.runtime()
    ids = [f"failed-{n}" for n in range(4)]
    write_records(runtime.history_db(), failed_records(ids))
    app = make_app(runtime)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_jobs_tab(pilot, "failed")
        assert len(screen.rows) == 4
        await pilot.press("space", "space", "space")
        marked = set(screen.marked)
        assert len(marked) == 3
        await pilot.press("R")
        assert question(await dialog(pilot)) == "Requeue 3 failed jobs of task tq.tasks.demo.echo in queue default?"
        await pilot.press("y")
        await until(pilot, lambda: Job.select().where(Job.requeued_from.is_null(False))
                    .count() == 3, message="3 requeued jobs")
    new = list(Job.select().where(Job.requeued_from.is_null(False)))
    assert {job.requeued_from for job in new} == marked
    assert all(job.state == "queued" and job.id not in ids for job in new)
    assert sum(runtime.queue(q).storage.queue_size() for q in runtime.queues) == 3


@pilot_test
async def test_cancel_of_a_scheduled_job(backend):
    runtime = backend.runtime()
    keep = tq.submit("tq.tasks.demo.echo", delay=3600, runtime=runtime)
    job_id = tq.submit("tq.tasks.demo.echo", "cancel me", delay=3600, runtime=runtime)
    app = make_app(runtime)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_jobs_tab(pilot, "scheduled")
        table = screen.query_one(JobsTable)
        table.move_cursor(row=table.get_row_index(job_id))
        await pilot.press("c")
        assert question(await dialog(pilot)) == "Cancel 1 scheduled job of task tq.tasks.demo.echo in queue default?"
        await pilot.press("y")
        await until(pilot, lambda: Job.get_by_id(job_id).state == "canceled",
                    message="job canceled")
        await until(pilot, lambda: [row["id"] for row in screen.rows] == [keep],
                    message="canceled job gone from the scheduled tab")
    assert Job.get_by_id(keep).state == "scheduled"


@pilot_test
async def test_filter_narrows_the_jobs_table_and_escape_clears_it(backend):
    runtime = backend.runtime()
    echo = tq.submit_many([{"task": "tq.tasks.demo.echo", "kwargs": {"customer": n}}
                           for n in range(3)], runtime=runtime)
    sleep = tq.submit_many([{"task": "tq.tasks.demo.sleep", "args": [0.1]} for _ in range(2)],
                           runtime=runtime)
    app = make_app(runtime)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_jobs_tab(pilot, "all")
        assert {row["id"] for row in screen.rows} == set(echo + sleep)
        await pilot.press("slash", *"task:sleep", "enter")
        await until(pilot, lambda: {row["id"] for row in screen.rows} == set(sleep)
                    and screen.total == 2, message="filtered rows")
        assert "1–2 of 2" in rendered(screen.query_one("#status"))
        # Reopened, the line holds the filter selected: typing replaces it.
        await pilot.press("slash", *keys("task:sleep args:customer=2"), "enter")
        await until(pilot, lambda: screen.rows == [] and screen.total == 0)
        await pilot.press("slash", *"args:customer=2", "enter")
        await until(pilot, lambda: [row["id"] for row in screen.rows] == [echo[2]])
        await pilot.press("escape")
        await until(pilot, lambda: len(screen.rows) == 5 and screen.total == 5,
                    message="filter cleared")


@pilot_test
async def test_bad_filter_is_reported_and_changes_nothing(backend):
    runtime = backend.runtime()
    tq.submit("tq.tasks.demo.echo", runtime=runtime)
    app = make_app(runtime)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_jobs_tab(pilot, "all")
        await pilot.press("slash", *"state:bogus", "enter")
        await pilot.pause()
        box = screen.query_one("#filter")
        assert box.display and "unknown state 'bogus'" in str(box.border_title)
        assert screen.user_filter is None and len(screen.rows) == 1


@pilot_test
async def test_job_detail_shows_the_traceback_of_a_failed_job(backend, start_consumer):
    runtime = backend.runtime()
    job_id = tq.submit("tq.tasks.demo.fail", "the disk is full", runtime=runtime)
    consumer = start_consumer(runtime, workers=1)
    wait_for_states(runtime, [job_id], states=("failed",))
    consumer.stop()
    app = make_app(runtime)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_jobs_tab(pilot, "failed")
        assert [row["id"] for row in screen.rows] == [job_id]
        await pilot.press("enter")
        detail = await loaded(pilot, JobDetailScreen)
        assert detail.job_id == job_id
        text = rendered(detail.query_one("#traceback"))
        assert "Traceback (most recent call last)" in text
        assert "RuntimeError: the disk is full" in text
        attempts = rendered(detail.query_one("#attempts"))
        assert "failed" in attempts and "RuntimeError" in attempts
        await pilot.press("escape")
        assert app.screen is screen


@pilot_test
async def test_job_detail_links_requeued_jobs_both_ways(backend):
    runtime = backend.runtime()
    write_records(runtime.history_db(), failed_records(["original"]))
    from tq import ops
    new_id = ops.requeue(runtime, ["original"]).new_ids["original"]
    app = make_app(runtime)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        app.open_job("original")
        detail = await loaded(pilot, JobDetailScreen)
        assert new_id in rendered(detail.query_one("#summary"))
        await pilot.press("n")  # the same detail screen shows the copy (a trail, no stack)
        newer = await until(pilot, lambda: app.screen if app.screen.job_id == new_id
                            and getattr(app.screen, "loaded", False) else None)
        assert newer is detail and "original" in rendered(newer.query_one("#summary"))


@pilot_test
async def test_readonly_console_hides_and_refuses_every_action(backend):
    runtime = backend.runtime()
    write_records(runtime.history_db(), failed_records(["f-1", "f-2"]))
    app = make_app(runtime, readonly=True)
    async with app.run_test(size=(160, 30)) as pilot:
        screen = await loaded(pilot)
        for key in ("p", "t", "R", "c", "ctrl+d"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is screen, f"{key} opened a dialog in a read-only console"
        footer_keys = {b.binding.action for b in screen.active_bindings.values()}
        assert not footer_keys & {"pause", "pause_task", "requeue", "cancel", "purge"}
        palette = [name for name, _, _ in TqCommands(screen).commands()]
        assert "Go to jobs" in palette and not any("Requeue" in n or "Pause/" in n
                                                   for n in palette)
        screen = await open_jobs_tab(pilot, "failed")
        await pilot.press("space", "R", "c", "r", "ctrl+d")
        await pilot.pause()
        assert app.screen is screen
        with pytest.raises(ReadOnly):
            app.data.requeue(["f-1"])
    assert not status(runtime)["queues"]["default"]["paused"]
    assert Job.select().count() == 2


@pilot_test
async def test_confirmation_shows_exact_count_and_cancelling_does_nothing(backend):
    runtime = backend.runtime()
    write_records(runtime.history_db(), failed_records([f"f-{n}" for n in range(5)])
                  + failed_records(["other"], queue="reports"))
    app = make_app(runtime)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        await pilot.press("R")  # on queue default: its failed jobs
        assert question(await dialog(pilot)) == "Requeue 5 failed jobs of task tq.tasks.demo.echo in queue default?"
        await pilot.press("n")
        await pilot.pause()
        await pilot.press("ctrl+d")
        assert question(await dialog(pilot)) == "Purge 5 failed jobs of task tq.tasks.demo.echo in queue default?"
        await pilot.press("escape")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmDialog)
    assert Job.select().count() == 6
    assert Job.select().where(Job.requeued_from.is_null(False)).count() == 0
    assert sum(runtime.queue(q).storage.queue_size() for q in runtime.queues) == 0


@pilot_test
async def test_mark_all_matching_acts_on_every_row_of_the_filter_not_just_the_page(backend):
    runtime = backend.runtime()
    write_records(runtime.history_db(), failed_records([f"f-{n:03}" for n in range(45)])
                  + failed_records(["r-1"], queue="reports"))
    app = make_app(runtime)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_jobs_tab(pilot, "failed")
        await pilot.press("slash", *"queue:default", "enter")
        await until(pilot, lambda: screen.total == 45 and len(screen.rows) == 40)
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: len(screen.rows) == 5, message="page 2")
        assert "41–45 of 45" in rendered(screen.query_one("#status"))
        await pilot.press("a", "ctrl+d")
        assert question(await dialog(pilot)) == "Purge 45 failed jobs of task tq.tasks.demo.echo in queue default?"
        await pilot.press("y")
        await until(pilot, lambda: Job.select().count() == 1, message="purge")
    assert Job.get_by_id("r-1").state == "failed"


@pilot_test
async def test_lost_connection_shows_a_banner_and_recovers(redis_backend):
    proxy = CuttableProxy("127.0.0.1", int(REDIS_URL.rsplit(":", 1)[1].split("/")[0]))
    try:
        runtime = redis_backend.runtime(TQ_QUEUE_URL=f"redis://127.0.0.1:{proxy.port}/0",
                                        TQ_QUEUE_CONNECT_TIMEOUT="1")
        app = make_app(runtime)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await loaded(pilot)
            banner = screen.query_one("#banner")
            assert not banner.display
            proxy.cut()
            app.tick()
            await until(pilot, lambda: banner.display, message="banner")
            assert "queue backend unreachable" in str(banner.content)
            assert app.is_running
            proxy.restore()
            await until(pilot, lambda: (app.tick(), not banner.display)[1], timeout=20,
                        message="banner to go")
    finally:
        proxy.close()


@pilot_test
async def test_palette_jump_help_and_refresh_keys(backend):
    runtime = backend.runtime()
    app = make_app(runtime)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await loaded(pilot)
        names = [name for name, _, _ in TqCommands(screen).commands()]
        for target in ("Go to queues", "Go to jobs", "Go to failed", "Go to workers",
                       "Go to periodic", "Go to ingest", "Pause/resume", "Requeue failed",
                       "Pause refresh", "Help"):
            assert target in names
        await pilot.press("colon", *"work", "enter")
        await until(pilot, lambda: app.current_mode == "workers", message=":work")
        await pilot.press("question_mark")
        await pilot.pause()
        help_text = rendered_table(app.screen.query_one("#help-keys"))
        assert "Go to" in help_text and "Quit" in help_text
        await pilot.press("escape")
        before = app.interval
        await pilot.press("plus")
        assert app.interval < before
        await pilot.press("minus", "minus")
        assert app.interval > before
        live = app.live
        await pilot.press("z")
        assert app.live is not live
        await pilot.press("6")
        await until(pilot, lambda: app.current_mode == "ingest")
        await pilot.press("q")
    assert not app.is_running


def rendered_table(table) -> str:
    return "\n".join(" ".join(str(cell) for cell in table.get_row_at(index))
                     for index in range(table.row_count))


@pilot_test
async def test_of_n_is_recounted_when_a_refresh_shows_more_rows_than_it(backend):
    runtime = backend.runtime()
    write_records(runtime.history_db(), failed_records([f"f-{n}" for n in range(3)]))
    app = make_app(runtime)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_jobs_tab(pilot, "failed")
        await until(pilot, lambda: screen.total == 3)
        write_records(runtime.history_db(), failed_records([f"g-{n}" for n in range(2)]))
        screen.refresh_data()  # what the live timer does
        await until(pilot, lambda: len(screen.rows) == 5 and screen.total == 5,
                    message="rows and count to catch up")
        assert "1–5 of 5" in rendered(screen.query_one("#status"))

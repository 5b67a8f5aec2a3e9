"""The console's truth and keys (issue 14 items 5-8): a banner per server on every
screen, each server's figures on their own, help listing every key, j/k, :q, the
task-type picker, one detail screen, forgetting a dead consumer.

Servers are cut through tests/proxy.py (the shared servers keep running)."""
from __future__ import annotations

import threading

import pytest

import tq
from tq import ops
from tq.history import write_records
from tq.queries import list_workers
from tq.tui.app import SCREENS, tq_bindings
from tq.tui.screens.job_detail import JobDetailScreen
from tq.tui.widgets import HelpScreen, PickerDialog

from conftest import MYSQL_HOST, MYSQL_PORT, REDIS_URL, wait_for
from proxy import CuttableProxy
from test_tui import (
    dialog,
    failed_records,
    loaded,
    make_app,
    pilot_test,
    question,
    rendered_table,
    until,
)

SCREEN_KEYS = {str(n): name for n, name in enumerate(SCREENS, 1)}


@pytest.fixture
def proxied(redis_backend):
    """A redis+MariaDB runtime whose two servers can each be cut: (runtime, proxies)."""
    queue = CuttableProxy("127.0.0.1", int(REDIS_URL.rsplit(":", 1)[1].split("/")[0]))
    history = CuttableProxy(MYSQL_HOST, MYSQL_PORT)
    runtime = redis_backend.runtime(
        TQ_QUEUE_URL=f"redis://127.0.0.1:{queue.port}/0", TQ_QUEUE_CONNECT_TIMEOUT="1",
        TQ_HISTORY_URL=f"mysql://root@127.0.0.1:{history.port}/{redis_backend.database_name}")
    try:
        yield runtime, {"queue": queue, "history": history}, redis_backend
    finally:
        queue.close()
        history.close()


def banner_text(app) -> str:
    banner = app.screen.query_one("#banner")
    return str(banner.content) if banner.display else ""


async def refresh_until(pilot, predicate, message: str):
    """What the live timer does, until `predicate` holds."""
    app = pilot.app
    return await until(pilot, lambda: (app.tick(), predicate())[1], timeout=20,
                       message=message)


async def open_screen(pilot, key: str):
    app = pilot.app
    if key == "detail":
        await pilot.press("1")
        app.open_job("f-1")
        return await until(pilot, lambda: isinstance(app.screen, JobDetailScreen)
                           and app.screen.is_mounted and app.screen, message="detail screen")
    await pilot.press(key)
    return await until(pilot, lambda: app.current_mode == SCREEN_KEYS[key]
                       and app.screen.is_mounted and app.screen, message=f"screen {key}")


@pytest.mark.parametrize("server", ["queue", "history"])
@pilot_test
async def test_a_banner_per_server_on_every_screen_until_that_server_is_back(proxied, server):
    runtime, proxies, _ = proxied
    write_records(runtime.history_db(), failed_records(["f-1"]))
    other = {"queue": "history database", "history": "queue backend"}[server]
    name = {"queue": "queue backend", "history": "history database"}[server]
    app = make_app(runtime)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        assert banner_text(app) == ""
        proxies[server].cut()
        for key in [*SCREEN_KEYS, "detail"]:
            await open_screen(pilot, key)
            await refresh_until(pilot, lambda: f"{name} unreachable" in banner_text(app),
                                message=f"{name} banner on screen {key}")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert f"{name} unreachable" in banner_text(app), f"banner gone on {key}"
            assert other not in banner_text(app)
            assert not any("back" in n.message for n in app._notifications), \
                f"'back' shown on screen {key} while {name} is still down"
            if key == "detail":
                await pilot.press("escape")
        proxies[server].restore()
        await refresh_until(pilot, lambda: banner_text(app) == "", message="banner to clear")
        assert any(f"{name} back" in n.message for n in app._notifications)


@pilot_test
async def test_with_history_down_the_queues_screen_still_shows_what_redis_says(proxied):
    runtime, proxies, backend = proxied
    direct = backend.runtime()  # not through the proxies: acts as another operator
    tq.submit("tq.tasks.demo.echo", runtime=runtime)
    app = make_app(runtime)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await loaded(pilot)
        table = screen.query_one("#queues")
        assert str(table.get_cell("default", "queued")) == "1"
        proxies["history"].cut()
        ops.pause(direct, "default")
        tq.submit("tq.tasks.demo.echo", runtime=direct)
        await refresh_until(pilot, lambda: str(table.get_cell("default", "state")) == "paused"
                            and str(table.get_cell("default", "queued")) == "2"
                            and "history database unreachable" in banner_text(app),
                            message="pause and depth from Redis with MariaDB down")
        assert "queue backend" not in banner_text(app)


@pilot_test
async def test_with_redis_down_the_jobs_screen_still_lists_history(proxied):
    runtime, proxies, _ = proxied
    write_records(runtime.history_db(), failed_records(["f-1", "f-2"]))
    app = make_app(runtime)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        proxies["queue"].cut()
        await pilot.press("2")
        screen = await loaded(pilot)
        await refresh_until(pilot, lambda: len(screen.rows) == 2
                            and "queue backend unreachable" in banner_text(app),
                            message="history rows under a queue-backend banner")


@pilot_test
async def test_help_lists_every_key_of_every_screen_and_scrolls(backend):
    runtime = backend.runtime()
    write_records(runtime.history_db(), failed_records(["f-1"]))
    app = make_app(runtime)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        for key in [*SCREEN_KEYS, "detail"]:
            screen = await open_screen(pilot, key)
            expected = {b.description for b, _ in tq_bindings(screen)}
            assert {"Quit", "Help"} <= expected and len(expected) >= 10
            await pilot.press("question_mark")
            help_screen = await until(pilot, lambda: isinstance(app.screen, HelpScreen)
                                      and app.screen, message="help")
            await pilot.pause()
            table = help_screen.query_one("#help-keys")
            listed = rendered_table(table)
            for description in expected:
                assert description in listed, f"{description!r} missing from help on {key}"
            assert "Command palette" in listed
            # 80x24: the list is longer than the room, and scrolls to its end.
            if table.row_count > table.size.height:
                await pilot.press(*["j"] * table.row_count)
                assert table.scroll_y > 0
            await pilot.press("escape")
            if key == "detail":
                await pilot.press("escape")


@pilot_test
async def test_j_k_move_the_cursor_and_colon_q_quits(backend):
    runtime = backend.runtime()
    app = make_app(runtime)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await loaded(pilot)
        table = screen.query_one("#queues")
        assert table.cursor_row == 0
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("colon", "q", "enter")
        await until(pilot, lambda: not app.is_running, message=":q to quit")


@pilot_test
async def test_typing_on_the_detail_screen_runs_nothing(backend):
    runtime = backend.runtime()
    write_records(runtime.history_db(), failed_records(["f-1"]))
    app = make_app(runtime)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot)
        app.open_job("f-1")
        detail = await loaded(pilot, JobDetailScreen)
        # R opens the requeue dialog, "e" answers no; "y" later finds no dialog.
        for char in "Ready yes requeue it y":
            await pilot.press("space" if char == " " else char)
            await pilot.pause()
            if app.screen is not detail and not isinstance(app.screen, JobDetailScreen):
                assert type(app.screen).__name__ == "ConfirmDialog"
        await app.workers.wait_for_complete()
        await pilot.pause()
        while app.screen is not detail and type(app.screen).__name__ == "ConfirmDialog":
            await pilot.press("escape")
    from tq.models import Job
    assert Job.select().count() == 1 and Job.get_by_id("f-1").state == "failed"
    assert sum(runtime.queue(q).storage.queue_size() for q in runtime.queues) == 0
    assert not runtime.control.paused()
    notes = [n.message for n in app._notifications]
    assert any("does nothing here" in n for n in notes)
    assert any("not an answer" in n for n in notes)


@pilot_test
async def test_follow_requeue_links_on_one_screen_and_escape_walks_back(backend):
    runtime = backend.runtime()
    write_records(runtime.history_db(), failed_records(["original"]))
    new_id = ops.requeue(runtime, ["original"]).new_ids["original"]
    app = make_app(runtime)
    async with app.run_test(size=(120, 40)) as pilot:
        home = await loaded(pilot)
        app.open_job("original")
        detail = await loaded(pilot, JobDetailScreen)
        depth = len(app.screen_stack)
        await pilot.press("n")
        await until(pilot, lambda: detail.job_id == new_id and detail.job is not None)
        assert app.screen is detail and len(app.screen_stack) == depth
        assert "original" in str(detail.query_one("#topbar").content)
        await pilot.press("escape")
        await until(pilot, lambda: detail.job_id == "original" and detail.job is not None)
        await pilot.press("escape")
        assert app.screen is home


@pilot_test
async def test_a_silent_consumer_can_be_forgotten_from_the_workers_screen(backend):
    from tq.models import Audit
    runtime = backend.runtime(TQ_CONSUMER_LEASE="1")
    control = runtime.control
    beat(control, "dead:1:x")
    wait_for(lambda: not any(w["alive"] for w in list_workers(runtime)),
             message="the first consumer to fall silent")
    beat(control, "live:2:y")
    # "live" keeps beating, from its own thread and connection, for as long as the
    # console runs: with a 1 s lease, one beat before a step a busy machine can take
    # longer than a second over let it fall silent too.
    stop = threading.Event()
    beats = backend.runtime(TQ_CONSUMER_LEASE="1").control
    beater = threading.Thread(target=lambda: [beat(beats, "live:2:y")
                                              for _ in iter(lambda: stop.wait(0.2), True)])
    beater.start()
    try:
        await forget_from_workers_screen(runtime, control)
    finally:
        stop.set()
        beater.join()
    assert Audit.select().where(Audit.action == "forget-worker").count() == 1
    # Judged under a long lease: the live one has stopped beating now.
    patient = backend.runtime(TQ_CONSUMER_LEASE="60")
    with pytest.raises(ops.ActionError, match="alive"):
        ops.forget_worker(patient, "live:2:y")
    with pytest.raises(ops.ActionError, match="no consumer"):
        ops.forget_worker(runtime, "[/]\x1b[2J")


async def forget_from_workers_screen(runtime, control) -> None:
    app = make_app(runtime)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("4")
        screen = await loaded(pilot)
        table = screen.query_one("#table")
        table.move_cursor(row=table.get_row_index("live:2:y"))
        await pilot.press("x")
        await pilot.pause()
        assert not isinstance(app.screen, type(await_dialog_type()))
        table.move_cursor(row=table.get_row_index("dead:1:x"))
        await pilot.press("x")
        assert "Forget consumer dead:1:x" in question(await dialog(pilot))
        await pilot.press("y")
        await until(pilot, lambda: [w["id"] for w in control.workers()] == ["live:2:y"],
                    message="dead consumer forgotten")


def beat(control, worker_id: str) -> None:
    host, pid, _ = worker_id.split(":")
    control.heartbeat(worker_id, {"id": worker_id, "host": host, "pid": int(pid),
                                  "queues": ["default"], "workers": 1,
                                  "worker_type": "thread", "started": None})


def await_dialog_type():
    from tq.tui.widgets import ConfirmDialog
    return ConfirmDialog.__new__(ConfirmDialog)


def test_tq_workers_forget_refuses_a_live_or_unknown_consumer(backend, tq_env, capsys,
                                                              monkeypatch):
    from tq.cli import main
    runtime = backend.runtime()
    beat(runtime.control, "live:2:y")
    assert main(["workers", "--forget", "live:2:y"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is alive" in err
    runtime = backend.runtime(TQ_CONSUMER_LEASE="1")
    runtime.control.forget_worker("live:2:y")
    beat(runtime.control, "dead:1:x")
    wait_for(lambda: not any(w["alive"] for w in list_workers(runtime)), message="silence")
    assert main(["workers", "--forget", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no consumer 'nope'" in err
    monkeypatch.setenv("TQ_CONSUMER_LEASE", "1")
    assert main(["workers", "--forget", "dead:1:x"]) == 0
    assert runtime.control.workers() == []


@pilot_test
async def test_task_type_picker_pauses_a_picked_task(backend):
    runtime = backend.runtime()
    app = make_app(runtime)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        await pilot.press("t")
        picker = await until(pilot, lambda: isinstance(app.screen, PickerDialog)
                             and app.screen, message="picker")
        # A unique part of the name: other test modules register tasks named
        # "sleep..." too (outcome_tasks), and the picker lists every registered one.
        await pilot.press(*"demo.slee")
        await pilot.pause()
        assert picker.shown == ["tq.tasks.demo.sleep"]
        await pilot.press("enter")
        assert "tq.tasks.demo.sleep" in question(await dialog(pilot))
        await pilot.press("y")
        await until(pilot, lambda: "default/tq.tasks.demo.sleep" in runtime.control.paused(),
                    message="task type paused")


@pilot_test
async def test_cancel_dialog_buttons_differ_and_the_queue_scope_clears(backend):
    runtime = backend.runtime()
    tq.submit("tq.tasks.demo.echo", delay=3600, runtime=runtime)
    tq.submit("tq.tasks.demo.echo", queue="events", runtime=runtime)
    app = make_app(runtime)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        await pilot.press("enter")  # the default queue's jobs
        await until(pilot, lambda: app.current_mode == "jobs")
        screen = await loaded(pilot)
        await until(pilot, lambda: screen.queue == "default" and len(screen.rows) == 1)
        await pilot.press("c")
        box = await dialog(pilot)
        labels = [str(b.label) for b in box.query("Button")]
        assert labels == ["Cancel jobs (y)", "Keep (n)"]
        await pilot.press("n")
        await pilot.pause()
        await pilot.press("escape")
        await until(pilot, lambda: screen.queue is None and len(screen.rows) == 2,
                    message="queue scope cleared")
        await pilot.press("slash", *"state:queued", "enter")
        await until(pilot, lambda: len(screen.rows) == 1)
        assert screen.shown_tab() == "queued"


def test_periodic_list_stands_when_the_history_goes_away_mid_read(redis_backend):
    """The schedule and last run come from the queue backend: with the history cut
    after it was first reached, `tq periodic` (and the Periodic screen) still lists
    them, with the outcome unknown, instead of failing as a whole."""
    from tq.queries import list_periodic

    history = CuttableProxy(MYSQL_HOST, MYSQL_PORT)
    try:
        runtime = redis_backend.runtime(
            TQ_PERIODIC_NIGHTLY="0 3 * * * tq.tasks.demo.echo",
            TQ_HISTORY_URL=f"mysql://root@127.0.0.1:{history.port}/"
                           f"{redis_backend.database_name}")
        runtime.control.record_periodic("nightly", {"tick": 1, "at": 1.0, "job_id": "j-1"})
        assert runtime.history_db() is not None  # reached once: the schema is in place
        history.cut()
        [row] = list_periodic(runtime)
        assert (row["name"], row["last_job"], row["last_outcome"]) == ("nightly", "j-1", None)
    finally:
        history.close()


def test_forgetting_a_dead_consumer_puts_its_jobs_back_first(backend):
    """Recovery only takes over a registered consumer's jobs: forgetting one that died
    holding a job must not strand that job in flight."""
    runtime = backend.runtime(TQ_CONSUMER_LEASE="1")
    job_id = tq.submit("tq.tasks.demo.echo", runtime=runtime)
    beat(runtime.control, "dead:1:x")
    storage = runtime.queue("default").storage
    assert storage.claim("dead:1:x") is not None  # it took the job, then died
    assert storage.inflight_count() == 1
    wait_for(lambda: not any(w["alive"] for w in list_workers(runtime)), message="silence")
    ops.forget_worker(runtime, "dead:1:x")
    assert runtime.control.workers() == []
    assert storage.inflight_count() == 0
    assert runtime.queue("default").storage.queue_size() == 1
    runtime.flush_history(5)
    from tq.queries import job_detail
    assert job_detail(runtime, job_id)["state"] in ("queued", "retrying")

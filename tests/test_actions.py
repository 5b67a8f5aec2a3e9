"""Operator actions tell the truth (issue 14): requeue retires its source and never
makes two copies, failure groups are exact, every action reports its outcome
(an outage is an error, never a success), and the audit is complete and visible."""
from __future__ import annotations

import json
import threading
import time

from tq import ops
from tq.cli import main
from tq.history import write_records
from tq.models import Audit, AuditJob, Job
from tq.queries import count_jobs, failure_groups, list_jobs
from tq.where import group_filter, parse

from conftest import MYSQL_HOST, MYSQL_PORT, REDIS_URL, wait_for
from proxy import CuttableProxy
from test_tui import dialog, failed_records, loaded, make_app, pilot_test, question, until


def states(ids) -> dict[str, str]:
    return dict(Job.select(Job.id, Job.state).where(Job.id.in_(list(ids))).tuples())


def copies() -> list[Job]:
    return list(Job.select().where(Job.requeued_from.is_null(False)))


# --- 1. requeue retires its source ------------------------------------------------------

def test_requeue_retires_the_original_and_twice_makes_one_copy(backend):
    runtime = backend.runtime()
    ids = [f"f-{n}" for n in range(5)]
    write_records(runtime.history_db(), failed_records(ids))
    first = ops.requeue(runtime, flt=parse("state:failed"))
    assert first.outcome == "done" and len(first.new_ids) == 5
    again = ops.requeue(runtime, flt=parse("state:failed queue:default task:demo"))
    assert not again.new_ids and again.outcome == "nothing"
    by_id = ops.requeue(runtime, ids)  # by id too: already requeued, no copy
    assert not by_id.new_ids and set(by_id.skipped.values()) == {"already requeued"}
    assert set(states(ids).values()) == {"requeued"}
    assert len(copies()) == 5
    assert sum(runtime.queue(q).storage.queue_size() for q in runtime.queues) == 5
    # Out of every failed view: count, groups, the failed tab.
    assert count_jobs(runtime, parse("state:failed")) == 0
    assert failure_groups(runtime) == []
    # A late `failed` record (an outbox replayed after an outage) cannot bring one back.
    write_records(runtime.history_db(), failed_records(ids[:1]))
    assert states(ids[:1]) == {ids[0]: "requeued"}
    # The copies fail too: only they are in the failed set now, each requeued once.
    write_records(runtime.history_db(), [dict(r, id=copy.id) for r, copy in
                                     zip(failed_records(range(5)), copies())])
    assert count_jobs(runtime, parse("state:failed")) == 5
    assert len(ops.requeue(runtime).new_ids) == 5
    assert Job.select().count() == 15


def test_cli_requeue_state_failed_twice_requeues_each_job_once(backend, tq_env, capsys):
    runtime = backend.runtime()
    ids = [f"f-{n}" for n in range(4)]
    write_records(runtime.history_db(), failed_records(ids))
    assert main(["requeue", "--state", "failed"]) == 0
    assert "requeued 4 jobs" in capsys.readouterr().out
    assert main(["requeue", "--state", "failed"]) == 0
    assert "nothing to requeue" in capsys.readouterr().out
    assert main(["requeue", ids[0]]) == 2  # given an id that cannot be requeued again
    assert "already requeued" in capsys.readouterr().err
    assert len(copies()) == 4


def test_concurrent_requeues_of_the_same_jobs_make_one_copy_each(backend):
    ids = [f"f-{n}" for n in range(50)]
    write_records(backend.runtime().history_db(), failed_records(ids))
    results, start = [], threading.Barrier(3)

    def run() -> None:
        runtime = backend.runtime()
        start.wait()
        results.append(ops.requeue(runtime, ids))
    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runtime = backend.runtime()
    runtime.write_submitted()
    runtime.history_db()
    assert sum(len(r.new_ids) for r in results) == 50
    assert len(copies()) == 50 and {c.requeued_from for c in copies()} == set(ids)
    assert sum(runtime.queue(q).storage.queue_size() for q in runtime.queues) == 50
    assert set(states(ids).values()) == {"requeued"}


def test_a_requeue_that_stopped_before_retiring_is_finished_without_a_second_copy(backend):
    runtime = backend.runtime()
    write_records(runtime.history_db(), failed_records(["orig"]))
    # The crash: the copy was enqueued, the original never marked.
    from tq.submit import enqueue, prepare
    enqueue(runtime, [prepare(runtime, {"task": "tq.tasks.demo.echo", "args": [0],
                                        "requeued_from": "orig",
                                        "id": ops.copy_id("orig")})])
    assert states(["orig"]) == {"orig": "failed"}
    result = ops.requeue(runtime, ["orig"])
    assert not result.new_ids and result.already == {"orig": ops.copy_id("orig")}
    assert states(["orig"]) == {"orig": "requeued"}
    assert sum(runtime.queue(q).storage.queue_size() for q in runtime.queues) == 1


# --- 2. groups are exact -------------------------------------------------------------------

def two_groups(runtime) -> None:
    gateway = failed_records([f"g-{n}" for n in range(6)])
    for n, record in enumerate(gateway):
        record["error_message"] = f"payment gateway returned {500 + n}"
    other = failed_records([f"o-{n}" for n in range(4)], queue="reports",
                           task="tq.tasks.demo.fail")
    for record in other:
        record["error_message"] = "payment gateway timed out after 30s"
    hostile = failed_records(["h-1", "h-2"])
    hostile[0]["error_message"] = "bad [/] markup 'x' \x1b[31m 100%_\\"
    hostile[1]["error_message"] = "bad [/] markup 'y' \x1b[31m 7%_\\\nsecond line"
    write_records(runtime.history_db(), gateway + other + hostile)


def test_a_failure_group_filter_lists_and_acts_on_exactly_its_jobs(backend):
    runtime = backend.runtime()
    two_groups(runtime)
    groups = {g["message"]: g for g in failure_groups(runtime)}
    assert {g["count"] for g in groups.values()} == {6, 4, 2}
    for group in groups.values():
        flt = parse(group_filter(group["error_type"], group["message"]).text)
        assert count_jobs(runtime, flt) == group["count"]
        assert {row["id"] for row in list_jobs(runtime, flt, limit=3)} <= set(group["ids"])
        assert len(list_jobs(runtime, flt, limit=100)) == group["count"]
        assert ops.preview(runtime, "requeue", None, flt).count == group["count"]
    gateway = groups["payment gateway returned <n>"]
    preview = ops.preview(runtime, "requeue", None,
                          group_filter(gateway["error_type"], gateway["message"]))
    assert preview.text == ("Requeue 6 failed jobs of task tq.tasks.demo.echo in queue "
                            "default?\nError: RuntimeError: payment gateway returned <n>")
    result = ops.requeue(runtime, flt=group_filter(gateway["error_type"], gateway["message"]))
    assert sorted(result.new_ids) == sorted(gateway["ids"])
    assert count_jobs(runtime, parse("state:failed")) == 6


# --- 3. every action reports its outcome ----------------------------------------------------

def cut_redis_runtime(backend, proxy):
    return backend.runtime(TQ_QUEUE_URL=f"redis://127.0.0.1:{proxy.port}/0",
                           TQ_QUEUE_CONNECT_TIMEOUT="1")


def redis_proxy() -> CuttableProxy:
    return CuttableProxy("127.0.0.1", int(REDIS_URL.rsplit(":", 1)[1].split("/")[0]))


def test_requeue_with_redis_cut_fails_with_its_reason_and_changes_nothing(redis_backend,
                                                                          monkeypatch, capsys):
    from conftest import use_env
    proxy = redis_proxy()
    try:
        runtime = cut_redis_runtime(redis_backend, proxy)
        write_records(runtime.history_db(), failed_records(["f-1", "f-2"]))
        proxy.cut()
        result = ops.requeue(runtime, ["f-1", "f-2"])
        assert result.outcome == "failed" and "queue backend unreachable" in result.error
        assert "nothing changed" in result.line()
        use_env(monkeypatch, dict(redis_backend.env, TQ_QUEUE_URL=f"redis://127.0.0.1:"
                                  f"{proxy.port}/0", TQ_QUEUE_CONNECT_TIMEOUT="1"))
        code = main(["requeue", "--state", "failed"])
        captured = capsys.readouterr()
        assert code == 1
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and "unreachable" in lines[0] and "Traceback" not in captured.err
    finally:
        proxy.close()
    assert states(["f-1", "f-2"]) == {"f-1": "failed", "f-2": "failed"}
    assert not copies()


@pilot_test
async def test_console_requeue_during_an_outage_is_an_error_notice_not_a_toast(redis_backend):
    proxy = redis_proxy()
    try:
        runtime = cut_redis_runtime(redis_backend, proxy)
        write_records(runtime.history_db(), failed_records(["f-1", "f-2", "f-3"]))
        app = make_app(runtime)
        async with app.run_test(size=(120, 30)) as pilot:
            await loaded(pilot)
            await pilot.press("3")
            await loaded(pilot)
            await pilot.press("R")
            text = question(await dialog(pilot))
            assert text.startswith("Requeue 3 failed jobs of task tq.tasks.demo.echo in "
                                   "queue default?")
            proxy.cut()
            await pilot.press("y")
            notes = await until(pilot, lambda: [n for n in app._notifications
                                                if n.severity == "error"],
                                message="an error notice")
            assert "unreachable" in notes[0].message
            assert not any("requeued" in n.message or "connection back" in n.message
                           for n in app._notifications)
    finally:
        proxy.close()
    assert not copies()


@pilot_test
async def test_console_requeue_says_how_many_it_requeued(backend):
    runtime = backend.runtime()
    write_records(runtime.history_db(), failed_records(["f-1", "f-2"]))
    app = make_app(runtime)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        await pilot.press("R")
        await dialog(pilot)
        await pilot.press("y")
        note = await until(pilot, lambda: [n for n in app._notifications
                                           if "requeued" in n.message], message="notice")
        assert note[0].message == "requeued 2 jobs" and note[0].severity == "information"


# --- 4. a complete, visible audit ------------------------------------------------------------

def test_a_requeue_of_500_audits_all_500_ids_and_the_filter(backend, tq_env, capsys):
    runtime = backend.runtime()
    ids = [f"job-{n:04d}-" + "x" * 40 for n in range(500)]
    write_records(runtime.history_db(), failed_records(ids, queue="default"))
    assert main(["requeue", "--state", "failed", "--queue", "default", "--since", "1h"]) == 0
    capsys.readouterr()
    entry = Audit.get(Audit.action == "requeue")
    assert entry.count == 500 and entry.outcome == "done"
    assert "state:failed" in entry.target and "queue:default" in entry.target \
        and "since:1h" in entry.target
    # Each once: the CLI's filter text says them already (it read 'state:failed
    # queue:default since:1h state:failed queue:default ...').
    assert entry.target.count("state:") == 1 and entry.target.count("queue:") == 1
    stored = {job_id for job_id, in AuditJob.select(AuditJob.job_id)
              .where(AuditJob.audit_id == entry.id).tuples()}
    assert stored == set(ids)
    assert main(["audit", "--since", "1h", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["action"] == "requeue" and len(listed[0]["ids"]) == 500
    assert main(["audit"]) == 0
    assert "requeue" in capsys.readouterr().out


def test_a_pause_made_while_the_history_database_is_down_is_audited_once_back(redis_backend):
    proxy = CuttableProxy(MYSQL_HOST, MYSQL_PORT)
    try:
        url = f"mysql://root@127.0.0.1:{proxy.port}/{redis_backend.database_name}"
        runtime = redis_backend.runtime(TQ_HISTORY_URL=url)
        runtime.history_db()  # schema created while it is up
        proxy.cut()
        ops.pause(runtime, "default")
        assert "default" in runtime.control.paused()
        proxy.restore()
        other = redis_backend.runtime()  # the next reader (or a consumer) writes it
        from tq.queries import catch_up
        catch_up(other)
        other.history_db()
        entry = wait_for(lambda: Audit.get_or_none(Audit.action == "pause"),
                         message="pause audited")
        assert entry.target == "default" and entry.count == 1
        catch_up(other)
        assert Audit.select().count() == 1  # written once
    finally:
        proxy.close()


@pilot_test
async def test_audit_screen_lists_actions_newest_first(backend):
    runtime = backend.runtime()
    ops.pause(runtime, "default")
    ops.resume(runtime, "default")
    app = make_app(runtime)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        await pilot.press("7")
        from tq.tui.screens.audit import AuditScreen
        screen = await loaded(pilot, AuditScreen)
        table = screen.query_one("#table")
        actions = [str(table.get_row_at(n)[1]) for n in range(table.row_count)]
        assert actions == ["resume", "pause"]


def test_hostile_audit_and_filter_text_is_stored_as_given(backend):
    runtime = backend.runtime()
    two_groups(runtime)
    group = next(g for g in failure_groups(runtime) if g["message"].startswith("bad"))
    flt = group_filter(group["error_type"], group["message"])
    assert parse(flt.text).group == flt.group  # the filter text round-trips
    assert ops.requeue(runtime, flt=flt).count == 2
    entry = Audit.get(Audit.action == "requeue")
    assert "[/]" in entry.target and AuditJob.select().count() == 2


# --- 9. the roll-up runs outside the job queues ------------------------------------------------

def test_rollup_runs_with_a_backlog_in_default(backend):
    import tq
    import tq.tasks.maintenance  # noqa: F401  (registers the built-in)
    from tq.scheduler import ROLLUP_NAME, PeriodicScheduler
    from tq.summaries import SummaryState

    runtime = backend.runtime(TQ_HISTORY_ROLLUP_EVERY="@every 1s")
    for _ in range(3):
        tq.submit_many([{"task": "tq.tasks.demo.echo", "args": [n]} for n in range(100)],
                       runtime=runtime)
    ops.pause(runtime, "default")  # a backlog nothing takes from
    scheduler = PeriodicScheduler(runtime)
    assert scheduler.run_due(time.time()) >= 1
    wait_for(lambda: runtime.control.periodic_runs().get(ROLLUP_NAME, {}).get("outcome")
             == "succeeded", message="the roll-up to run")
    runtime.history_db()
    assert SummaryState.select().count() >= 1
    assert runtime.queue("default").storage.queue_size() == 300  # nothing taken from it


@pilot_test
async def test_opening_a_group_in_the_console_lists_and_requeues_exactly_its_jobs(backend):
    from tq.tui.screens.jobs import JobsScreen

    runtime = backend.runtime()
    two_groups(runtime)
    app = make_app(runtime)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        failed = await loaded(pilot)
        assert failed.current_group()["message"] == "payment gateway returned <n>"
        await pilot.press("enter")
        jobs = await until(pilot, lambda: app.screen if isinstance(app.screen, JobsScreen)
                           and app.screen.total is not None and app.screen.loaded else None,
                           message="the group's jobs")
        await until(pilot, lambda: jobs.total == 6, message="exactly 6 jobs")
        assert {row["id"] for row in jobs.rows} == {f"g-{n}" for n in range(6)}
        await pilot.press("a", "R")
        text = question(await dialog(pilot))
        assert text == ("Requeue 6 failed jobs of task tq.tasks.demo.echo in queue default?\n"
                        "Error: RuntimeError: payment gateway returned <n>")
        await pilot.press("y")
        await until(pilot, lambda: len(copies()) == 6, message="6 copies")
        # The markup-laden group: shown literally, acted on exactly.
        await pilot.press("3")
        failed = await loaded(pilot)
        table = failed.query_one("#table")
        table.move_cursor(row=next(i for i, g in enumerate(failed.groups)
                                   if g["message"].startswith("bad")))
        await pilot.press("R")
        text = question(await dialog(pilot))
        assert "[/]" in text and "\\x1b" in text
        await pilot.press("y")
        await until(pilot, lambda: len(copies()) == 8, message="2 more copies")
    assert {c.requeued_from for c in copies()} == {f"g-{n}" for n in range(6)} | {"h-1", "h-2"}

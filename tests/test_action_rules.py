"""Which jobs each action touches is one rule (tq.ops.RULES): its preview counts
exactly what the action then touches, for every kind of selection, on a mixed set
of jobs in every state; the console asks with that count."""
from __future__ import annotations

import time

import pytest

import tq
from tq import ops
from tq.history import write_records
from tq.models import STATES, Job, state_seq
from tq.where import Filter, group_filter, parse

from test_tui import dialog, loaded, make_app, open_jobs_tab, pilot_test, question, until

QUEUES = ("default", "reports")
ACTIONS = {"requeue": ops.requeue, "cancel": ops.cancel, "run_now": ops.run_now,
           "purge": ops.purge}


def record(job_id: str, state: str, queue: str, index: int, now: float) -> dict:
    finished = state not in ("queued", "scheduled", "running", "retrying")
    row = {"kind": "job", "id": job_id, "state": state, "seq": state_seq(state, 1),
           "queue": queue, "task": "tq.tasks.demo.echo", "args": f"[{index}]",
           "kwargs": "{}", "priority": 0, "max_retries": 0, "attempts": 1,
           "enqueued_at": now - 60 + index, "updated_at": now - 20,
           "started_at": now - 30 if state != "queued" else None,
           "finished_at": now - 20 if finished else None}
    if state == "failed":
        row.update(error_type="RuntimeError", error_message=f"broken {index}")
    return row


def mixed(runtime) -> list[str]:
    """In each queue one history row in every state, and one job really on the
    schedule (history says scheduled too): the ids of all of them."""
    now = time.time()
    rows = [record(f"{queue[0]}-{state}", state, queue, index, now)
            for queue in QUEUES for index, state in enumerate(STATES)]
    write_records(runtime.history_db(), rows)
    on_schedule = [tq.submit("tq.tasks.demo.echo", queue, queue=queue, delay=3600,
                             runtime=runtime) for queue in QUEUES]
    return [row["id"] for row in rows] + on_schedule


def snapshot(runtime) -> tuple[dict, dict]:
    ops._history(runtime)
    states = dict(Job.select(Job.id, Job.state).tuples())
    depths = {name: (huey.storage.queue_size(), huey.storage.schedule_size())
              for name, huey in runtime.queues.items()}
    return states, depths


# What each action touches of the mixed set (per queue: one job in each of the nine
# states, and a tenth really on the schedule), by selection: the rule, spelled out.
SELECTIONS = {
    # every id (and one history does not know): the action's states, any queue
    "ids": {"requeue": 8, "cancel": 10, "run_now": 2, "purge": 6},
    # no filter: what the rule defaults to (failed, or every waiting job)
    "no filter": {"requeue": 2, "cancel": 10, "run_now": 2, "purge": 2},
    "queue:reports": {"requeue": 1, "cancel": 5, "run_now": 1, "purge": 1},
    # states the action does not take are dropped (purge refuses them instead)
    "state:failed,canceled,scheduled,running": {"requeue": 4, "cancel": 6, "run_now": 2,
                                                "purge": ops.ActionError},
    "group": {"requeue": 2, "cancel": 0, "run_now": 0, "purge": 2},
    # the Queues screen's keys on queue default (run now is not offered there)
    "whole queue": {"requeue": 1, "cancel": 4, "run_now": None, "purge": 1},
}
CASES = [(kind, action, expected) for kind, by_action in SELECTIONS.items()
         for action, expected in by_action.items()]


def selection(kind: str, action: str, ids: list[str]):
    if kind == "ids":
        return ids + ["not-in-history"], None
    if kind == "no filter":
        return None, None
    if kind == "group":
        return None, group_filter("RuntimeError", "broken <n>")
    if kind == "whole queue":
        return None, ops.queue_filter(action, "default")
    return None, parse(kind)


@pytest.mark.parametrize("kind,action,expected", CASES,
                         ids=[f"{action}-{kind}" for kind, action, _ in CASES])
def test_the_preview_counts_exactly_what_the_action_touches(backend, kind, action, expected):
    runtime = backend.runtime()
    chosen_ids, flt = selection(kind, action, mixed(runtime))
    if expected is None:
        assert flt is None  # not offered for a whole queue
        return
    before = snapshot(runtime)
    if expected is ops.ActionError:
        with pytest.raises(ops.ActionError):
            ops.preview(runtime, action, chosen_ids, flt)
        with pytest.raises(ops.ActionError):
            ACTIONS[action](runtime, chosen_ids, flt)
        assert snapshot(runtime) == before
        return
    preview = ops.preview(runtime, action, chosen_ids, flt, sample=100)
    assert snapshot(runtime) == before  # a preview changes nothing
    assert preview.count == expected and len(preview.sample) == expected
    result = ACTIONS[action](runtime, chosen_ids, flt)
    assert result.error is None
    assert sorted(result.done) == preview.sample
    assert result.outcome == ("done" if expected else "nothing")
    states, _ = snapshot(runtime)
    changed = {job_id for job_id, state in before[0].items() if states.get(job_id) != state}
    if action == "run_now":  # the move: off the schedule, onto the queue
        assert {job_id for job_id in changed} <= set(result.done)
        assert sum(d[1] for d in snapshot(runtime)[1].values()) == 2 - expected
    elif action == "cancel":  # a running job is asked to stop: its row changes later
        assert changed == {job_id for job_id in result.done if before[0][job_id] != "running"}
    else:
        assert changed == set(result.done)


def test_a_preview_names_the_states_tasks_and_queues_and_its_first_ids(backend):
    runtime = backend.runtime()
    mixed(runtime)
    preview = ops.preview(runtime, "purge", flt=parse("state:failed,canceled"), sample=3)
    assert preview.text == ("Purge 4 jobs (2 canceled, 2 failed) of task tq.tasks.demo.echo "
                            "in queues default, reports?")
    assert preview.sample == ["d-canceled", "d-failed", "r-canceled"]
    assert preview.line() == ("would purge 4 jobs (2 canceled, 2 failed) of task "
                              "tq.tasks.demo.echo in queues default, reports "
                              "(dry run: nothing changed)")
    assert preview.as_dict()["counts"][0] == {"state": "canceled", "queue": "default",
                                              "task": "tq.tasks.demo.echo", "count": 1}


# --- the console asks with the preview's count ------------------------------------------------

@pilot_test
async def test_console_confirm_shows_the_preview_count_for_a_queue_and_for_all_jobs(backend):
    runtime = backend.runtime()
    mixed(runtime)
    app = make_app(runtime)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)  # Queues, cursor on default
        await pilot.press("c")
        expected = ops.preview(runtime, "cancel", None, ops.queue_filter("cancel", "default"))
        assert expected.count == 4
        assert question(await dialog(pilot)) == expected.text
        await pilot.press("n")
        screen = await open_jobs_tab(pilot, "all")
        await pilot.press("a", "c")  # every job matching the (empty) filter
        expected = ops.preview(runtime, "cancel", None, Filter())
        assert question(await dialog(pilot)).startswith(f"Cancel {expected.count} jobs (")
        await pilot.press("y")
        await until(pilot, lambda: not Job.select().where(
            Job.state.in_(("queued", "scheduled", "retrying"))).exists(),
            message="every waiting job canceled")
        assert screen is app.screen


@pilot_test
async def test_console_run_now_and_purge_of_marked_jobs_touch_what_they_counted(backend):
    runtime = backend.runtime()
    mixed(runtime)
    app = make_app(runtime)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_jobs_tab(pilot, "scheduled")
        await until(pilot, lambda: len(screen.rows) == 4, message="4 scheduled")
        await pilot.press("a", "r")  # two of the four are really on the schedule
        assert question(await dialog(pilot)) == ("Run now 2 scheduled jobs of task "
                                                 "tq.tasks.demo.echo in queues default, "
                                                 "reports?")
        await pilot.press("y")
        await until(pilot, lambda: sum(h.storage.queue_size()
                                       for h in runtime.queues.values()) == 2,
                    message="2 moved to their queues")
        # Marked, a canceled and a failed job: purge deletes both, as it asks (it
        # used to count both and delete the failed one only).
        screen = await open_jobs_tab(pilot, "all")
        screen.marked.update({"d-canceled", "d-failed"})
        await pilot.press("ctrl+d")
        assert question(await dialog(pilot)) == ("Purge 2 jobs (1 canceled, 1 failed) of "
                                                 "task tq.tasks.demo.echo in queue default?")
        await pilot.press("y")
        await until(pilot, lambda: not Job.select().where(
            Job.id.in_(["d-canceled", "d-failed"])).exists(), message="both purged")


# --- --dry-run: the preview, nothing touched ------------------------------------------------

DRY_RUNS = [
    (["requeue", "--state", "failed,canceled"], 4),
    (["requeue", "--where", "'group:RuntimeError: broken <n>'"], 2),
    (["cancel", "--queue", "reports"], 5),
    (["purge", "--state", "failed"], 2),
    (["run-now", "ids"], 2),
]


@pytest.mark.parametrize("argv,count", DRY_RUNS, ids=[" ".join(a) for a, _ in DRY_RUNS])
def test_dry_run_prints_the_count_and_touches_nothing(backend, tq_env, capsys, argv, count):
    import json

    from tq.cli import main

    runtime = backend.runtime()
    ids = mixed(runtime)
    if argv[-1] == "ids":
        argv = [argv[0], *ids]
    before = snapshot(runtime)
    assert main([*argv, "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert f" {count} " in text.splitlines()[0] and "dry run: nothing changed" in text
    assert main([*argv, "--dry-run", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["dry_run"] and shown["count"] == count and len(shown["sample"]) == count
    assert snapshot(runtime) == before  # job states and queue depths as they were


def test_quarantine_dry_runs_touch_nothing(backend, tq_env, capsys):
    from tq.cli import main

    runtime = backend.runtime()
    number = runtime.queue("default").storage.quarantine(None, b"not a message", "test")
    assert main(["quarantine", "purge", "--all", "--dry-run"]) == 0
    assert "would purge 1 entry" in capsys.readouterr().out
    assert main(["quarantine", "requeue", f"m{number}", "r7", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "would requeue 0 of 2" in captured.out and "would not be requeued" in captured.err
    assert runtime.control.quarantine_count() == 1


def test_run_now_shows_the_job_queued_in_history(backend):
    """A job moved off the schedule is `queued` in history (eta: when it was moved),
    not left `scheduled` until a worker starts it; a second run-now skips it, saying
    what history has."""
    from tq.queries import catch_up, job_detail
    runtime = backend.runtime()
    job_id = tq.submit("tq.tasks.demo.echo", args=[1], delay=3600, runtime=runtime)
    catch_up(runtime)
    row = job_detail(runtime, job_id)
    assert row is not None and row["state"] == "scheduled"
    before = time.time()
    assert ops.run_now(runtime, [job_id]).done == [job_id]
    catch_up(runtime)
    row = job_detail(runtime, job_id)
    assert row is not None and row["state"] == "queued" and before <= row["eta"] <= time.time()
    assert runtime.queue("default").storage.queue_size() == 1
    again = ops.run_now(runtime, [job_id])
    assert again.skipped == {job_id: "not on the schedule (history: queued)"}

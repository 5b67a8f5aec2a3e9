"""Snapshots of the console's screens at 80x24 and 160x48 (pytest-textual-snapshot).

Deterministic data on the embedded backend: fixed ids and times, the console's
clock frozen at NOW, the refresh timer off. Update after an intended change with
`pytest tests/test_tui_snapshots.py --snapshot-update` and look at the SVGs.
"""
from __future__ import annotations

import pytest

import tq
from tq.config import load_config
from tq.history import write_records
from tq.models import Audit, AuditJob, IngestedFile, Job, state_seq
from tq.runtime import Runtime
from tq.summaries import rollup
from tq.tui.app import TqApp
from tq.tui.data import Data

NOW = 1_795_000_000.0  # 2026-11-18 11:06:40 UTC
TRACEBACK = """Traceback (most recent call last):
  File "/srv/app/.venv/lib/python3.11/site-packages/huey/api.py", line 412, in _execute
    task_value = task.execute()
  File "/srv/app/billing/tasks.py", line 88, in charge_card
    response = gateway.charge(customer_id, amount, timeout=10)
  File "/srv/app/billing/gateway.py", line 41, in charge
    raise GatewayTimeout(f"gateway did not answer in {{timeout}}s")
billing.gateway.{error}: {message}
"""
SIZES = {"80x24": (80, 24), "160x48": (160, 48)}


def build_runtime(tmp_path, monkeypatch) -> Runtime:
    monkeypatch.chdir(tmp_path)  # relative data paths: the same text in every snapshot
    runtime = Runtime(load_config(env={
        "TQ_TQ_DATA_DIR": "data",
        "TQ_PERIODIC_NIGHTLY_REPORT": "0 3 * * * tq.tasks.demo.echo @reports",
        "TQ_PERIODIC_HEARTBEAT_PING": "@every 30s tq.tasks.demo.echo"}))
    runtime.migrate_history()  # as `tq up` leaves it: readers never create the schema
    # Waiting jobs: in the queue (depths) and in history (rows), times pinned.
    tq.submit_many([{"task": "tq.tasks.demo.echo", "args": [n], "id": f"job-q-{n:02}",
                     "queue": "events" if n % 3 else "default"} for n in range(12)],
                   runtime=runtime)
    tq.submit_many([{"task": "tq.tasks.demo.sleep", "args": [5], "id": f"job-s-{n:02}",
                     "queue": "reports", "delay": 600 + n} for n in range(3)], runtime=runtime)
    runtime.flush_history()  # their queued rows, before their times are pinned
    for n in range(12):
        Job.update(enqueued_at=NOW - 900 + n * 7).where(Job.id == f"job-q-{n:02}").execute()
    for n in range(3):
        Job.update(enqueued_at=NOW - 300, eta=NOW + 600 + n).where(
            Job.id == f"job-s-{n:02}").execute()
    records = []
    errors = [("GatewayTimeout", "gateway did not answer in 10s"),
              ("KeyError", "'customer_id'"), ("GatewayTimeout", "gateway did not answer in 30s")]
    for n in range(9):
        error_type, message = errors[n % 3]
        traceback = TRACEBACK.format(error=error_type, message=message)
        records += [
            {"kind": "job", "id": f"job-f-{n:02}", "state": "failed",
             "seq": state_seq("failed", 2), "queue": "default" if n < 6 else "events",
             "task": "billing.tasks.charge_card", "args": f"[{1000 + n}, 49.9]",
             "kwargs": '{"currency":"EUR"}', "priority": 0, "max_retries": 1, "attempts": 2,
             "enqueued_at": NOW - 3000 + n * 60, "started_at": NOW - 2000 + n * 60,
             "finished_at": NOW - 1990 + n * 60, "updated_at": NOW - 1990 + n * 60,
             "worker": "web-1:4242/Worker-1", "error_type": error_type,
             "error_message": message, "traceback": traceback},
            {"kind": "attempt", "job_id": f"job-f-{n:02}", "attempt": 1,
             "worker": "web-1:4242/Worker-2", "started_at": NOW - 2100 + n * 60,
             "finished_at": NOW - 2090 + n * 60, "outcome": "failed",
             "error_type": error_type, "error_message": message, "traceback": traceback},
            {"kind": "attempt", "job_id": f"job-f-{n:02}", "attempt": 2,
             "worker": "web-1:4242/Worker-1", "started_at": NOW - 2000 + n * 60,
             "finished_at": NOW - 1990 + n * 60, "outcome": "failed",
             "error_type": error_type, "error_message": message, "traceback": traceback}]
    for n in range(20):
        records.append({"kind": "job", "id": f"job-ok-{n:02}", "state": "succeeded",
                        "seq": state_seq("succeeded", 1), "queue": "default",
                        "task": "tq.tasks.demo.echo", "args": f"[{n}]", "kwargs": "{}",
                        "priority": 0, "max_retries": 0, "attempts": 1,
                        "enqueued_at": NOW - 40 * n - 5, "started_at": NOW - 40 * n - 4,
                        "finished_at": NOW - 40 * n - 3.5, "updated_at": NOW - 40 * n,
                        "worker": "web-1:4242/Worker-3"})
    write_records(runtime.history_db(), records)
    control = runtime.control
    # Heartbeats are stamped and aged by the queue backend's clock (SQLite's:
    # the host's), set here so the ages shown are fixed.
    control.clock = lambda: NOW - 1.2
    control.heartbeat("web-1:4242:a1b2c3", {
        "id": "web-1:4242:a1b2c3", "host": "web-1", "pid": 4242,
        "queues": ["default", "events", "reports"], "workers": 4, "worker_type": "thread",
        "started": NOW - 86000, "beat": NOW - 1.2})
    control.clock = lambda: NOW - 95
    control.heartbeat("web-2:977:d4e5f6", {
        "id": "web-2:977:d4e5f6", "host": "web-2", "pid": 977, "queues": ["reports"],
        "workers": 2, "worker_type": "process", "started": NOW - 7200, "beat": NOW - 95})
    control.clock = lambda: NOW
    control.record_periodic("nightly_report", {"tick": 1, "at": NOW - 16400,
                                               "job_id": "job-ok-03", "by": "web-1:4242"})
    control.set_paused("reports/tq.tasks.demo.sleep", True, {"at": NOW - 50, "by": "ops"})
    for n, (name, outcome, accepted, rejected, reason) in enumerate([
            ("orders-0001.jsonl", "done", 5000, 0, None),
            ("orders-0002.jsonl", "done", 4980, 20, "20 lines: no 'type' field"),
            ("broken.json", "rejected", 0, 1, "not UTF-8 text"),
            ("orders-0001-copy.jsonl", "duplicate", 0, 0, "same sha256 as orders-0001.jsonl")]):
        IngestedFile.create(name=name, path=f"data/history/{name}", size=1_250_000 + n * 10,
                            sha256=f"{n}" * 64, accepted=accepted, rejected=rejected,
                            started_at=NOW - 600 + n * 60, finished_at=NOW - 590 + n * 60,
                            outcome=outcome, reason=reason)
    for n, (action, target, count, outcome, detail) in enumerate([
            ("requeue", "group:RuntimeError: payment gateway returned <n>", 6, "done", None),
            ("pause", "reports/tq.tasks.demo.sleep", 1, "done", None),
            ("cancel", "state:queued queue:events", 8, "partly",
             "3 were running: asked to stop")]):
        entry = Audit.create(uid=f"snap-{n}", at=NOW - 900 + n * 300, user="ops",
                             host="console-1", action=action, target=target, count=count,
                             outcome=outcome, detail=detail)
        for i in range(min(count, 3)):
            AuditJob.create(audit_id=entry.id, job_id=f"job-f-0{i}")
    rollup(runtime, now=NOW)  # the charts' hour, from the summaries
    return runtime


@pytest.fixture
def console(tmp_path, monkeypatch):
    runtime = build_runtime(tmp_path, monkeypatch)
    yield TqApp(Data(runtime, clock=lambda: NOW), live=False)
    runtime.close()


def show(*keys: str, expect: str, job: str | None = None):
    """A run_before for snap_compare: press keys, then wait until the `expect`
    screen is on top with its data loaded and no worker still running."""
    async def settled(app) -> bool:
        await app.workers.wait_for_complete()
        screen = app.screen
        below = app.screen_stack[-2] if len(app.screen_stack) > 1 else screen
        return (type(screen).__name__ == expect and getattr(screen, "loaded", True)
                and getattr(below, "loaded", True) and all(w.is_finished for w in app.workers))

    async def steady(pilot) -> None:
        # A DataTable measures new rows' widths on a later frame, and a status line
        # that wraps takes its second row on a later layout: wait until the screen
        # stops changing (three equal frames), not for a fixed time that a busy
        # machine can outrun.
        # Textual lays out only the screen on top: one still owing a layout when
        # a dialog opens over it is shown half laid out for good, so nothing may
        # be owed either (Textual's own flags, private but the only witness;
        # tests/test_textual_contract.py fails by name if a release renames one).
        def owed(screen) -> bool:
            return any(getattr(node, flag, False) for node in (screen, *screen.walk_children())
                       for flag in ("_layout_required", "_repaint_required",
                                    "_recompose_required"))

        # Each look first lets the app drain its messages (pause() with no delay
        # waits for idle): on a starved machine three frames 50 ms apart can be
        # equal only because nothing ran between them (a status line's second
        # row was still queued), so equal frames count only after real work.
        previous, same = None, 0
        for _ in range(200):
            await pilot.pause()
            await pilot.pause(0.05)
            frame = pilot.app.export_screenshot()
            same = same + 1 if frame == previous and not owed(pilot.app.screen) else 0
            previous = frame
            if same >= 4:
                return

    async def run_before(pilot) -> None:
        app = pilot.app
        for _ in range(1000):
            if getattr(app.screen, "loaded", False):
                break
            await pilot.pause(0.01)
        else:
            raise AssertionError("the first screen did not load")
        # A dialog keeps the screen below as it was drawn when the dialog
        # opened: let that screen finish its layout before a key opens one.
        await app.workers.wait_for_complete()
        await steady(pilot)
        await pilot.press(*keys)
        if job is not None:
            app.open_job(job)
        for _ in range(1000):
            await pilot.pause(0.01)
            if await settled(app):
                break
        else:
            raise AssertionError(f"{expect} did not settle")
        await steady(pilot)
    return run_before


SCREENS = {
    "queues": show(expect="QueuesScreen"),
    "jobs_failed": show("2", "l", "l", "l", "l", "l", expect="JobsScreen"),
    "job_detail": show(job="job-f-03", expect="JobDetailScreen"),
    "failed_groups": show("3", expect="FailedScreen"),
    "workers": show("4", expect="WorkersScreen"),
    "periodic": show("5", expect="PeriodicScreen"),
    "ingest": show("6", expect="IngestScreen"),
    "confirm_requeue": show("R", expect="ConfirmDialog"),
    "audit": show("7", expect="AuditScreen"),
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", SCREENS)
def test_screen(snap_compare, console, screen, size):
    assert snap_compare(console, run_before=SCREENS[screen], terminal_size=SIZES[size])

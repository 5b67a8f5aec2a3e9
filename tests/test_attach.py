"""`tq.attach(huey)`: stock Huey apps, run by the real `huey_consumer`, recorded in
tq's history by one added line.

What a user relies on: a RedisHuey, PriorityRedisHuey or SqliteHuey app with
`import tq; tq.attach(huey)` added (and nothing else changed) keeps working as
Huey (results, pickled arguments) and every job it enqueues or runs shows in
tq's history: its state, attempts, errors and traceback, arguments as JSON or
repr, enqueue time; its huey_consumer shows in `tq workers`.

One huey_consumer per app (module-scoped), each with its own Huey name (the
Redis key prefix) and its own SQLite file, and tq settings of its own.
"""
from __future__ import annotations

import datetime
import difflib
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import tq
from tq.attach import depths
from tq.cli import main
from tq.queries import job_detail, list_workers

from conftest import REDIS_URL, Backend, use_env, wait_for, wait_for_states

TESTS_DIR = Path(__file__).parent
APPS = TESTS_DIR / "hueyapps"
# (app module, tq backend): the Redis apps with tq on Redis + MariaDB, the
# SQLite app with tq embedded.
CASES = [("redis_app", "redis"), ("priority_app", "redis"), ("sqlite_app", "embedded")]


@pytest.mark.parametrize("app,variant,line", [
    ("redis_app", "attached", "+import tq; tq.attach(huey)  "),
    ("priority_app", "attached", "+import tq; tq.attach(huey)  "),
    ("sqlite_app", "attached", "+import tq; tq.attach(huey)  "),
    ("redis_app", "durable", "+import tq; tq.attach(huey, durable=True)  "),
    ("priority_app", "durable", "+import tq; tq.attach(huey, durable=True)  "),
])
def test_attached_twin_differs_by_one_added_line(app, variant, line):
    plain = (APPS / f"{app}.py").read_text().splitlines()
    attached = (APPS / f"{app}_{variant}.py").read_text().splitlines()
    changed = [line for line in difflib.unified_diff(plain, attached, lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert len(changed) == 1 and changed[0].startswith(line), changed


class AttachedApp:
    def __init__(self, app: str, kind: str, tmp_path: Path) -> None:
        self.app = app
        self.backend = Backend(kind, tmp_path)
        self.name = f"app{uuid.uuid4().hex[:10]}"
        self.app_env = {"HUEYAPP_NAME": self.name, "HUEYAPP_REDIS_URL": REDIS_URL,
                        "HUEYAPP_SQLITE": str(tmp_path / "app.db")}
        if str(TESTS_DIR) not in sys.path:
            sys.path.insert(0, str(TESTS_DIR))
        from hueyapps import load_attached
        self.module = load_attached(app, self.app_env)
        self.huey = self.module.huey
        self.apps_env = {"TQ_HUEY_APPS": f"hueyapps.{app}_attached:huey"}
        self.runtime = self.backend.runtime(**self.apps_env)
        tq.attach(self.huey, runtime=self.runtime)  # this process's records: this test's tq
        environment = {**os.environ, **self.backend.env, **self.app_env,
                       "PYTHONPATH": str(TESTS_DIR),
                       # the huey_consumer rolls the summaries up (tq stats)
                       "TQ_HISTORY_ROLLUP_EVERY": "@every 1s"}
        executable = Path(sys.executable).with_name("huey_consumer")
        self.err = tmp_path / "huey_consumer.err"
        self.process = subprocess.Popen(
            [str(executable), f"hueyapps.{app}_attached.huey", "-w", "2", "-k", "thread",
             "-d", "0.05", "-m", "0.2"],
            env=environment, cwd=tmp_path, stdout=subprocess.DEVNULL,
            stderr=open(self.err, "wb"))

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.huey.flush()  # the app's own keys (Redis prefix, SQLite file in tmp)
        self.backend.cleanup()


@pytest.fixture(scope="module", params=CASES, ids=[f"{a}-{k}" for a, k in CASES])
def attached(request, tmp_path_factory):
    app, kind = request.param
    running = AttachedApp(app, kind, tmp_path_factory.mktemp(app))
    yield running
    running.stop()


def test_every_job_is_recorded(attached):
    app, runtime = attached.module, attached.runtime
    added = app.add(1, 2)
    failing = app.fail("boom <b>\x1b[31m")
    urgent = app.urgent({1, 2})  # a set: pickled by Huey, repr in tq's history
    delayed = app.add.schedule((2, 3), delay=1)
    assert added.get(blocking=True, timeout=30) == 3  # Huey's own results keep working
    assert delayed.get(blocking=True, timeout=30) == 5
    assert urgent.get(blocking=True, timeout=30) == {"value": {1, 2}}
    ids = [added.id, failing.id, urgent.id, delayed.id]
    states = wait_for_states(runtime, ids, states=("succeeded", "failed"), timeout=60)
    assert states == {added.id: "succeeded", failing.id: "failed", urgent.id: "succeeded",
                      delayed.id: "succeeded"}, attached.err.read_text()[-2000:]

    row = job_detail(runtime, added.id)
    assert row is not None
    assert row["queue"] == attached.name and row["task"] == "hueyapps.{}_attached.add".format(
        app.__name__.split(".")[-1].removesuffix("_attached"))
    assert row["args"] == [1, 2] and row["attempts"] == 1
    assert row["enqueued_at"] and row["started_at"] and row["finished_at"]
    assert f":{attached.process.pid}:" in row["worker"], row["worker"]
    assert [a["outcome"] for a in row["attempt_log"]] == ["succeeded"]
    assert row["has_result"] and row["result"] == 3  # tq.result / tq show read it too

    row = job_detail(runtime, failing.id)
    assert row is not None and row["attempts"] == 2 and row["max_retries"] == 1
    assert row["error_type"] == "ValueError" and "boom" in row["error_message"]
    assert "raise ValueError(message)" in row["traceback"]
    assert [a["outcome"] for a in row["attempt_log"]] == ["failed", "failed"]

    row = job_detail(runtime, urgent.id)
    assert row is not None and row["args"] == "[{1, 2}]"  # the repr, as a JSON string
    assert not row["has_result"]  # a set is not JSON: only Huey's result store has it
    assert row["priority"] == (0 if attached.app == "redis_app" else 5)

    row = job_detail(runtime, delayed.id)
    assert row is not None and row["args"] == [2, 3] and row["eta"]


def test_huey_consumer_is_listed_as_a_worker(attached):
    def listed():
        return [w for w in list_workers(attached.runtime)
                if w.get("pid") == attached.process.pid and w["alive"]]
    workers = wait_for(listed, timeout=30, message="the huey_consumer's heartbeat")
    assert workers[0]["queues"] == [attached.name]
    # `-w 2`: both worker threads counted (each runs the start-up hook once)
    wait_for(lambda: listed()[0]["workers"] == 2, timeout=30, message="2 workers counted")


def test_app_module_in_the_current_directory_loads_as_for_huey_consumer(tmp_path):
    """`huey_consumer shop.huey` finds shop.py in the current directory (it puts
    the directory on sys.path when the import fails); `[huey] apps = shop:huey`
    run from the same directory finds it too, with no PYTHONPATH."""
    module = f"shop{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "from huey import SqliteHuey\n"
        f"huey = SqliteHuey('{module}', filename='shop.db')\n")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("TQ_") and key != "PYTHONPATH"}
    backend = Backend("embedded", tmp_path)  # its history schema, as `tq up` leaves it
    env.update({**backend.env, "TQ_HUEY_APPS": f"{module}:huey"})
    try:
        done = subprocess.run([str(Path(sys.executable).with_name("tq")), "status", "--json"],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60)
    finally:
        backend.cleanup()
    assert done.returncode == 0, done.stderr
    assert module in json.loads(done.stdout)["queues"]


def test_status_shows_the_app_queue(attached, monkeypatch, capsys):
    """`[huey] apps` puts the app's queue in `tq status`, its depths from the app's
    own storage and its outcomes from history."""
    later = attached.module.add.schedule((1, 1), delay=3600)
    done = attached.module.add(5, 5)
    assert done.get(blocking=True, timeout=30) == 10
    wait_for_states(attached.runtime, [done.id], timeout=30)
    use_env(monkeypatch, {**attached.backend.env, **attached.apps_env})
    wait_for(lambda: main(["status", "--json"]) == 0
             and json.loads(capsys.readouterr().out)["queues"][attached.name]["scheduled"] >= 1,
             timeout=30, message="the scheduled job in the app's storage")
    assert main(["status", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["queues"][attached.name]
    assert row["history"]["succeeded"] >= 1 and row["queued"] == 0
    assert main(["status"]) == 0 and attached.name in capsys.readouterr().out
    attached.huey.revoke_by_id(later.id)


def test_cli_reads_attached_jobs_like_tqs_own(attached, monkeypatch, capsys):
    """`tq jobs`, `tq show`, `tq workers` and `tq metrics` over an attached app's jobs:
    the same history and control state as tq's own, through the same verbs."""
    done = attached.module.add(20, 22)
    assert done.get(blocking=True, timeout=30) == 42
    wait_for_states(attached.runtime, [done.id], timeout=30)
    use_env(monkeypatch, {**attached.backend.env, **attached.apps_env})
    capsys.readouterr()
    assert main(["jobs", "--queue", attached.name, "--limit", "1000", "--json"]) == 0
    listed = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed[done.id]["state"] == "succeeded"
    assert main(["show", done.id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["args"] == [20, 22] and shown["queue"] == attached.name
    wait_for(lambda: main(["workers", "--json"]) == 0 and any(
        w.get("pid") == attached.process.pid
        for w in json.loads(capsys.readouterr().out)), timeout=30,
        message="the huey_consumer in tq workers")
    assert main(["metrics"]) == 0
    exposition = capsys.readouterr().out
    assert f'queue="{attached.name}"' in exposition


def test_depths_read_from_each_storage_kind(attached):
    """Queued depth on a Redis list, a priority zset and SQLite: an idle twin of the
    app's Huey (same class, a name of its own, no consumer)."""
    huey = attached.huey
    kwargs = ({"filename": attached.app_env["HUEYAPP_SQLITE"]}
              if attached.app == "sqlite_app" else {"url": REDIS_URL})
    idle = type(huey)(f"{attached.name}idle", **kwargs)
    try:
        noop = idle.task(priority=None if attached.app == "redis_app" else 3)(lambda: None)
        for _ in range(3):
            noop()
        later = noop.s()
        later.eta = datetime.datetime.now() + datetime.timedelta(hours=1)
        idle.add_schedule(later)  # what the consumer does with a job that is not due
        assert depths(idle) == {"queued": 3, "scheduled": 1, "running": 0, "held": 0}
    finally:
        idle.flush()


HOSTILE_APPS = ["nocolon", "a:b:c", "1mod:huey", "mod:attr\x00", "mod:[bold]x[/]",
                "mod:\x1b[2J", "m\udcff:huey"]
UNLOADABLE_APPS = ["tq_no_such_module:huey", "mod:" + "a" * 5000, "os:path", "os:no_such_attribute",
                   "hueyapps.redis_app:add"]


@pytest.mark.parametrize("value", HOSTILE_APPS + UNLOADABLE_APPS,
                         ids=range(len(HOSTILE_APPS + UNLOADABLE_APPS)))
def test_bad_huey_apps_setting_is_one_line_exit_2(value, tmp_path, monkeypatch, capsys):
    from tq.config import ConfigError, load_config
    from tq.runtime import Runtime
    env = {"TQ_TQ_DATA_DIR": str(tmp_path / "data"), "TQ_HUEY_APPS": value}
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    try:
        config = load_config(env=env)
    except ConfigError as exc:
        message = str(exc)
    else:
        assert value in UNLOADABLE_APPS, value
        runtime = Runtime(config)
        try:
            from tq.attach import apps
            with pytest.raises(ConfigError) as caught:
                apps(runtime)
            message = str(caught.value)
        finally:
            runtime.close()
        use_env(monkeypatch, env)
        assert main(["status"]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "\n" not in message and "[huey] apps" in message and "Traceback" not in message
    assert len(message) < 1000


def test_pause_resume_and_cancel_through_hueys_api(attached, monkeypatch, capsys):
    """tq.ops on an attached app: pause = Huey's revoke_all (the consumer drops
    what it dequeues meanwhile, recorded canceled), resume = restore_all, cancel =
    revoke_by_id; each audited as tq's own."""
    from tq import ops
    runtime, app = attached.runtime, attached.module
    task = f"hueyapps.{attached.app}_attached.add"
    with pytest.raises(ops.ActionError):
        ops.pause(runtime, attached.name, "no.such.task")
    use_env(monkeypatch, {**attached.backend.env, **attached.apps_env})
    assert main(["pause", attached.name, "--task", "x[b]\x1b[2J"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "\x1b" not in err and "Traceback" not in err
    ops.pause(runtime, attached.name, task)
    dropped = app.add(1, 1)
    wait_for_states(runtime, [dropped.id], states=("canceled",), timeout=30)
    row = job_detail(runtime, dropped.id)
    assert row is not None and row["error_type"] == "Revoked"
    ops.resume(runtime, attached.name, task)
    assert app.add(2, 2).get(blocking=True, timeout=30) == 4
    later = app.add.schedule((3, 3), delay=3600)
    wait_for_states(runtime, [later.id], states=("queued", "scheduled"), timeout=30)
    result = ops.cancel(runtime, [later.id])
    assert result.canceled == [later.id] and later.is_revoked()
    assert wait_for_states(runtime, [later.id], states=("canceled",))[later.id] == "canceled"


def test_requeue_reenqueues_through_the_app(attached):
    """`tq requeue` of an attached app's failed job: a copy enqueued by Huey's own
    enqueue, linked by requeued_from; a job whose arguments history holds only as
    a repr is refused with its reason."""
    from tq import ops
    runtime, app = attached.runtime, attached.module
    failing = app.fail("again")
    opaque = app.urgent({3})
    wait_for_states(runtime, [failing.id, opaque.id], states=("failed", "succeeded"),
                    timeout=30)
    result = ops.requeue(runtime, [failing.id, opaque.id])
    copy = result.new_ids[failing.id]
    assert "not JSON" in result.skipped[opaque.id]
    states = wait_for_states(runtime, [copy, failing.id], states=("failed", "requeued"),
                             timeout=30)
    assert states == {copy: "failed", failing.id: "requeued"}
    row = job_detail(runtime, copy)
    assert row is not None and row["requeued_from"] == failing.id and row["args"] == ["again"]


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _deep(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize("value,expected", [
    ([1, "a", None, True, {"k": [1.5]}], [1, "a", None, True, {"k": [1.5]}]),
    ([float("nan")], "[nan]"),
    ([float("inf"), 10 ** 400], None),
    ([{1, 2}], "[{1, 2}]"),
    ([(1, 2)], "[(1, 2)]"),  # a tuple inside: JSON would bring back a list
    ([{1: "a"}], "[{1: 'a'}]"),  # a key JSON would turn into a string
    (["\udcff bad utf-8"], ["\udcff bad utf-8"]),
    (["[b]markup[/b]\x1b[2J"], ["[b]markup[/b]\x1b[2J"]),
    ([_BadRepr()], "<unrepresentable: RuntimeError>"),
    (7, 7),  # not a tuple: Huey does not check what a caller passes
], ids=range(10))
def test_arguments_are_recorded_as_json_or_repr(value, expected):
    from tq.attach import _json_or_repr, _listed
    text = _json_or_repr(_listed(value))
    decoded = json.loads(text)
    if expected is None:
        assert isinstance(decoded, str)
    else:
        assert decoded == expected


def test_huge_and_deep_arguments_stay_bounded():
    from tq.attach import _json_or_repr
    assert len(_json_or_repr(["x" * 1_000_000, {1}])) < 20_000  # the repr is cut
    assert len(_json_or_repr(["x" * 1_000_000])) < 20_000  # JSON, but too long to keep
    assert _json_or_repr(["\udcff"]).isascii()
    assert isinstance(json.loads(_json_or_repr(_deep(100_000))), str)


# --- run now of a scheduled attached job ------------------------------------------------

GARBAGE = [b"not a pickle", b"\x80\x04K\x01.", b"\x00" * 64]  # noise, the int 1, zeros
FAR = datetime.datetime(2100, 1, 1)  # never due while a test runs


def _on_app_schedule(huey, job_id: str) -> bool:
    for raw in huey.storage.scheduled_items():
        try:
            if huey.deserialize_task(raw).id == job_id:
                return True
        except Exception:
            continue
    return False


def _scheduled(attached, args=(4, 5)):
    """A job of the app an hour ahead, once its huey_consumer has put it on the schedule."""
    later = attached.module.add.schedule(args, delay=3600)
    wait_for(lambda: _on_app_schedule(attached.huey, later.id), timeout=30,
             message="the job on the app's schedule")
    wait_for_states(attached.runtime, [later.id], states=("scheduled",), timeout=30)
    return later


def test_run_now_moves_a_scheduled_job_and_skips_garbage(attached, caplog):
    """`tq run-now` of an attached app's job an hour ahead: taken off the app's own
    schedule, enqueued by Huey now, its result arrives; history has it succeeded after
    one attempt (queued first: test_run_now_record_outranks_scheduled...); audited. Undecodable members of the schedule are skipped
    and logged, and stay where they are."""
    from tq import audit, ops
    from tq.attached_schedule import take
    runtime, huey = attached.runtime, attached.huey
    forged = attached.module.add.s(1, 2)
    forged.id = ["an", "unhashable", "id"]  # decodes, but is no job of anyone's
    garbage_messages = [*GARBAGE, huey.serialize_task(forged)]
    for garbage in garbage_messages:
        huey.storage.add_to_schedule(garbage, FAR)
    try:
        later = _scheduled(attached)
        with caplog.at_level("WARNING", logger="tq.ops"):
            result = ops.run_now(runtime, [later.id])
        assert result.done == [later.id] and not result.skipped and result.error is None
        assert "do not decode" in caplog.text and attached.name in caplog.text
        assert later.get(blocking=True, timeout=30) == 9  # now, not in an hour
        wait_for_states(runtime, [later.id], timeout=30)
        row = job_detail(runtime, later.id)
        assert row is not None and row["state"] == "succeeded" and row["attempts"] == 1
        entry = next(e for e in audit.entries(runtime.history_db()) if e["action"] == "run-now")
        assert entry["ids"] == [later.id] and entry["count"] == 1 and entry["outcome"] == "done"
    finally:
        taken = [take(huey, garbage) for garbage in garbage_messages]
    assert taken == [True] * len(garbage_messages)  # left on the schedule, as they were


def test_run_now_record_outranks_scheduled_until_the_job_runs(backend):
    """The move's record replaces `scheduled` (and a late `scheduled` record does
    not bring the eta back); the job's running and final records then follow."""
    from tq import records
    from tq.history import write_records
    from tq.models import Job, state_seq
    runtime = backend.runtime()
    db = runtime.history_db()
    base = {"kind": "job", "id": "moved-1", "queue": "q", "task": "t", "args": "[]",
            "kwargs": "{}", "priority": 0, "max_retries": 0, "enqueued_at": 1.0,
            "requeued_from": None, "attempts": 0, "updated_at": 1.0}
    scheduled = dict(base, state="scheduled", seq=state_seq("scheduled", 0), eta=9e9)
    write_records(db, [scheduled, dict(records.run_now("moved-1", 0, False, 5.0))])
    write_records(db, [scheduled])  # late
    assert (Job.get_by_id("moved-1").state, Job.get_by_id("moved-1").eta) == ("queued", 5.0)
    write_records(db, [dict(base, state="running", seq=state_seq("running", 1), attempts=1)])
    assert Job.get_by_id("moved-1").state == "running"
    retry = dict(base, id="moved-2", state="retrying", seq=state_seq("retrying", 1), eta=9e9)
    write_records(db, [retry, dict(records.run_now("moved-2", 1, True, 6.0)), retry])
    assert (Job.get_by_id("moved-2").state, Job.get_by_id("moved-2").eta) == ("retrying", 6.0)


def test_run_now_skips_what_is_not_on_the_schedule(attached):
    """A finished job, a job already moved, an unknown id: skipped, with why."""
    from tq import ops
    runtime, app = attached.runtime, attached.module
    done = app.add(1, 1)
    assert done.get(blocking=True, timeout=30) == 2
    wait_for_states(runtime, [done.id], timeout=30)
    result = ops.run_now(runtime, [done.id, "no-such-job"])
    assert result.done == [] and result.outcome == "nothing"
    assert result.skipped == {done.id: "not on the schedule (history: succeeded)",
                              "no-such-job": "not on the schedule (not in history)"}


def test_two_run_nows_at_once_move_the_job_once(attached):
    """Of two run-nows racing for one job, one takes it off the schedule: it runs once."""
    import threading

    from tq import ops
    from tq.attached_schedule import take
    runtime, huey = attached.runtime, attached.huey
    later = _scheduled(attached, (6, 7))
    start = threading.Barrier(2)
    results: list = []

    def racer():
        start.wait()
        results.append(ops.run_now(runtime, [later.id]))
    threads = [threading.Thread(target=racer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(len(r.done) for r in results) == [0, 1], [r.as_dict() for r in results]
    assert later.get(blocking=True, timeout=30) == 13
    wait_for_states(runtime, [later.id], timeout=30)
    row = job_detail(runtime, later.id)
    assert row is not None and row["attempts"] == 1 and len(row["attempt_log"]) == 1
    assert not any(huey.deserialize_task(raw).id == later.id
                   for raw in huey.storage.enqueued_items())
    # The take itself: the first gets the message, the second finds it gone.
    huey.storage.add_to_schedule(b"once", FAR)
    assert (take(huey, b"once"), take(huey, b"once")) == (True, False)


def test_run_now_of_a_waiting_retry(attached):
    """A retry waiting on the schedule (Huey puts one there after a retry_delay) moves
    too: it stays `retrying` in history until its next attempt runs."""
    from tq import ops
    runtime, app, huey = attached.runtime, attached.module, attached.huey
    retry = app.fail.s("again later")
    retry.retries = 0  # one retry of fail's one used: its second attempt is next
    retry.eta = FAR
    huey.add_schedule(retry)
    preview = ops.preview(runtime, "run_now", [retry.id])
    assert preview.counts == {("retrying", attached.name,
                               f"hueyapps.{attached.app}_attached.fail"): 1}
    result = ops.run_now(runtime, [retry.id])
    assert result.done == [retry.id]
    wait_for_states(runtime, [retry.id], states=("failed",), timeout=30)
    row = job_detail(runtime, retry.id)
    assert row is not None and row["attempts"] == 2 and row["error_message"] == "again later"


def test_run_now_of_a_revoked_job_leaves_it(attached):
    """A job Huey has revoked (tq cancel) stays on the schedule: moving it would only
    have its consumer drop it."""
    from tq import ops
    runtime, huey = attached.runtime, attached.huey
    later = _scheduled(attached, (8, 8))
    later.revoke()
    try:
        result = ops.run_now(runtime, [later.id])
        assert result.done == [] and "revoked" in result.skipped[later.id]
        assert _on_app_schedule(huey, later.id)
    finally:
        later.restore()
        huey.revoke_by_id(later.id)


HOSTILE_IDS = ["x" * 100_000, "[bold red]x[/]", "\x1b[2J\x1b[31mred", "id\nsecond line",
               "\udcff", "", "../../etc/passwd", "'; drop table job; --"]


@pytest.mark.parametrize("job_id", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
def test_run_now_of_hostile_ids_is_one_line_exit_2(attached, monkeypatch, capsys, job_id):
    use_env(monkeypatch, {**attached.backend.env, **attached.apps_env})
    huey = attached.huey
    # What is on the app's schedule and not due for a while: run-now must leave it
    # (the consumer's own scheduler may move what comes due meanwhile).
    later = huey.scheduled()
    cutoff = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + \
        datetime.timedelta(seconds=60)
    waiting = {task.id for task in later if task.eta and task.eta > cutoff}
    capsys.readouterr()
    assert main(["run-now", job_id]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "not on the schedule" in lines[0], captured.err
    assert len(lines[0]) < 300 and "\x1b" not in captured.err + captured.out
    assert "Traceback" not in captured.err
    assert waiting <= {task.id for task in huey.scheduled()}


# --- the surfaces that read and act on attached queues ------------------------------------

def test_stats_count_the_app_queue(attached, monkeypatch, capsys):
    """`tq stats` (the summaries) counts the app's jobs: the huey_consumer rolls the
    history up itself ([history] rollup_every, 1 s here), with no tq consumer anywhere."""
    runtime, app = attached.runtime, attached.module
    done = [app.add(i, i) for i in range(3)]
    for result in done:
        result.get(blocking=True, timeout=30)
    wait_for_states(runtime, [r.id for r in done], timeout=30)
    use_env(monkeypatch, {**attached.backend.env, **attached.apps_env})

    def counted() -> dict | None:
        capsys.readouterr()
        assert main(["stats", "--by", "queue", "--json"]) == 0
        rows = {row["queue"]: row for row in json.loads(capsys.readouterr().out)["rows"]}
        row = rows.get(attached.name)
        return row if row and row["succeeded"] >= 3 else None
    row = wait_for(counted, timeout=30, message="the huey_consumer's roll-up")
    assert row["run_p50"] is not None
    assert main(["stats"]) == 0
    shown = capsys.readouterr().out
    assert attached.name in shown and f"hueyapps.{attached.app}_attached.add" in shown


@pytest.fixture
def api(attached):
    """`tq serve`'s app on a real uvicorn, with [huey] apps naming the attached app."""
    import threading

    import httpx
    import uvicorn

    from tq.http.app import create_app
    from tq.tokens import load
    runtime = attached.backend.runtime(**attached.apps_env)
    app = create_app(runtime, load({"TQ_API_TOKENS": f"reader:{'r' * 20}:read,"
                                                      f"ops:{'o' * 20}:operate"}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=30, message="uvicorn to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    clients = {role: httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=60,
                                  headers={"Authorization": f"Bearer {role[0] * 20}"})
               for role in ("reader", "ops")}
    yield clients
    for client in clients.values():
        client.close()
    server.should_exit = True
    thread.join(30)
    runtime.close()


def test_http_api_lists_and_acts_on_the_app_queue(attached, api):
    """GET /queues has the app's queue with its depths, GET /jobs?queue= its jobs;
    cancel and run-now of its jobs through the API act through Huey, audited as
    api:<token name>."""
    runtime, app = attached.runtime, attached.module
    done = app.add(2, 3)
    assert done.get(blocking=True, timeout=30) == 5
    to_cancel = _scheduled(attached, (1, 0))
    to_run = _scheduled(attached, (1, 1))
    wait_for_states(runtime, [done.id], timeout=30)
    queues = api["reader"].get("/queues")
    assert queues.status_code == 200, queues.text
    row = queues.json()["queues"][attached.name]
    assert row["scheduled"] >= 2 and row["queued"] == 0 and row["history"]["succeeded"] >= 1
    listed = api["reader"].get("/jobs", params={"queue": attached.name, "limit": 1000})
    assert listed.status_code == 200, listed.text
    states = {job["id"]: job["state"] for job in listed.json()["jobs"]}
    assert states[done.id] == "succeeded" and states[to_cancel.id] == "scheduled"
    assert all(job["queue"] == attached.name for job in listed.json()["jobs"])

    canceled = api["ops"].post(f"/jobs/{to_cancel.id}/cancel")
    assert canceled.status_code == 200 and canceled.json()["count"] == 1, canceled.text
    assert to_cancel.is_revoked()
    moved = api["ops"].post(f"/jobs/{to_run.id}/run-now")
    assert moved.status_code == 200 and moved.json()["done"] == [to_run.id], moved.text
    assert to_run.get(blocking=True, timeout=30) == 2
    assert wait_for_states(runtime, [to_cancel.id, to_run.id], timeout=30,
                           states=("succeeded", "canceled")) == {
        to_cancel.id: "canceled", to_run.id: "succeeded"}
    entries = api["reader"].get("/audit").json()["entries"]
    acted = {(e["action"], tuple(e["ids"])): e["user"] for e in entries}
    assert acted[("cancel", (to_cancel.id,))] == "api:ops"
    assert acted[("run-now", (to_run.id,))] == "api:ops"
    assert api["ops"].post(f"/jobs/{done.id}/run-now").json()["skipped"] == {
        done.id: "not on the schedule (history: succeeded)"}


def test_console_queues_row_of_the_app(attached):
    """The console's Queues screen has a row for the app's queue: its name, its depth
    from the app's storage, its outcomes from history."""
    import asyncio

    from test_tui import loaded, make_app
    runtime, app = attached.runtime, attached.module
    done = app.add(3, 4)
    assert done.get(blocking=True, timeout=30) == 7
    later = _scheduled(attached, (0, 0))
    wait_for_states(runtime, [done.id], timeout=30)
    console_runtime = attached.backend.runtime(**attached.apps_env)
    scheduled = attached.huey.storage.schedule_size()

    async def scenario():
        async with make_app(console_runtime).run_test(size=(130, 30)) as pilot:
            screen = await loaded(pilot)
            table = screen.query_one("#queues")
            assert attached.name in [key.value for key in table.rows]

            def cell(column):
                return str(table.get_cell(attached.name, column))
            assert cell("queue") == attached.name and cell("state") == "running"
            assert (cell("queued"), cell("sched"), cell("run")) == ("0", str(scheduled), "0")
            assert int(cell("ok/1h")) >= 1 and cell("fail") != "…"
    try:
        asyncio.run(scenario())
    finally:
        console_runtime.close()
        attached.huey.revoke_by_id(later.id)


def test_run_now_puts_the_job_back_when_the_enqueue_fails(attached, monkeypatch):
    """Taken off the schedule, then the app's enqueue fails (its server went away):
    the message goes back on the schedule as it was, and run-now says it failed."""
    import redis

    from tq import ops
    runtime, huey = attached.runtime, attached.huey
    later = _scheduled(attached, (9, 9))

    def down(task):
        raise redis.exceptions.ConnectionError("the app's server went away")
    monkeypatch.setattr(huey, "enqueue", down)
    result = ops.run_now(runtime, [later.id])
    assert result.outcome == "failed" and "went away" in (result.error or "")
    assert result.line().endswith("nothing changed")
    monkeypatch.undo()
    assert _on_app_schedule(huey, later.id)
    assert ops.run_now(runtime, [later.id]).done == [later.id]  # and it moves once it can
    assert later.get(blocking=True, timeout=30) == 18

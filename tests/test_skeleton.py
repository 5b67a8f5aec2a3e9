"""The walking skeleton: submit -> queue -> consumer -> history, on both backends."""
from __future__ import annotations

import json

import pytest

import tq
from tq.cli import main
from tq.config import ConfigError, load_config
from tq.history import merge, write_records
from tq.models import Attempt, Job, state_seq
from tq.queries import catch_up, job_detail, list_jobs, queue_depths

from conftest import MYSQL_HOST, MYSQL_PORT, job_states, wait_for, wait_for_states
from proxy import CuttableProxy


def test_200_jobs_succeed_with_times(backend, start_consumer):
    runtime = backend.runtime()
    ids = tq.submit_many([{"task": "tq.tasks.demo.echo", "args": [i]} for i in range(200)],
                         runtime=runtime)
    assert len(set(ids)) == 200
    assert job_states(runtime, ids) == {job_id: "queued" for job_id in ids}
    assert queue_depths(runtime, "default")["queued"] == 200
    start_consumer(runtime, workers=4)
    wait_for_states(runtime, ids)
    rows = list(Job.select().where(Job.id.in_(ids)))
    assert all(row.started_at and row.finished_at and row.finished_at >= row.started_at
               and row.enqueued_at <= row.started_at for row in rows)
    assert all(row.attempts == 1 and row.worker for row in rows)
    assert {json.loads(row.args)[0] for row in rows} == set(range(200))
    assert queue_depths(runtime, "default") == {"queued": 0, "scheduled": 0, "running": 0,
                                                "held": 0}


def test_failing_job_records_error_and_traceback(backend, start_consumer):
    runtime = backend.runtime()
    job_id = tq.submit("tq.tasks.demo.fail", "disk on fire", runtime=runtime)
    start_consumer(runtime, workers=1)
    wait_for_states(runtime, [job_id], states=("failed",))
    job = job_detail(runtime, job_id)
    assert job["error_type"] == "RuntimeError"
    assert job["error_message"] == "disk on fire"
    assert "Traceback" in job["traceback"] and "raise RuntimeError(message)" in job["traceback"]
    assert [a["outcome"] for a in job["attempt_log"]] == ["failed"]


def test_history_records_in_any_order_end_in_the_latest_state(runtime):
    database = runtime.history_db()
    base = {"kind": "job", "id": "j1", "queue": "default", "task": "t"}
    succeeded = dict(base, state="succeeded", seq=state_seq("succeeded", 1), attempts=1,
                     finished_at=2.0, args=None)
    running = dict(base, state="running", seq=state_seq("running", 1), attempts=1,
                   started_at=1.0)
    queued = dict(base, state="queued", seq=state_seq("queued", 0), args="[1]",
                  enqueued_at=0.5)
    for record in (succeeded, running, queued):  # newest first: worst case
        write_records(database, [record])
    write_records(database, [succeeded, queued])  # and again: idempotent
    row = Job.get_by_id("j1")
    assert (row.state, row.args, row.enqueued_at, row.started_at, row.finished_at) == \
        ("succeeded", "[1]", 0.5, 1.0, 2.0)
    assert merge(merge(None, succeeded), queued)["state"] == "succeeded"
    assert Job.select().count() == 1


def test_config_precedence_file_then_env_then_flag(tmp_path):
    ini = tmp_path / "tq.ini"
    ini.write_text("[consumer]\nworkers = 3\nheartbeat = 4\n[queues]\nmail = 4\n")
    assert load_config(ini, env={}).consumer.workers == 3
    assert load_config(ini, env={}).queues == {"mail": 4}
    assert load_config(ini, env={"TQ_CONSUMER_WORKERS": "5"}).consumer.workers == 5
    flag = load_config(ini, env={"TQ_CONSUMER_WORKERS": "5"},
                       overrides={"consumer": {"workers": 9}})
    assert (flag.consumer.workers, flag.consumer.heartbeat) == (9, 4.0)
    assert load_config(env={"TQ_CONFIG": str(ini)}).consumer.workers == 3
    defaults = load_config(env={})
    assert defaults.queue.backend == "sqlite" and set(defaults.queues) == {
        "default", "events", "reports"}


@pytest.mark.parametrize("text, message", [
    ("[consumer]\nworkerz = 3\n", "unknown setting [consumer] workerz"),
    ("[consumer]\nworkers = many\n", "bad value for [consumer] workers"),
    ("[nonsense]\na = 1\n", "unknown section [nonsense]"),
    ("[history]\npassword = hunter2\n", "must come from the environment"),
    ("[history]\nurl = mysql://root:hunter2@db/tq\n", "must not hold a password"),
    ("[queue]\nbackend = kafka\n", "bad value for [queue] backend"),
])
def test_bad_config_is_one_line_naming_the_key(tmp_path, text, message):
    ini = tmp_path / "tq.ini"
    ini.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(ini, env={})
    assert message in str(info.value) and "\n" not in str(info.value)
    assert "hunter2" not in str(info.value)


def test_bad_config_from_the_cli_exits_2(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "missing.ini"), "status"]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_cli_submit_and_jobs(tq_env, backend, capsys):
    assert main(["submit", "tq.tasks.demo.echo", "--args", '["hi"]', "--priority", "3"]) == 0
    job_id = capsys.readouterr().out.strip()
    assert main(["jobs", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["state"], r["args"], r["priority"]) for r in rows] == [
        (job_id, "queued", ["hi"], 3)]
    assert main(["show", job_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["task"] == "tq.tasks.demo.echo"


@pytest.mark.parametrize("argv, message", [
    (["submit", "tq.tasks.demo.echo", "--args", "[1,"], "--args: invalid JSON"),
    (["submit", "no.such.task"], "unknown task 'no.such.task'"),
    (["submit", "tq.tasks.demo.echo", "--queue", "nope"], "unknown queue 'nope'"),
    (["submit", "tq.tasks.demo.sleep", "--args", '["long"]'], "must be float"),
    (["submit", "tq.tasks.demo.sleep", "--args", "[1, 2]"], "do not fit"),
    (["submit", "tq.tasks.demo.echo", "--priority", "-1"], "priority must be"),
    (["submit", "tq.tasks.demo.echo", "--priority", "99999999"], "priority must be"),
    (["submit", "tq.tasks.demo.echo", "--eta", "next tuesday"], "not an ISO 8601 time"),
])
def test_bad_submit_is_one_line_exit_2_and_enqueues_nothing(tq_env, backend, capsys, argv,
                                                            message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("\n") == 1
    runtime = backend.runtime()
    assert sum(queue_depths(runtime, q)["queued"] for q in runtime.queues) == 0


def test_oversized_argument_is_refused(tq_env, backend, capsys, monkeypatch):
    monkeypatch.setenv("TQ_QUEUE_MAX_ARG_BYTES", "1000")
    assert main(["submit", "tq.tasks.demo.echo", "--args", json.dumps(["x" * 2000])]) == 2
    assert "over the limit of 1,000 ([queue] max_arg_bytes)" in capsys.readouterr().err


def test_batch_file_of_10000_jobs_is_one_command(tq_env, backend, tmp_path, capsys):
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps({"task": "tq.tasks.demo.echo", "args": [i],
                                        "queue": "reports" if i % 2 else "default"}) + "\n"
                            for i in range(10_000)))
    assert main(["submit", "--file", str(path)]) == 0
    assert "submitted 10000 jobs" in capsys.readouterr().out
    runtime = backend.runtime()
    assert queue_depths(runtime, "default")["queued"] == 5000
    assert queue_depths(runtime, "reports")["queued"] == 5000
    runtime.flush_history()  # the queued rows: no consumer runs here to write them
    assert Job.select().where(Job.state == "queued").count() == 10_000


def test_batch_file_with_bad_lines_submits_the_good_ones(tq_env, backend, tmp_path, capsys):
    lines = [json.dumps({"task": "tq.tasks.demo.echo", "args": [i]}) for i in range(5)]
    lines[1] = "{not json"
    lines[3] = json.dumps({"task": "no.such.task"})
    path = tmp_path / "jobs.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe\n")
    assert main(["submit", "--file", str(path)]) == 2
    captured = capsys.readouterr()
    assert "tq: 3 submitted, 3 bad: line 2: invalid JSON" in captured.err.splitlines()[-1]
    assert "line 2: invalid JSON" in captured.err
    assert "line 4: unknown task" in captured.err
    assert "line 6: not UTF-8" in captured.err
    runtime = backend.runtime()
    assert queue_depths(runtime, "default")["queued"] == 3


def test_history_outage_loses_no_record(redis_backend, start_consumer):
    """MariaDB unreachable for a while mid-run: jobs keep running, and every
    final state is in history once it is back."""
    proxy = CuttableProxy(MYSQL_HOST, MYSQL_PORT)
    try:
        url = f"mysql://root@127.0.0.1:{proxy.port}/{redis_backend.database_name}"
        runtime = redis_backend.runtime(TQ_HISTORY_URL=url, TQ_QUEUE_CONNECT_TIMEOUT="1")
        runtime.history_db()
        start_consumer(runtime, workers=4)
        first = tq.submit_many([{"task": "tq.tasks.demo.echo", "args": [i]}
                                for i in range(50)], runtime=runtime)
        wait_for_states(runtime, first)
        proxy.cut()
        # Jobs submitted while history is down are enqueued; their queued rows are not.
        during = tq.submit_many([{"task": "tq.tasks.demo.sleep", "args": [0.01]}
                                 for _ in range(100)], runtime=runtime)
        wait_for(lambda: queue_depths(runtime, "default")["queued"] == 0
                 and queue_depths(runtime, "default")["running"] == 0, timeout=30,
                 message="jobs to run while history is down")
        wait_for(lambda: runtime.writer.backlog > 0, timeout=30,
                 message="the writer to keep the records it cannot write")  # not dropped
        proxy.restore()
        states = wait_for_states(runtime, first + during, timeout=40)
        assert set(states.values()) == {"succeeded"}
        assert Attempt.select().where(Attempt.job_id.in_(during)).count() == 100
    finally:
        proxy.close()


def test_submit_needs_no_history_database_and_its_rows_follow(redis_backend):
    """With MariaDB unreachable and no consumer running, submitting still works;
    the queued rows reach history with the next read once it is back."""
    proxy = CuttableProxy(MYSQL_HOST, MYSQL_PORT)
    try:
        url = f"mysql://root@127.0.0.1:{proxy.port}/{redis_backend.database_name}"
        runtime = redis_backend.runtime(TQ_HISTORY_URL=url, TQ_QUEUE_CONNECT_TIMEOUT="1")
        runtime.history_db()
        proxy.cut()
        ids = tq.submit_many([{"task": "tq.tasks.demo.echo", "args": [i]} for i in range(20)],
                             runtime=runtime)
        ids.append(tq.submit("tq.tasks.demo.echo", "single", runtime=runtime))
        assert queue_depths(runtime, "default")["queued"] == 21
        assert runtime.flush_history() is False  # still down: nothing written, nothing lost
        proxy.restore()
        catch_up(runtime)  # what a read verb and the console's refresh do first
        jobs = {row["id"]: row for row in list_jobs(runtime, limit=100)}
        assert set(jobs) == set(ids)
        assert {row["state"] for row in jobs.values()} == {"queued"}
        assert json.loads(jobs[ids[-1]]["args"]) == ["single"]
    finally:
        proxy.close()


def test_example_ini_documents_only_real_settings():
    config = load_config("tq.example.ini", env={})
    assert config.queue.backend == "sqlite" and config.consumer.lease == 15.0


def test_arguments_that_look_like_message_tags_arrive_as_sent(backend):
    from datetime import datetime

    from tq.serializer import JsonSerializer

    value = {"when": {"$dt": "2020-01-01"}, "esc": {"$esc": [1, 2]}, "td": {"$td": 5},
             "real": datetime(2026, 1, 2, 3, 4, 5)}
    for secret in ("", "k"):
        serializer = JsonSerializer(secret)
        assert serializer.deserialize(serializer.serialize(value)) == value
    runtime = backend.runtime()
    job_id = tq.submit("tq.tasks.demo.echo", payload={"$dt": "not a date"}, runtime=runtime)
    huey = runtime.queue("default")
    [task] = [huey.deserialize_task(raw) for raw in huey.storage.enqueued_items()]
    assert (task.id, task.kwargs) == (job_id, {"payload": {"$dt": "not a date"}})

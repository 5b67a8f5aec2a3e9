"""Hostile history records on both backends: what the database refuses, junk and
forged outbox records are set aside with their reason and never hold up (or
forge) the history of other jobs."""
from __future__ import annotations

import json
import threading
import time

import pytest
from peewee import SqliteDatabase

import tq
from tq.history import (
    DeadRecord,
    RecordSigner,
    check_record,
    checked,
    set_aside,
    write_or_set_aside,
)
from tq.models import Job
from tq.storage import SUBMITTED
from tq.submit import prepare

from conftest import job_states, wait_for, wait_for_states

FLUSH = 0.2  # the history writer's default flush round


def push_outbox(runtime, items, owner: str = SUBMITTED) -> None:
    """Write raw items to an outbox as an intruder with access to the queue backend would."""
    control = runtime.control
    if hasattr(control, "conn"):
        control.conn.rpush(f"{control.ns}outbox.{owner}", *items)
        control.conn.sadd(control.outboxes_key, owner)
    else:
        for item in items:
            control.storage.sql("insert into tq_outbox (owner, record) values (?, ?)",
                                (owner, item), commit=True)


def dead_records(runtime) -> list[dict]:
    database = runtime.history_db()
    with database.bind_ctx([DeadRecord]):
        return list(DeadRecord.select().order_by(DeadRecord.id).dicts())


def forged(job_id: str = "forged-pay") -> dict:
    return {"kind": "job", "id": job_id, "task": "payroll.pay_everyone", "queue": "default",
            "state": "succeeded", "seq": 1_000_014, "attempts": 1, "args": "[]",
            "kwargs": "{}", "finished_at": time.time()}


JUNK = [
    ("not json", "not json", "not JSON"),
    ("array", "[]", "not a record"),
    ("wrong shape", '{"id": 5}', "not a record"),
    ("null", "null", "not a record"),
    ("huge string", json.dumps("x" * 1_000_000), "not a record"),
    ("deeply nested", "[" * 100_000 + "]" * 100_000, "not"),
    ("long id", json.dumps({"kind": "job", "id": "j" * 200, "state": "queued", "seq": 0}),
     "longer than the column's 64"),
    ("NaN seq", '{"kind": "job", "id": "nan-1", "state": "queued", "seq": NaN}', "seq"),
    ("Infinity time", '{"kind": "job", "id": "inf-1", "state": "queued", "seq": 0, '
                      '"started_at": Infinity}', "not a finite number"),
    ("lone surrogate id", '{"kind": "job", "id": "\\ud800", "state": "queued", "seq": 0}',
     "lone surrogate"),
    ("seq as string", '{"kind": "job", "id": "s-1", "state": "queued", "seq": "0"}',
     "expected an integer"),
    ("bad state", '{"kind": "job", "id": "st-1", "state": "exploded", "seq": 0}',
     "not a job state"),
    ("attempt without job", '{"kind": "attempt", "attempt": 1}', "without job_id"),
    ("huge priority", '{"kind": "job", "id": "p-1", "state": "queued", "seq": 0, '
                      '"priority": 100000000000000000000}', "out of range"),
    ("markup and ESC", json.dumps({"kind": "[red]x[/]\x1b[2J", "id": "m-1"}), "not a record"),
]


@pytest.mark.parametrize("name,item,reason", JUNK, ids=[case[0] for case in JUNK])
def test_junk_in_the_outbox_is_set_aside_and_the_rest_written(backend, name, item, reason):
    runtime = backend.runtime()
    push_outbox(runtime, [item])
    good = tq.submit("tq.tasks.demo.echo", "after the junk", runtime=runtime)
    assert job_states(runtime, [good]) == {good: "queued"}
    dead = dead_records(runtime)
    assert len(dead) == 1, dead
    assert reason in dead[0]["reason"]
    assert dead[0]["source"] == "submitted jobs"
    assert dead[0]["size"] >= min(len(item), 1)
    assert Job.select().count() == 1  # nothing of the junk reached the job table


def test_poison_record_never_delays_the_next_good_ones(backend, start_consumer):
    """A consumer's history writer meets junk lines and a 200-character job id
    run by a worker; the ordinary jobs behind them reach history at once."""
    runtime = backend.runtime()
    huey = runtime.queue("default")
    task = huey.deserialize_task(prepare(runtime, {"task": "tq.tasks.demo.echo"}).data)
    task.id = "p" * 200
    start_consumer(runtime, workers=2)
    good_before = tq.submit("tq.tasks.demo.echo", runtime=runtime)
    wait_for_states(runtime, [good_before])
    poisoned_at = time.monotonic()
    huey.storage.enqueue_many([(huey.serialize_task(task), 0)])
    push_outbox(runtime, [item for _, item, _ in JUNK[:6]])
    good = [tq.submit("tq.tasks.demo.echo", i, runtime=runtime) for i in range(3)]

    def arrived():
        database = runtime.history_db()
        with database.bind_ctx([Job]):
            return Job.select().where(Job.id.in_(good) & (Job.state == "succeeded")).count() \
                == len(good)
    # Poll history itself (not flush_history, which would write for the consumer).
    wait_for(arrived, timeout=FLUSH + 5, interval=0.02, message="good jobs in history")
    delay = time.monotonic() - poisoned_at
    print(f"\npoison to good records in history: {delay:.2f}s")  # shown with -s
    assert Job.select().where(Job.id == "p" * 200).count() == 0
    assert Job.select().where(Job.id.startswith("p" * 64)).count() == 0  # not cut short
    wait_for(lambda: len(dead_records(runtime)) >= 6, timeout=5, message="junk set aside")


def test_forged_records_never_reach_history(backend, start_consumer, tq_env, capsys,
                                            monkeypatch):
    from tq.cli import main

    monkeypatch.setenv("TQ_SECRET", "s3cret")
    runtime = backend.runtime(TQ_SECRET="s3cret")
    other = RecordSigner("another secret")
    body = json.dumps(forged())
    push_outbox(runtime, [body,  # unsigned
                          "tq1:" + "0" * 64 + ":" + body,  # a made-up signature
                          other.seal(forged("forged-other-key"))])  # signed with another key
    push_outbox(runtime, [body], owner="someone-else")  # a consumer outbox of nobody's
    good = tq.submit("tq.tasks.demo.echo", runtime=runtime)
    start_consumer(runtime, workers=1)
    wait_for_states(runtime, [good])
    wait_for(lambda: len(dead_records(runtime)) >= 3, timeout=10, message="forged set aside")
    assert Job.select().where(Job.task == "payroll.pay_everyone").count() == 0
    assert all("bad signature" in row["reason"] for row in dead_records(runtime))
    assert main(["jobs", "--json", "--limit", "100"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [row["id"] for row in listed] == [good]
    assert "payroll" not in json.dumps(listed)


def test_signed_records_of_our_own_are_written(backend, start_consumer):
    runtime = backend.runtime(TQ_SECRET="s3cret")
    ids = [tq.submit("tq.tasks.demo.echo", i, runtime=runtime) for i in range(3)]
    failing = tq.submit("tq.tasks.demo.fail", runtime=runtime, retries=0)
    start_consumer(runtime, workers=1)
    states = wait_for_states(runtime, ids + [failing], states=("succeeded", "failed"))
    assert states[failing] == "failed"
    assert dead_records(runtime) == []


def test_refused_by_the_database_is_bisected_out(backend):
    """Past the checks (a record written by tq itself, say), the database's
    refusal sets aside that row alone; the other 99 rows are written."""
    runtime = backend.runtime()
    database = runtime.history_db()
    rows = [{"kind": "job", "id": f"ok-{i}", "state": "queued", "seq": 0} for i in range(99)]
    # Too big for an INT on MariaDB (strict), and for SQLite's 64-bit integers.
    rows.insert(40, {"kind": "job", "id": "bad", "state": "queued", "seq": 0,
                     "priority": 2 ** 70})
    written, refused = write_or_set_aside(database, rows)
    assert written == 99
    assert [record["id"] for record, _ in refused] == ["bad"]
    assert "refused by the database" in refused[0][1]
    assert Job.select().count() == 99


def test_non_strict_mariadb_session_never_cuts_a_job_id(redis_backend):
    runtime = redis_backend.runtime()
    database = runtime.history_db()
    assert not isinstance(database, SqliteDatabase)
    with database.connection_context():
        database.execute_sql("SET SESSION sql_mode = ''")
        good, refused = checked([{"kind": "job", "id": "c" * 200, "state": "queued",
                                  "seq": 0}], "test")
        write_or_set_aside(database, good)
        assert Job.select().count() == 0  # not written as its first 64 characters
    assert "longer than the column's 64" in refused[0][2]


def test_free_text_with_a_lone_surrogate_is_kept_repaired(backend):
    record = {"kind": "job", "id": "sur-1", "state": "failed", "seq": 1_000_014,
              "error_type": "ValueError", "error_message": "bad \ud800 byte"}
    cleaned = check_record(record)
    runtime = backend.runtime()
    write_or_set_aside(runtime.history_db(), [cleaned])
    assert Job.get_by_id("sur-1").error_message == "bad \ufffd byte"


def test_dead_letters_go_to_a_file_while_the_database_is_down(tmp_path, backend):
    runtime = backend.runtime()
    refused = [("outbox of w1", "not json \x1b[2J", "not JSON: boom")]
    assert set_aside(None, refused, tmp_path / "spill") == 1
    line = json.loads((tmp_path / "spill" / "dead-records.jsonl").read_text())
    assert line["reason"] == "not JSON: boom" and line["source"] == "outbox of w1"
    from tq.history import import_dead_file
    assert import_dead_file(runtime.history_db(), tmp_path / "spill") == 1
    assert not (tmp_path / "spill" / "dead-records.jsonl").exists()
    assert [row["record"] for row in dead_records(runtime)] == ["not json \x1b[2J"]


# --- quarantine: list, show, requeue, purge -----------------------------------------

def cli_json(capsys, *argv: str):
    from tq.cli import main

    capsys.readouterr()
    assert main(list(argv) + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_quarantine_round_trip(backend, start_consumer, tq_env, capsys, monkeypatch):
    """A job whose task module a consumer lacks is set aside by it, listed, shown,
    requeued where the module is known, and runs; a forged one stays refused."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tq.cli import main

    tests_dir = str(Path(__file__).parent)
    modules = "tq.tasks.demo,testtasks"
    monkeypatch.setenv("TQ_TASKS_MODULES", modules)
    runtime = backend.runtime(TQ_TASKS_MODULES=modules)
    job_id = tq.submit("testtasks.record_start", 7, runtime=runtime)
    consumer = subprocess.Popen(
        [sys.executable, "-m", "tq.cli", "consumer", "-w", "1"],
        env={**os.environ, **backend.env, "TQ_TASKS_MODULES": "tq.tasks.demo",
             "PYTHONPATH": tests_dir}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: runtime.control.quarantine_count() == 1, timeout=30,
                 message="the job set aside by a consumer without its module")
    finally:
        consumer.terminate()
        consumer.wait(timeout=30)
    runtime.queue("default").storage.quarantine(
        None, b'{"id": "forged", "name": "testtasks.record_start"}\x1b[2J',
        "[red]unsigned[/] \x1b[2J refused", worker="w-[b]x")

    listed = cli_json(capsys, "quarantine")
    assert listed["unavailable"] == {}
    entries = {row["reason"]: row for row in listed["entries"]}
    assert len(entries) == 2
    missing = next(row for reason, row in entries.items() if "not found" in reason)
    assert missing["kind"] == "message" and missing["queue"] == "default"
    assert missing["source"]  # the consumer that set it aside
    assert missing["size"] > 0 and missing["at"] > time.time() - 120

    # Shown literally: markup and escape sequences of the reason and data are text.
    assert main(["quarantine"]) == 0
    table = capsys.readouterr().out
    assert "[red]unsigned[/]" in table and "\\x1b[2J" in table and "\x1b[2J" not in table
    forged_id = entries["[red]unsigned[/] \x1b[2J refused"]["id"]
    assert main(["quarantine", "show", forged_id]) == 0
    shown = capsys.readouterr().out
    assert "\\x1b[2J" in shown and "\x1b" not in shown and "w-[b]x" in shown
    assert cli_json(capsys, "quarantine", "show", missing["id"])["data"].startswith("{")

    assert main(["quarantine", "requeue", missing["id"], forged_id]) == 2
    captured = capsys.readouterr()
    assert f"requeued as job {job_id}" in captured.out
    assert "still not valid" in captured.err
    start_consumer(runtime, workers=1)
    wait_for_states(runtime, [job_id])
    assert [row["id"] for row in cli_json(capsys, "quarantine")["entries"]] == [forged_id]

    assert cli_json(capsys, "status")["quarantine"] == {"messages": 1, "records": 0}
    from tq.metrics import exposition
    assert 'tq_quarantined{kind="message"} 1.0' in exposition(runtime)

    push_outbox(runtime, ["not json"])
    job_states(runtime, [job_id])  # writes the outbox: the junk line becomes r1
    assert main(["quarantine", "purge", "--all"]) == 0
    assert "purged 2 entries" in capsys.readouterr().out
    assert cli_json(capsys, "quarantine")["entries"] == []
    assert cli_json(capsys, "status")["quarantine"] == {"messages": 0, "records": 0}


BAD_IDS = ["", "x1", "m", "m-1", "r1.5", "m" + "9" * 40, "[red]m1[/]", "m1\x1b[2J"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_quarantine_bad_ids_are_one_line(backend, tq_env, capsys, bad):
    from tq.cli import main

    for verb in ("show", "purge"):
        assert main(["quarantine", verb, bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and "\x1b" not in err


def test_quarantine_ids_are_stable_and_purge_counts(backend, tq_env, capsys):
    from tq.cli import main

    runtime = backend.runtime()
    storage = runtime.queue("default").storage
    ids = [storage.quarantine(None, f"junk {i}".encode(), "test") for i in range(3)]
    assert len(set(ids)) == 3
    assert main(["quarantine", "purge", f"m{ids[1]}"]) == 0
    assert "purged 1 entry" in capsys.readouterr().out
    later = storage.quarantine(None, b"junk 3", "test")
    assert later not in ids  # an id is never given out again
    shown = [row["id"] for row in cli_json(capsys, "quarantine")["entries"]]
    assert sorted(shown) == sorted([f"m{ids[0]}", f"m{ids[2]}", f"m{later}"])
    assert cli_json(capsys, "quarantine", "show", f"m{ids[2]}")["data"] == "junk 2"
    assert main(["quarantine", "show", f"m{ids[1]}"]) == 2
    assert "not in quarantine" in capsys.readouterr().err
    huge = storage.quarantine(None, b"h" * 200_000, "huge")
    entry = cli_json(capsys, "quarantine", "show", f"m{huge}")
    assert entry["size"] == 200_000 and not entry["complete"]
    assert main(["quarantine", "requeue", f"m{huge}"]) == 2
    assert "were kept" in capsys.readouterr().err


def test_records_spilled_while_history_is_down_are_written_when_it_is_back(tmp_path):
    """Past `buffer_rows` during an outage the writer keeps records on disk
    (one encoder: tq.serializer.encode_record) and writes them, text intact,
    once the database answers again."""
    from tq import migrations
    from tq.history import HistoryWriter
    from tq.models import bound, open_database, state_seq

    database = open_database(f"sqlite:///{tmp_path / 'history.db'}")
    migrations.migrate(database)
    down = threading.Event()
    down.set()

    def factory():
        if down.is_set():
            raise OSError("history database down")
        return database

    writer = HistoryWriter(factory, flush_interval=0.05, buffer_rows=2,
                           spill_dir=tmp_path / "spill")
    try:
        ids = [f"spilled-{n}" for n in range(5)]
        for job_id in ids:
            writer.record({"kind": "job", "id": job_id, "state": "queued",
                           "seq": state_seq("queued", 0), "queue": "default",
                           "task": "t.x", "args": '["café ☕ \\u001b[31m"]',
                           "enqueued_at": 1.0, "updated_at": 1.0})
        wait_for(lambda: list((tmp_path / "spill").glob("history-spill-*.jsonl")),
                 message="records spilled to disk")
        down.clear()
        assert writer.flush(30)
        with bound(database, [Job]):
            rows = {job.id: job.args for job in Job.select(Job.id, Job.args)}
        assert rows == {job_id: '["café ☕ \\u001b[31m"]' for job_id in ids}
        assert not list((tmp_path / "spill").glob("history-spill-*.jsonl"))
    finally:
        writer.close(5)

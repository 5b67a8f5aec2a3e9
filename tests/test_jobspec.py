"""tq.jobspec: hostile job specs are refused with one clear line wherever they
enter (tq submit, tq submit --file, the Python API), nothing half-done and
nothing good dropped; ids are submitted once; a message that breaks the same
rules on the queue is quarantined, never run or recorded."""
from __future__ import annotations

import json
import re
from datetime import datetime

import pytest

import tq
from tq.cli import main
from tq.cli import submit as cli  # the submit verb: its batch size and error limit
from tq.jobspec import SpecError
from tq.models import Job
from tq.queries import queue_depths
from tq.submit import JobExists, prepare

from conftest import wait_for
from proxy import CuttableProxy

ECHO = "tq.tasks.demo.echo"
NAN, INF = float("nan"), float("inf")
EXCEPTION_NAME = re.compile(r"Traceback|\b[A-Z][A-Za-z]*(Error|Exception|Warning)\b")


def deep(levels: int) -> list:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


DEEP = deep(10_000)

# (label, spec fields beside "task", expected words of the reason, CLI expressible)
HOSTILE = [
    ("priority NaN", {"priority": NAN}, "priority is not a finite number", True),
    ("priority Infinity", {"priority": INF}, "priority is not a finite number", True),
    ("priority -Infinity", {"priority": -INF}, "priority is not a finite number", True),
    ("priority 1e30", {"priority": 1e30}, "priority must be", True),
    ("priority -1", {"priority": -1}, "priority must be", True),
    ("priority 2**70", {"priority": 2 ** 70}, "priority must be", True),
    ("priority 1.5", {"priority": 1.5}, "whole number", True),
    ("priority string", {"priority": "5"}, "priority must be a whole number", False),
    ("priority bool", {"priority": True}, "priority must be a whole number", False),
    ("delay NaN", {"delay": NAN}, "delay is not a finite number", True),
    ("delay -1", {"delay": -1}, "delay must be", True),
    ("delay 1e30", {"delay": 1e30}, "delay must be", True),
    ("eta year 10000", {"eta": "10000-01-01T00:00:00"}, "eta", True),
    ("eta year 9999", {"eta": "9999-12-31T23:59:59+00:00"}, "eta", True),
    ("eta before 1970", {"eta": "1969-12-31T00:00:00Z"}, "eta", True),
    ("eta a number", {"eta": 12345}, "eta must be an ISO 8601 string", False),
    ("expires 0", {"expires": 0}, "expires must be", True),
    ("expires NaN", {"expires": NAN}, "expires is not a finite number", True),
    ("expires 1e30", {"expires": 1e30}, "expires must be", True),
    ("retries -1", {"retries": -1}, "retries must be", True),
    ("retries 1e30", {"retries": 1e30}, "retries must be", True),
    ("retries 2**70", {"retries": 2 ** 70}, "retries must be", True),
    ("retries string", {"retries": "3"}, "retries must be a whole number", False),
    ("retry_delay 1e12", {"retries": 3, "retry_delay": 1e12}, "retry_delay must be", True),
    ("retry_delay NaN", {"retries": 3, "retry_delay": NAN}, "retry_delay is not a finite", True),
    ("retry_backoff 1e6", {"retries": 3, "retry_delay": 1, "retry_backoff": 1e6},
     "retry_backoff must be", True),
    ("retry schedule too long", {"retries": 1000, "retry_delay": 86400 * 300},
     "years in all", True),
    ("retry backoff schedule too long", {"retries": 200, "retry_delay": 1, "retry_backoff": 2},
     "years in all", True),
    ("timeout 0", {"timeout": 0}, "timeout must be", True),
    ("timeout Infinity", {"timeout": INF}, "timeout is not a finite number", True),
    ("timeout -5", {"timeout": -5}, "timeout must be", True),
    ("args as object", {"args": {"a": 1}}, "args must be a JSON array", True),
    ("args a string", {"args": "x"}, "args must be a JSON array", True),
    ("kwargs an array", {"kwargs": [1]}, "kwargs must be a JSON object", True),
    ("args 10,000 deep", {"args": DEEP}, "nested deeper than 100", True),
    ("args 150 deep", {"args": deep(150)}, "nested deeper than 100", True),
    ("args lone surrogate", {"args": ["\ud800"]}, "lone surrogate", True),
    ("args NaN", {"args": [NAN]}, "not finite", True),
    ("args Infinity", {"args": [INF]}, "not finite", True),
    ("args huge", {"args": ["x" * 1_100_000]}, "over the limit", True),
    ("id 200 chars", {"id": "x" * 200}, "id is 200 characters, over the limit of 64", True),
    ("id empty", {"id": ""}, "id must not be empty", True),
    ("id a number", {"id": 5}, "id must be a string", False),
    ("id lone surrogate", {"id": "ab\ud800"}, "lone surrogate", True),
    ("id ESC sequence", {"id": "a\x1b[31mb"}, "control characters", True),
    ("id newline", {"id": "a\nb"}, "control characters", True),
    ("queue 70 chars", {"queue": "q" * 70}, "queue is 70 characters, over the limit of 64",
     True),
    ("queue unknown", {"queue": "nope"}, "unknown queue", True),
    ("queue a number", {"queue": 5}, "queue must be a string", False),
    ("task 300 chars", {"task": "t" * 300}, "task is 300 characters", True),
    ("task lone surrogate", {"task": "tq.\ud800"}, "lone surrogate", True),
    ("task an array", {"task": ["x"]}, "task must be a string", False),
    ("task unknown markup", {"task": "[bold]x[/]"}, "unknown task", True),
    ("unknown field", {"prio": 1}, "unknown job field(s): prio", False),
    ("requeued_from 200 chars", {"requeued_from": "r" * 200}, "requeued_from is 200", False),
]
CLI_FLAGS = {"priority": "--priority", "delay": "--delay", "eta": "--eta",
             "expires": "--expires", "retries": "--retries", "retry_delay": "--retry-delay",
             "retry_backoff": "--retry-backoff", "timeout": "--timeout", "id": "--id",
             "queue": "--queue"}


def _has_constant(value, depth: int = 0) -> bool:
    """Whether `value` holds NaN or +-Infinity, which JSON has no form for (within
    a few levels: the deep cases of HOSTILE hold none)."""
    if isinstance(value, float):
        return value != value or value in (INF, -INF)
    if depth > 5:
        return False
    if isinstance(value, (list, tuple)):
        return any(_has_constant(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return any(_has_constant(item, depth + 1) for item in value.values())
    return False


# Where a NaN or Infinity travels as JSON text (--args, a batch line), the strict
# JSON reader (tq.strictjson) refuses it before any field is looked at.
JSON_CONSTANT = "is not a JSON number"


def argv_for(fields: dict) -> list[str]:
    fields = dict(fields)
    argv = ["submit", fields.pop("task", ECHO)]
    for key in ("args", "kwargs"):
        if key in fields:
            value = fields.pop(key)
            text = ("[" * 10_000 + "]" * 10_000) if value is DEEP else \
                json.dumps(value)
            argv.append(f"--{key}={text}")
    for key, value in fields.items():
        text = value if isinstance(value, str) else repr(value) if isinstance(value, float) \
            else str(value)
        argv.append(f"{CLI_FLAGS[key]}={text}")  # "=": a value like -1 is not an option
    return argv


def spec_line(fields: dict) -> str:
    spec = {"task": ECHO, **fields}
    if spec.get("args") is DEEP:
        deep = "[" * 10_000 + "]" * 10_000
        return f'{{"task": "{ECHO}", "args": {deep}}}'
    return json.dumps(spec)  # NaN/Infinity as JSON's usual extensions, \ud800 escaped


def jobs_in(runtime) -> int:
    return sum(queue_depths(runtime, q)["queued"] + queue_depths(runtime, q)["scheduled"]
               for q in runtime.queues)


def one_clean_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, lines
    assert not EXCEPTION_NAME.search(lines[0]), lines[0]
    return lines[0]


def test_hostile_single_submits_are_one_line_exit_2_and_enqueue_nothing(tq_env, backend,
                                                                         capsys):
    runtime = backend.runtime()
    tried = 0
    for label, fields, reason, expressible in HOSTILE:
        if not expressible:
            continue
        assert main(argv_for(fields)) == 2, label
        captured = capsys.readouterr()
        line = one_clean_line(captured.err)
        if _has_constant([fields.get("args"), fields.get("kwargs")]):
            reason = JSON_CONSTANT
        assert reason in line, (label, line)
        assert captured.out == "" and jobs_in(runtime) == 0, label
        tried += 1
    assert tried >= 40


def test_hostile_lines_of_a_batch_are_reported_and_the_good_ones_go_in(
        tq_env, backend, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "MAX_LINE_ERRORS_SHOWN", 1000)
    runtime = backend.runtime()
    lines, expected = [], {}
    for index, (label, fields, reason, _) in enumerate(HOSTILE):
        lines.append(json.dumps({"task": ECHO, "args": [index]}))  # a good one before each
        lines.append(spec_line(fields))
        expected[len(lines)] = (label, JSON_CONSTANT if _has_constant(fields) else reason)
    lines.append("[" * 5000)  # not even JSON, and deep
    lines.append(json.dumps({"task": ECHO, "args": ["last"]}))
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["submit", "--file", str(path)]) == 2
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    good = len(HOSTILE) + 1
    assert len(err) == len(HOSTILE) + 2  # one per bad line, and the summary
    for line in err:
        assert not EXCEPTION_NAME.search(line), line
    for number, (label, reason) in expected.items():
        [line] = [text for text in err if text.startswith(f"tq: line {number:,}: ")]
        assert reason in line, (label, line)
    assert err[-1].startswith(f"tq: {good} submitted, {len(HOSTILE) + 1} bad: line 2: ")
    assert jobs_in(runtime) == good


def test_hostile_specs_through_the_python_api_raise_and_enqueue_nothing(backend):
    runtime = backend.runtime()
    for label, fields, reason, _ in HOSTILE:
        specs = [{"task": ECHO, "args": [1]}, {"task": ECHO, **fields}]
        with pytest.raises(SpecError) as caught:
            tq.submit_many(specs, runtime=runtime)
        assert "job 2: " in str(caught.value) and reason in str(caught.value), label
        assert not EXCEPTION_NAME.search(str(caught.value)), label
    assert jobs_in(runtime) == 0
    with pytest.raises(SpecError, match="priority is not a finite number"):
        tq.submit(ECHO, priority=NAN, runtime=runtime)
    with pytest.raises(SpecError, match="eta"):
        tq.submit(ECHO, eta=datetime(9999, 12, 31), runtime=runtime)
    assert jobs_in(runtime) == 0


def test_markup_in_an_id_is_data_and_shown_literally(tq_env, backend, capsys):
    for job_id in ("[bold]abc", "[/]", "x[/b]y"):
        assert main(["submit", ECHO, "--id", job_id]) == 0
        assert capsys.readouterr().out == job_id + "\n"
    assert jobs_in(backend.runtime()) == 3


def test_a_duplicate_id_is_refused_or_skipped(tq_env, backend, capsys, tmp_path):
    runtime = backend.runtime()
    assert main(["submit", ECHO, "--id", "once"]) == 0
    capsys.readouterr()
    assert main(["submit", ECHO, "--id", "once"]) == 2
    line = one_clean_line(capsys.readouterr().err)
    assert "job 'once' already exists" in line
    assert main(["submit", ECHO, "--id", "once", "--if-exists", "skip"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "once\n" and "skipped" in one_clean_line(captured.err)
    assert jobs_in(runtime) == 1

    # A scheduled job's id is taken too; so is an id given twice in one batch.
    path = tmp_path / "dupes.jsonl"
    path.write_text("".join(json.dumps(spec) + "\n" for spec in (
        {"task": ECHO, "id": "a"}, {"task": ECHO, "id": "once"}, {"task": ECHO, "id": "a"},
        {"task": ECHO, "id": "later", "delay": 3600}, {"task": ECHO, "id": "later"})))
    assert main(["submit", "--file", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [text.split(":")[1] for text in err[:-1]] == [" line 2", " line 3", " line 5"]
    assert err[-1].startswith("tq: 2 submitted, 3 bad: line 2: job 'once' already exists")
    assert jobs_in(runtime) == 3
    assert main(["submit", "--file", str(path), "--if-exists", "skip"]) == 0
    assert "submitted 0 jobs, 5 skipped (already exist)" in capsys.readouterr().out
    assert jobs_in(runtime) == 3

    with pytest.raises(JobExists, match="already exists"):
        tq.submit(ECHO, job_id="once", runtime=runtime)
    assert tq.submit(ECHO, job_id="once", if_exists="skip", runtime=runtime) == "once"
    with pytest.raises(JobExists) as caught:
        tq.submit_many([{"task": ECHO, "id": "once"}, {"task": ECHO, "id": "new"}],
                       runtime=runtime)
    assert caught.value.existing == ["once"] and caught.value.submitted == ["new"]
    assert tq.submit_many([{"task": ECHO, "id": "new"}], runtime=runtime,
                          if_exists="skip") == []
    assert jobs_in(runtime) == 4


def test_an_id_already_in_history_is_refused_after_its_marker_is_gone(tq_env, backend,
                                                                       capsys):
    runtime = backend.runtime()
    runtime.history_db()
    Job.create(id="old-job", state="succeeded", queue="default", task=ECHO)
    assert main(["submit", ECHO, "--id", "old-job"]) == 2
    assert "already exists" in one_clean_line(capsys.readouterr().err)
    assert jobs_in(runtime) == 0


# A signed message with wrongly typed or out-of-range fields, pushed straight to the
# backend: quarantined with its reason, never run, never in history.
FORGED = [
    ("retries", "3", "retries must be a whole number"),
    ("priority", "5", "priority must be a whole number"),
    ("priority", 2 ** 70, "priority must be"),
    ("eta", "2026-01-01", "eta must be a time"),
    ("expires", "10", "expires must be a number"),
    ("timeout", "1", "timeout must be a number"),
    ("retry_delay", 1e12, "retry_delay must be"),
    ("id", "x" * 200, "id is 200 characters"),
    ("id", 7, "id must be a string"),
    ("args", {"a": 1}, "args must be an array"),
    # A follow-up (an .error() handler) is checked like the job it rides in.
    ("on_error", {"name": "tq.tasks.demo.echo", "id": "e", "retries": "3"},
     "on_error: retries must be a whole number"),
    ("on_complete", ["not", "a", "message"], "on_complete: not a tq message"),
]


def test_forged_messages_are_quarantined_with_their_reason(backend, start_consumer):
    runtime = backend.runtime(TQ_SECRET="s3cret")
    huey = runtime.queues["default"]
    good = tq.submit(ECHO, "fine", runtime=runtime)
    template = huey.serializer.deserialize(prepare(runtime, {"task": ECHO}).data)
    forged_ids = []
    for index, (field, value, _) in enumerate(FORGED):
        payload = dict(template, id=f"forged-{index}")
        payload[field] = value
        forged_ids.append(payload["id"] if isinstance(payload["id"], str) else str(value))
        huey.storage.enqueue(huey.serializer.serialize(payload), 0)
    start_consumer(runtime)
    wait_for(lambda: len(runtime.control.quarantined(100)) == len(FORGED),
             message="forged messages quarantined")
    reasons = [entry["reason"] for entry in runtime.control.quarantined(100)]
    for field, value, reason in FORGED:
        assert any(reason in text for text in reasons), (field, value, reasons)
    assert not any(EXCEPTION_NAME.search(text) for text in reasons), reasons
    wait_for(lambda: runtime.flush_history() and
             (Job.get_or_none(Job.id == good) or Job()).state == "succeeded",
             message="the good job to succeed")
    assert Job.select().where(Job.id.startswith("forged")).count() == 0
    assert Job.select().where(Job.id == "x" * 200).count() == 0


def test_a_batch_cut_by_an_outage_says_where_and_completes_with_skip(
        redis_backend, tmp_path, capsys, monkeypatch):
    import sys
    submit_module = sys.modules["tq.submit"]
    from conftest import use_env

    proxy = CuttableProxy("127.0.0.1", 6379)
    try:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        use_env(monkeypatch, {**redis_backend.env, "TQ_QUEUE_URL": url,
                              "TQ_QUEUE_CONNECT_TIMEOUT": "1"})
        path = tmp_path / "jobs.jsonl"
        path.write_text("".join(json.dumps({"task": ECHO, "args": [i], "id": f"line-{i}"})
                                + "\n" for i in range(1, 3001)))
        real, calls = submit_module.enqueue, {"n": 0}

        def cut_after_two_batches(runtime, jobs):
            calls["n"] += 1
            if calls["n"] == 3:
                proxy.cut()
            return real(runtime, jobs)
        monkeypatch.setattr(submit_module, "enqueue", cut_after_two_batches)
        monkeypatch.setattr(cli, "BATCH_SECONDS", 1e9)  # batches of exactly cli.BATCH (1000)
        assert main(["submit", "--file", str(path)]) == 1
        line = one_clean_line(capsys.readouterr().err)
        assert "stopped at line 2,001: queue backend unreachable" in line
        assert "2,000 submitted through line 2,000" in line
        assert "--if-exists skip" in line
        proxy.restore()
        monkeypatch.setattr(submit_module, "enqueue", real)
        assert main(["submit", "--file", str(path), "--if-exists", "skip"]) == 0
        assert "submitted 1000 jobs, 2,000 skipped" in capsys.readouterr().out
        runtime = redis_backend.runtime()
        assert queue_depths(runtime, "default")["queued"] == 3000
    finally:
        proxy.close()

"""`tq submit --file`: a line without an "id" gets one from the file's content
and its line number, so a batch cut short by an outage is completed by a re-run
with --if-exists skip (every line runs once), the same file submitted twice is
refused with one plain line, and --again makes new jobs of it. stdin is
spooled, so its lines get the same ids as the same content from a file."""
from __future__ import annotations

import importlib
import io
import json
import re
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import pytest
import redis

from tq.cli import main
from tq.cli import submit as cli
from tq.queries import queue_depths

from conftest import REDIS_URL, use_env, wait_for
from proxy import CuttableProxy

submit_module = importlib.import_module("tq.submit")  # tq.submit is also the function
MODULES = "tq.tasks.demo,testtasks"
ECHO = "tq.tasks.demo.echo"
EXCEPTION_NAME = re.compile(r"Traceback|\b[A-Z][A-Za-z]*(Error|Exception|Warning)\b")
EVERYTHING_BEFORE = ("submitted before (same file content): --if-exists skip completes a cut "
                     "batch, --again submits it again as new jobs")


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, lines
    assert not EXCEPTION_NAME.search(lines[0]), lines[0]
    return lines[0]


def queued(backend) -> int:
    return queue_depths(backend.runtime(TQ_TASKS_MODULES=MODULES), "default")["queued"]


def log_file(tmp_path: Path, lines: int) -> tuple[Path, Path]:
    """A batch of `lines` identical lines, each a job that logs its id when it runs."""
    log = tmp_path / "runs.log"
    path = tmp_path / "jobs.jsonl"
    path.write_text((json.dumps({"task": "testtasks.log_run", "args": [str(log)]}) + "\n")
                    * lines)
    return path, log


def runs_per_line(log: Path) -> Counter:
    """Executions per line of the file: a job's id ends with its line number.
    Only whole lines count: read while a worker appends, the last may be cut."""
    text = log.read_text() if log.exists() else ""
    ids = text[:text.rfind("\n") + 1].split()
    return Counter(int(job_id.rsplit("-", 1)[1]) for job_id in ids)


def run_all(backend, start_consumer, log: Path, executions: int) -> Counter:
    """Run everything queued; returns executions per line once the queue is empty."""
    runtime = backend.runtime(TQ_TASKS_MODULES=MODULES)
    start_consumer(runtime)
    wait_for(lambda: sum(runs_per_line(log).values()) >= executions, timeout=60,
             message=f"{executions} executions")
    wait_for(lambda: not any(queue_depths(runtime, "default")[key]
                             for key in ("queued", "running")), message="an idle queue")
    return runs_per_line(log)


class Outage:
    """Takes the queue backend away from the CLI for real: Redis through a
    CuttableProxy, the embedded SQLite by another connection holding its write
    lock (the storage gives up after its busy timeout)."""

    def __init__(self, backend, monkeypatch) -> None:
        self.backend = backend
        env = {**backend.env, "TQ_TASKS_MODULES": MODULES}
        self.proxy = self.lock = None
        if backend.kind == "redis":
            self.proxy = CuttableProxy("127.0.0.1", redis.Redis.from_url(REDIS_URL)
                                       .connection_pool.connection_kwargs["port"])
            env.update(TQ_QUEUE_URL=f"redis://127.0.0.1:{self.proxy.port}/0",
                       TQ_QUEUE_CONNECT_TIMEOUT="1")
        use_env(monkeypatch, env)

    def cut_before_call(self, monkeypatch, number: int) -> None:
        """Cut just before the `number`th batch is written."""
        real, calls = submit_module.enqueue, {"n": 0}

        def enqueue(runtime, jobs):
            calls["n"] += 1
            if calls["n"] == number:
                self.cut()
            return real(runtime, jobs)
        monkeypatch.setattr(submit_module, "enqueue", enqueue)
        self.restore_enqueue = lambda: monkeypatch.setattr(submit_module, "enqueue", real)

    def cut(self) -> None:
        if self.proxy is not None:
            self.proxy.cut()
        else:
            self.lock = sqlite3.connect(self.backend.config().queue.path,
                                        isolation_level=None)
            self.lock.execute("begin exclusive")

    def restore(self) -> None:
        self.restore_enqueue()
        if self.proxy is not None:
            self.proxy.restore()
        elif self.lock is not None:
            self.lock.execute("rollback")
            self.lock.close()

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()


@pytest.mark.parametrize("rerun", [["--if-exists", "skip"], []], ids=["skip", "no-flag"])
def test_a_batch_cut_by_an_outage_is_completed_by_a_rerun_and_each_line_runs_once(
        backend, tmp_path, capsys, monkeypatch, start_consumer, rerun):
    path, log = log_file(tmp_path, 3000)
    monkeypatch.setattr(cli, "BATCH_SECONDS", 1e9)  # batches of exactly cli.BATCH (1000)
    outage = Outage(backend, monkeypatch)
    try:
        outage.cut_before_call(monkeypatch, 3)
        assert main(["submit", "--file", str(path)]) == 1
        line = one_line(capsys.readouterr().err)
        assert "tq: stopped at line 2,001: queue backend unreachable (" in line
        reason = line.split("unreachable (", 1)[1].lower()
        assert any(word in reason for word in ("locked", "connect", "timeout", "timed out",
                                               "closed", "reset", "eof", "broken pipe")), reason
        assert ("2,000 submitted through line 2,000, lines 2,001 to 3,000 may or may not be "
                "in; re-run with --if-exists skip to complete it") in line
        assert "new ids" not in line
        outage.restore()
    finally:
        outage.close()
    use_env(monkeypatch, {**backend.env, "TQ_TASKS_MODULES": MODULES})
    code = main(["submit", "--file", str(path), *rerun])
    captured = capsys.readouterr()
    if rerun:
        assert code == 0
        assert "submitted 1000 jobs, 2,000 skipped (already exist)" in captured.out
    else:  # the rest went in; the lines submitted before are refused, as ranges
        assert code == 2
        assert captured.err.splitlines() == [
            "tq: lines 1 to 2,000: submitted before (same file content)",
            "tq: 1,000 submitted, 2,000 submitted before (same file content; --if-exists "
            "skip skips them, --again submits them as new jobs)"]
    assert queued(backend) == 3000
    runs = run_all(backend, start_consumer, log, 3000)
    assert runs == Counter(range(1, 3001))  # every line exactly once


def test_the_same_file_twice_is_refused_even_after_its_markers_are_gone(
        backend, tq_env, tmp_path, capsys):
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps({"task": ECHO, "args": [i]}) + "\n" for i in range(2500)))
    assert main(["submit", "--file", str(path)]) == 0
    assert "submitted 2500 jobs" in capsys.readouterr().out
    assert main(["submit", "--file", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert one_line(captured.err) == f"tq: all 2,500 lines were {EVERYTHING_BEFORE}"
    assert queued(backend) == 2500

    # A week on, the queue backend's markers are gone; history still holds the jobs.
    runtime = backend.runtime()
    assert runtime.flush_history(10)  # their `queued` records, with no consumer running
    forget_markers(backend, runtime)
    assert main(["submit", "--file", str(path)]) == 2
    assert one_line(capsys.readouterr().err) == f"tq: all 2,500 lines were {EVERYTHING_BEFORE}"
    assert main(["submit", "--file", str(path), "--if-exists", "skip"]) == 0
    assert "submitted 0 jobs, 2,500 skipped (already exist)" in capsys.readouterr().out
    assert queued(backend) == 2500

    # A bad line does not hide that the good ones were submitted before.
    path.write_text(json.dumps({"task": ECHO}) + "\n{oops\n")
    assert main(["submit", "--file", str(path)]) == 2
    capsys.readouterr()
    assert main(["submit", "--file", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "tq: line 2: invalid JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)",
        f"tq: its good line was {EVERYTHING_BEFORE}; 1 bad: line 2: invalid JSON: Expecting "
        "property name enclosed in double quotes: line 1 column 2 (char 1)"]
    assert queued(backend) == 2501


def forget_markers(backend, runtime) -> None:
    storage = runtime.queue("default").storage
    if backend.kind == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{storage.ns}dedupe.*", count=1000))
        assert keys
        client.delete(*keys)
    else:
        with storage.db(commit=True) as curs:
            curs.execute("delete from tq_dedupe")
            assert curs.rowcount > 0


def test_again_submits_a_second_copy_of_each_job(backend, tmp_path, capsys, monkeypatch,
                                                 start_consumer):
    use_env(monkeypatch, {**backend.env, "TQ_TASKS_MODULES": MODULES})
    path, log = log_file(tmp_path, 40)
    assert main(["submit", "--file", str(path)]) == 0
    assert main(["submit", "--file", str(path), "--again"]) == 0
    assert main(["submit", "--file", str(path), "--again"]) == 0  # a new token every time
    assert capsys.readouterr().out.splitlines() == ["submitted 40 jobs"] * 3
    assert queued(backend) == 120
    runs = run_all(backend, start_consumer, log, 120)
    assert runs == Counter({line: 3 for line in range(1, 41)})
    assert len(set(log.read_text().split())) == 120  # three ids per line


def test_stdin_is_spooled_so_the_same_content_gets_the_same_ids(backend, tq_env, tmp_path,
                                                               capsys, monkeypatch):
    content = "".join(json.dumps({"task": ECHO, "args": [i]}) + "\n" for i in range(30))

    def from_stdin(*options: str) -> int:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(content.encode())))
        return main(["submit", "--file", "-", *options])

    assert from_stdin() == 0
    assert "submitted 30 jobs" in capsys.readouterr().out
    assert from_stdin() == 2
    assert one_line(capsys.readouterr().err) == f"tq: all 30 lines were {EVERYTHING_BEFORE}"
    path = tmp_path / "copy.jsonl"
    path.write_text(content)  # the same content from a file: the same ids
    assert main(["submit", "--file", str(path)]) == 2
    assert one_line(capsys.readouterr().err) == f"tq: all 30 lines were {EVERYTHING_BEFORE}"
    assert from_stdin("--if-exists", "skip") == 0
    assert "submitted 0 jobs, 30 skipped" in capsys.readouterr().out
    assert from_stdin("--again") == 0
    assert "submitted 30 jobs" in capsys.readouterr().out
    assert queued(backend) == 60


@pytest.mark.parametrize("argv, reason", [
    ([ECHO, "--again"], "--again is for --file"),
    ([ECHO, "--id", "x", "--again"], "--again is for --file"),
    (["--file", "{path}", "--queue", "reports"], "--queue is for a single job"),
    (["--file", "{path}", "--id", "x"], "--id is for a single job"),
    (["--file", "{path}", "--retry-delay", "5"], "--retry-delay is for a single job"),
    (["--file", "{path}", "--args", "[1]", "--again"], "--args is for a single job"),
    ([ECHO, "--file", "{path}"], "give a TASK or --file, not both"),
    (["--again"], "--again is for --file"),
    ([], "give a TASK"),
])
def test_flags_that_do_not_go_together_are_refused(backend, tq_env, tmp_path, capsys, argv,
                                                   reason):
    path = tmp_path / "jobs.jsonl"
    path.write_text(json.dumps({"task": ECHO}) + "\n")
    argv = [arg.replace("{path}", str(path)) for arg in argv]
    assert main(["submit", *argv]) == 2
    assert reason in one_line(capsys.readouterr().err)
    assert queued(backend) == 0


def test_again_with_skip_renews_lines_without_an_id_and_skips_ids_that_exist(
        backend, tq_env, tmp_path, capsys):
    path = tmp_path / "jobs.jsonl"
    path.write_text(json.dumps({"task": ECHO, "id": "mine"}) + "\n"
                    + json.dumps({"task": ECHO, "id": None}) + "\n"  # null: no id of its own
                    + json.dumps({"task": ECHO}) + "\n")
    assert main(["submit", "--file", str(path)]) == 0
    capsys.readouterr()
    assert main(["submit", "--file", str(path), "--again"]) == 2  # its own id is still refused
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "tq: line 1: job 'mine' already exists (--if-exists skip skips it)"
    assert err[1].startswith("tq: 2 submitted, 1 bad: line 1: job 'mine' already exists")
    assert main(["submit", "--file", str(path), "--again", "--if-exists", "skip"]) == 0
    assert "submitted 2 jobs, 1 skipped (already exist)" in capsys.readouterr().out
    assert queued(backend) == 7


def test_empty_and_all_bad_files_twice_are_not_submitted_before(backend, tq_env, tmp_path,
                                                                 capsys):
    empty, bad = tmp_path / "empty.jsonl", tmp_path / "bad.jsonl"
    empty.write_text("\n\n")
    bad.write_text(json.dumps({"task": "no.such.task"}) + "\n")
    for _ in range(2):
        assert main(["submit", "--file", str(empty)]) == 0
        assert capsys.readouterr().out == "submitted 0 jobs\n"
        assert main(["submit", "--file", str(bad)]) == 2
        assert "submitted before" not in capsys.readouterr().err
    assert queued(backend) == 0

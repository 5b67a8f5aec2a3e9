"""Outside text is printed as written by every CLI verb, on both backends.

Jobs whose ids, arguments, error messages and tracebacks hold Rich markup, ESC
sequences, carriage returns, bidi overrides and emoji codes (run by a real
consumer through real tasks), a history row and a consumer heartbeat forged with
hostile names: every verb exits 0, writes no raw ESC byte, and shows each value
in its visible form (tq.text.visible), brackets and all.
"""
from __future__ import annotations

import json
import time

import pytest

import tq
from tq import summaries
from tq.cli import main
from tq.history import write_records
from tq.models import state_seq
from tq.text import visible

from conftest import wait_for_states

# What a job's data may hold; each one is shown as visible(value).
HOSTILE = ["[/]", "[bold]b", "[link=http://evil]l[/link]", "[$accent]v", "\x1b[31mred\x1b[0m",
           "\x1b]0;owned\x07", "fake\rline", "bell\x07", "abc\u202edcba", ":smile:", "back\\"]
# Ids hold what a submit validation accepts: printable text, markup brackets.
ID_SUCCEEDED = "[bold]abc"
ID_FAILED = "[/]fail"
ID_SCHEDULED = "[link=x]later"
ID_FORGED = "[red]forged[/red]"
MESSAGE = " ".join(HOSTILE[:9])


def shown(value) -> str:
    return visible(value)


def forged_record(now: float) -> dict:
    """A history row as the database could hold it, with hostile names everywhere."""
    return {"kind": "job", "id": ID_FORGED, "state": "failed", "seq": state_seq("failed", 1),
            "queue": "[b]q\x1b[0m", "task": "[/]task\x1b[2J", "worker": "[i]w\x1b]0;t\x07",
            "args": json.dumps(["\ud800", "\x1b[31m", "[/]"]), "kwargs": json.dumps({"[b]": 1}),
            "priority": 0, "max_retries": 0, "attempts": 1, "enqueued_at": now - 60,
            "started_at": now - 30, "finished_at": now - 20, "updated_at": now - 20,
            "error_type": "[bold]Err\x1b[0m", "error_message": "[/]boom\x1b[31m",
            "traceback": "Traceback (most recent call last):\n  [/]\x1b[31mred\nErr: [bold]"}


@pytest.fixture
def hostile(backend, start_consumer, tq_env):
    """The jobs above, run to their states, and a forged consumer heartbeat."""
    runtime = backend.runtime()
    ok = tq.submit("tq.tasks.demo.echo", *HOSTILE, job_id=ID_SUCCEEDED, runtime=runtime,
                   **{"k[/]": HOSTILE[4], "emoji": ":smile:"})
    failed = tq.submit("tq.tasks.demo.fail", MESSAGE, job_id=ID_FAILED, runtime=runtime)
    tq.submit("tq.tasks.demo.echo", "[/]", job_id=ID_SCHEDULED, delay=3600, runtime=runtime)
    start_consumer(runtime, workers=1)
    wait_for_states(runtime, [ok], ("succeeded",))
    wait_for_states(runtime, [failed], ("failed",))
    write_records(runtime.history_db(), [forged_record(time.time())])
    summaries.rollup(runtime)
    runtime.control.heartbeat("[/]consumer\x1b[31m", {
        "id": "[/]consumer\x1b[31m", "host": "[bold]host\x1b]0;x\x07", "pid": 1,
        "queues": ["[b]q", "default"], "workers": 1, "worker_type": "[/]thread",
        "started": time.time(), "beat": time.time()})
    return runtime


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fragments(text: str, width: int = 40) -> list[str]:
    """Pieces of a shown value short enough to survive a table cell's width."""
    return [text[i:i + width] for i in range(0, len(text), width)]


CASES = [
    # argv, code, what stdout shows (visible forms), what stderr shows
    (("jobs",), 0, [ID_SUCCEEDED, ID_FAILED, ID_SCHEDULED, ID_FORGED, "[/]task\\x1b[2J",
                    "[b]q\\x1b[0m", "RuntimeError: [/] [bold]b [link=http://evil]l"], []),
    (("jobs", "--state", "failed", "--where", "error:RuntimeError"), 0, [ID_FAILED], []),
    (("show", ID_SUCCEEDED), 0, [ID_SUCCEEDED, json.dumps(list(HOSTILE)),
                                 '"k[/]": "\\u001b[31mred\\u001b[0m"'], []),
    (("show", ID_FAILED), 0, [ID_FAILED, "RuntimeError: " + shown(MESSAGE),
                              "RuntimeError: " + shown(MESSAGE)[:30]], []),
    (("show", ID_FORGED), 0, [ID_FORGED, "[/]task\\x1b[2J", "[b]q\\x1b[0m", "[i]w\\x1b]0;t\\x07",
                              "[bold]Err\\x1b[0m: [/]boom\\x1b[31m", '"\\ud800"',
                              "  [/]\\x1b[31mred\nErr: [bold]"], []),
    (("cancel", ID_SCHEDULED, ID_SUCCEEDED, "[/]nope"), 0, ["canceled 1"],
     [f"tq: {ID_SUCCEEDED}: already finished", "tq: [/]nope: not in history"]),
    (("requeue", ID_FAILED, "[/]nope\x1b[0m"), 0, ["requeued 1 job"],
     ["tq: [/]nope\\x1b[0m: not in history"]),
    (("status",), 0, ["default", "workers alive"], []),
    (("workers",), 0, ["[/]consumer\\x1b[31m", "[bold]host\\x1b]0;x\\x07", "[b]q,default",
                       "1 [/]thread"], []),
    (("pause", "default", "--task", "[/]t\x1b[0m"), 0, ["paused default / [/]t\\x1b[0m"], []),
    (("resume", "default", "--task", "[/]t\x1b[0m"), 0, ["resumed default / [/]t\\x1b[0m"], []),
    (("periodic",), 0, ["add them under [periodic]"], []),
    (("stats",), 0, ["[b]q\\x1b[0m", "[/]task\\x1b[2J"], []),
    (("stats", "--by", "queue"), 0, ["[b]q\\x1b[0m"], []),
]


@pytest.mark.parametrize("argv,code,out_shows,err_shows", CASES,
                         ids=[" ".join(case[0])[:30] for case in CASES])
def test_verbs_print_outside_text_as_written(hostile, capsys, argv, code, out_shows, err_shows):
    exit_code, out, err = run(capsys, *argv)
    assert exit_code == code, err
    for stream in (out, err):
        assert "\x1b" not in stream and "\r" not in stream and "\x07" not in stream
        assert "\u202e" not in stream and "😄" not in stream
        assert "Traceback" not in stream or argv[0] == "show"
    flat = " ".join(out.split())
    for text in out_shows:
        assert text in out or " ".join(text.split()) in flat, (text, out)
    for text in err_shows:
        assert text in err, (text, err)


def test_json_stays_json(hostile, capsys):
    code, out, _ = run(capsys, "show", ID_SUCCEEDED, "--json")
    assert code == 0 and "\x1b" not in out
    job = json.loads(out)
    assert job["id"] == ID_SUCCEEDED and job["args"] == HOSTILE
    code, out, _ = run(capsys, "jobs", "--json")
    assert code == 0 and "\x1b" not in out
    rows = {row["id"]: row for row in json.loads(out)}
    assert rows[ID_FORGED]["task"] == "[/]task\x1b[2J"
    assert rows[ID_FORGED]["args"] == ["\ud800", "\x1b[31m", "[/]"]
    code, out, _ = run(capsys, "workers", "--json")
    assert code == 0 and "\x1b" not in out
    assert "[/]consumer\x1b[31m" in [w["id"] for w in json.loads(out)]


def test_submitted_id_printed_as_given(backend, tq_env, capsys):
    code, out, err = run(capsys, "submit", "tq.tasks.demo.echo", "--id", "[bold]abc",
                         "--args", json.dumps(["[/]"]))
    assert (code, out.strip()) == (0, "[bold]abc"), err


def test_hints_keep_their_brackets(backend, tq_env, capsys, tmp_path):
    lines = tmp_path / "jobs.jsonl"
    lines.write_text(json.dumps({"task": "no.such.task"}) + "\n")
    code, out, err = run(capsys, "submit", "--file", str(lines))
    assert code == 2
    assert "[tasks]" in err, err

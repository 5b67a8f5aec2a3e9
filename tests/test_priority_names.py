"""Priority names: low (0), medium (500), high (1000), in any case, wherever a
priority is (tq submit --priority, batch lines, tq.submit, @tq.task, [routes] and
[queues], the filter language), kept in history as their numbers. Anything
else is refused in one line, and nothing is enqueued."""
from __future__ import annotations

import json
import math

import pytest

import tq
from tq import jobspec
from tq.cli import main
from tq.config import PRIORITY_NAMES, ConfigError, load_config
from tq.jobspec import SpecError
from tq.queries import catch_up, job_detail, list_jobs
from tq.where import FilterError, parse

from conftest import use_env

ECHO = "tq.tasks.demo.echo"

ACCEPTED = [("low", 0), ("medium", 500), ("high", 1000), ("HIGH", 1000), ("High", 1000),
            ("mEdIuM", 500), ("LOW", 0), (0, 0), (1000, 1000), (750, 750), (2.0, 2)]
REFUSED = [
    "urgent", "1e3", "2.5", "", " high", "high ", "hi", "highest", "hıgh", "ＨＩＧＨ", "５",
    "high\x00", "[bold]high[/]", "\x1b[31mhigh", "h\u202eigh", "\ud800", "x" * 100_000,
    True, False, math.nan, math.inf, -math.inf, -1, 1001, 2**70, 1e30, 1.5, None, [1],
    {"high": 1}, b"high", ["high"],
]


def test_the_names_and_their_numbers():
    assert PRIORITY_NAMES == {"low": 0, "medium": 500, "high": 1000}


@pytest.mark.parametrize("value, number", ACCEPTED, ids=[repr(v) for v, _ in ACCEPTED])
def test_accepted_priorities(value, number):
    spec = jobspec.check({"task": ECHO, "priority": value}, max_arg_bytes=1000)
    assert spec.priority == number and type(spec.priority) is int


@pytest.mark.parametrize("value", REFUSED, ids=[repr(v)[:30] for v in REFUSED])
def test_refused_priorities_in_one_line(value):
    spec = {"task": ECHO, "priority": value}
    if value is None:  # "not given": the task's or queue's default applies
        assert jobspec.check(spec, max_arg_bytes=1000).priority is None
        return
    with pytest.raises(SpecError) as caught:
        jobspec.check(spec, max_arg_bytes=1000)
    message = str(caught.value)
    assert message.startswith("priority ") and "\n" not in message and len(message) < 300
    assert "\x1b" not in message and "\x00" not in message


@pytest.mark.parametrize("text, number", [("high", 1000), ("Medium", 500), ("low", 0),
                                          ("5", 5), (" 7 ", 7)])
def test_cli_text_becomes_a_priority(text, number):
    value = jobspec.from_text("priority", text)
    assert jobspec.check({"task": ECHO, "priority": value}, max_arg_bytes=10).priority == number


@pytest.mark.parametrize("text, reason", [
    ("urgent", "or one of low (0), medium (500), high (1,000), got 'urgent'"),
    ("1e3", "got '1e3'"), ("2.5", "got '2.5'"), ("nan", "priority is not a finite number"),
    ("-inf", "priority is not a finite number"), ("-1", "from 0 to 1,000, got -1"),
    ("1001", "got 1001"), ("9" * 40, "priority must be"),
])
def test_cli_text_refused(text, reason):
    with pytest.raises(SpecError, match=None) as caught:
        jobspec.check({"task": ECHO, "priority": jobspec.from_text("priority", text)},
                      max_arg_bytes=10)
    assert reason in str(caught.value)


def test_config_routes_and_queues_take_names(tmp_path):
    path = tmp_path / "tq.ini"
    path.write_text("[queues]\ndefault = Medium\nevents = high\n"
                    "[routes]\n* = events:tq.tasks.events.store_event:LOW\n")
    config = load_config(path, env={"TQ_TQ_DATA_DIR": str(tmp_path)})
    assert config.queues == {"default": 500, "events": 1000}
    assert config.routes["*"].priority == 0
    for bad in ("urgent", "1e3", "nan", "١٢", "1_000", "high!"):
        path.write_text(f"[queues]\ndefault = 0\nmail = {bad}\n")
        with pytest.raises(ConfigError, match=r"\[queues\] mail: priority must be a whole "
                                              r"number from 0 to 1000 or low, medium, high"):
            load_config(path, env={"TQ_TQ_DATA_DIR": str(tmp_path)})


def test_filter_language_takes_names():
    assert parse("priority:high").priority == 1000
    assert parse("priority:Low").priority == 0
    for bad in ("priority:urgent", "priority:1e3", "priority:1001"):
        with pytest.raises(FilterError):
            parse(bad)


def test_every_door_stores_the_number(backend, tmp_path, capsys, monkeypatch):
    """CLI, batch line, tq.submit, a task's own default: history shows numbers."""
    modules = "tq.tasks.demo,outcome_tasks"
    runtime = backend.runtime(TQ_TASKS_MODULES=modules)
    use_env(monkeypatch, {**backend.env, "TQ_TASKS_MODULES": modules})
    assert main(["submit", ECHO, "--priority", "High", "--id", "cli-high"]) == 0
    batch = tmp_path / "jobs.jsonl"
    batch.write_text(json.dumps({"task": ECHO, "priority": "medium", "id": "batch-medium"})
                     + "\n")
    assert main(["submit", "--file", str(batch)]) == 0
    tq.submit(ECHO, priority="LOW", job_id="py-low", runtime=runtime)
    tq.submit("outcome_tasks.urgent_by_default", job_id="task-high", runtime=runtime)
    assert main(["submit", ECHO, "--priority", "urgent"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("tq: error: priority must be a whole number from 0 to 1,000 or one of "
                       "low (0), medium (500), high (1,000), got 'urgent'")
    catch_up(runtime)
    numbers = {job_id: job_detail(runtime, job_id)["priority"]
               for job_id in ("cli-high", "batch-medium", "py-low", "task-high")}
    assert numbers == {"cli-high": 1000, "batch-medium": 500, "py-low": 0, "task-high": 1000}
    rows = list_jobs(runtime, parse("priority:high"), limit=10)
    assert sorted(row["id"] for row in rows) == ["cli-high", "task-high"]
    assert main(["jobs", "--json"]) == 0
    listed = {row["id"]: row["priority"] for row in json.loads(capsys.readouterr().out)}
    assert listed["cli-high"] == 1000  # a number in history, not the name

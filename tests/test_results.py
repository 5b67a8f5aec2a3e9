"""Job results: a task's return value kept with its job in history, and read back.

One consumer per backend serves the whole module (module-scoped): every test
submits its own jobs and waits on them by id, so they share nothing but the
running consumer. What JSON cannot carry (NaN, Infinity, sets, non-string
keys), what nests too deep and what is over `[history] result_limit` fails the
job with the reason, on its first attempt (not retried)."""
from __future__ import annotations

import json
import time
import uuid

import pytest

import tq
from tq import ops, queries
from tq.cli import main
from tq.text import visible
from tq.tui.screens.job_detail import JobDetailScreen

from conftest import BACKENDS, Backend, RunningConsumer, use_env
from test_tui import loaded, make_app, pilot_test
from test_tui_literal import shows

MODULES = "tq.tasks.demo,tq.tasks.events,outcome_tasks"
LIMIT = 4096  # a small [history] result_limit, so the oversize case is cheap


@pytest.fixture(scope="module", params=[
    pytest.param(kind, marks=[pytest.mark.redis, pytest.mark.mysql] if kind == "redis" else [])
    for kind in BACKENDS])
def served(request, tmp_path_factory):
    """A backend with a consumer running (two workers on `default`)."""
    backend = Backend(request.param, tmp_path_factory.mktemp(f"results-{request.param}"))
    backend.env.update(TQ_TASKS_MODULES=MODULES, TQ_HISTORY_RESULT_LIMIT=str(LIMIT),
                       TQ_HISTORY_FLUSH_INTERVAL="0.05")
    runtime = backend.runtime()
    consumer = RunningConsumer(runtime, workers=2, queues=["default"])
    yield backend, runtime
    consumer.stop()
    backend.cleanup()


def _ended(runtime, ids, timeout: float = 60.0) -> dict[str, dict]:
    ended = queries.wait_jobs(runtime, ids, timeout)
    assert set(ended) == set(ids), f"not ended within {timeout}s: {set(ids) - set(ended)}"
    return ended


VALUES = [{"a": [1, 2], "b": {"c": None}}, [1, "two", 3.5], "text", None, 42, 0, "",
          [], {}, True, -(2**70), "\u202e\x1b[31m[bold]x[/]", "é" * 100]


def test_values_come_back_as_returned(served):
    _, runtime = served
    ids = [tq.submit("outcome_tasks.give", value, runtime=runtime) for value in VALUES]
    ended = _ended(runtime, ids)
    for job_id, value in zip(ids, VALUES, strict=True):
        job = ended[job_id]
        assert job["state"] == "succeeded", job
        assert job["has_result"] is True
        assert job["result"] == value and type(job["result"]) is type(value)


@pytest.mark.parametrize("kind, size, message", [
    ("big", LIMIT - 1, "result is 4,097 bytes, over [history] result_limit 4,096 bytes"),
    ("big", 70_000, "result is 69 KB, over [history] result_limit 4,096 bytes"),
    ("nan", 0, "result is not JSON: NaN and Infinity have no JSON form"),
    ("inf", 0, "result is not JSON: NaN and Infinity have no JSON form"),
    ("set", 0, "result is not JSON: Object of type set is not JSON serializable"),
    ("int_keys", 0, "result is not JSON: keys must be strings, not int"),
    ("deep", 150, "result is nested deeper than 100 levels"),
    ("deep", 5000, "result is nested deeper than 100 levels"),
])
def test_refused_results_fail_the_job_saying_why(served, kind, size, message):
    _, runtime = served
    job_id = tq.submit("outcome_tasks.give_special", kind, size, runtime=runtime)
    job = _ended(runtime, [job_id])[job_id]
    assert job["state"] == "failed"
    assert job["error_type"] == "ResultRefused"
    assert job["error_message"].startswith(message), job["error_message"]
    assert "\n" not in job["error_message"]
    assert job["attempts"] == 1  # retries=2 left unspent: the same code, the same value
    assert job["has_result"] is False and job["result"] is None


def test_a_result_at_the_limit_is_kept(served):
    _, runtime = served
    job_id = tq.submit("outcome_tasks.give_special", "big", LIMIT - 2, runtime=runtime)
    job = _ended(runtime, [job_id])[job_id]
    assert job["state"] == "succeeded" and job["result"] == "x" * (LIMIT - 2)


def test_wait_jobs_returns_only_what_ended(served):
    _, runtime = served
    slow = tq.submit("outcome_tasks.sleep_then_give", 6, runtime=runtime)
    quick = tq.submit("outcome_tasks.give", "q", runtime=runtime)
    unknown = f"no-such-{uuid.uuid4().hex}"
    started = time.monotonic()
    ended = queries.wait_jobs(runtime, [quick, slow, unknown, quick], timeout=2)
    assert time.monotonic() - started < 60
    assert set(ended) == {quick}
    assert queries.wait_jobs(runtime, [slow], timeout=0) == {}  # one look
    assert queries.wait_jobs(runtime, [], timeout=None) == {}


def test_wait_jobs_backs_off_and_honours_the_timeout(served):
    """With a clock of its own: looks 50 ms apart at first, then up to `poll`."""
    _, runtime = served
    unknown = f"no-such-{uuid.uuid4().hex}"
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds
    assert queries.wait_jobs(runtime, [unknown], timeout=10, poll=1.0, clock=lambda: now[0],
                             sleep=sleep) == {}
    assert slept[0] == pytest.approx(0.05)
    assert slept == sorted(slept[:-1]) + slept[-1:]  # growing, the last cut to the deadline
    assert max(slept) <= 1.0
    assert sum(slept) == pytest.approx(10.0)


# --- tq show, tq wait --------------------------------------------------------------

HOSTILE = {"[bold]k\x1b[31m": ["[/]", "\x1b]0;owned\x07", "fake\rline", "abc\u202edcba",
                                ":smile:", "back\\", "[link=http://evil]l[/link]"]}


@pytest.fixture
def cli(served, monkeypatch, capsys):
    """`tq ...` in this process with the served backend's settings: (exit, out, err)."""
    backend, _ = served
    use_env(monkeypatch, backend.env)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0] and "Error:" not in lines[0].split(":", 2)[-1][:1]
    return lines[0]


def test_show_prints_the_result_literally_and_json_carries_it(served, cli):
    _, runtime = served
    job_id = tq.submit("outcome_tasks.give", HOSTILE, runtime=runtime)
    none_id = tq.submit("outcome_tasks.give", None, runtime=runtime)
    _ended(runtime, [job_id, none_id])
    code, out, _ = cli("show", job_id)
    assert code == 0 and "\x1b" not in out
    pretty = json.dumps(HOSTILE, indent=2, ensure_ascii=False, sort_keys=True)
    for line in pretty.splitlines():
        assert visible(line) in out, line
    code, out, _ = cli("show", "--json", job_id)
    job = json.loads(out)
    assert job["result"] == HOSTILE and job["has_result"] is True
    code, out, _ = cli("show", none_id)
    assert "result null" in " ".join(out.split())
    assert json.loads(cli("show", "--json", none_id)[1])["has_result"] is True


def test_show_cuts_a_long_result_with_a_note(served, cli):
    _, runtime = served
    job_id = tq.submit("outcome_tasks.give_special", "big", LIMIT - 10, runtime=runtime)
    _ended(runtime, [job_id])
    code, out, _ = cli("show", job_id)
    assert code == 0
    assert "x" * 3999 in out and "x" * 4000 not in out  # '"' and 3,999 of them
    assert "(cut at 4,000 characters: tq show --json for all of it)" in out
    assert json.loads(cli("show", "--json", job_id)[1])["result"] == "x" * (LIMIT - 10)


def test_wait_exit_codes(served, cli):
    _, runtime = served
    good = [tq.submit("outcome_tasks.give", value, runtime=runtime)
            for value in ({"n": 1}, "[/]\x1b[31m", None)]
    bad = tq.submit("outcome_tasks.give_special", "nan", runtime=runtime)
    code, out, err = cli("wait", *good, good[0], "--timeout", "60")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 3  # one per job, a repeated id once
    assert lines[0].split() == [good[0], "succeeded", '{"n":', "1}"]
    assert '"[/]\\u001b[31m"' in lines[1] and "\x1b" not in out  # JSON's own escape
    code, out, err = cli("wait", good[0], bad, "--timeout", "60")
    assert code == 1 and err == ""
    assert "failed  ResultRefused: result is not JSON" in out.splitlines()[1]
    code, out, _ = cli("wait", "--json", good[0], bad)
    assert code == 1
    rows = json.loads(out)
    assert [(r["id"], r["state"], r["ended"]) for r in rows] == [
        (good[0], "succeeded", True), (bad, "failed", True)]
    assert rows[0]["result"] == {"n": 1}


def test_wait_times_out_and_refuses_unknown_ids_in_one_line(served, cli):
    _, runtime = served
    done = tq.submit("outcome_tasks.give", 1, runtime=runtime)
    slow = tq.submit("outcome_tasks.sleep_then_give", 6, runtime=runtime)
    _ended(runtime, [done])
    code, out, err = cli("wait", done, slow, "--timeout", "0.5")
    assert code == 2
    assert out.split() == [done, "succeeded", "1"]
    assert _one_line(err) == f"tq: error: timed out after 0.5 s: 1 job not ended: {slow}"
    code, out, err = cli("wait", "--json", slow, "--timeout", "0")
    assert code == 2 and json.loads(out) == [{"id": slow, "ended": False}]
    # Unknown ids: in neither history nor any outbox (queries.unknown_jobs).
    hostile = ["no-such-job", "[/]\x1b[31m", "x" * 5000, "\udcff"]
    code, out, err = cli("wait", done, *hostile, *[f"nope-{n}" for n in range(8)])
    assert code == 2 and out == ""
    line = _one_line(err)
    assert line.startswith("tq: error: no jobs no-such-job, [/]\\x1b[31m, xxx")
    assert line.endswith("nope-5 and 2 more in history") and "\x1b" not in line
    assert "\\udcff" in line and len(line) < 700


@pytest.mark.parametrize("timeout", ["-1", "nan", "inf", "1e3", "abc", "", "99999999999999"])
def test_wait_refuses_a_bad_timeout_in_one_line(served, cli, timeout):
    code, out, err = cli("wait", "x", "--timeout", timeout)
    assert code == 2 and out == ""
    assert "expected seconds from 0 to" in _one_line(err)


# --- tq.result ---------------------------------------------------------------------

def test_result_returns_the_value_or_raises(served):
    _, runtime = served
    ids = [tq.submit("outcome_tasks.give", value, runtime=runtime) for value in VALUES[:5]]
    for job_id, value in zip(ids, VALUES, strict=False):
        assert tq.result(job_id, timeout=60, runtime=runtime) == value
    bad = tq.submit("outcome_tasks.give_special", "set", runtime=runtime)
    with pytest.raises(tq.JobFailed) as caught:
        tq.result(bad, timeout=60, runtime=runtime)
    failure = caught.value
    assert (failure.job_id, failure.state, failure.error_type) == (bad, "failed",
                                                                  "ResultRefused")
    assert failure.error_message.startswith("result is not JSON")
    assert str(failure) == f"job {bad} failed: ResultRefused: {failure.error_message}"
    broken = tq.submit("outcome_tasks.give_special", "no-such-kind", runtime=runtime)
    with pytest.raises(tq.JobFailed) as caught:
        tq.result(broken, timeout=60, runtime=runtime)
    assert caught.value.error_type == "ValueError" and caught.value.state == "failed"
    assert "Traceback" in caught.value.traceback and caught.value.error_message == \
        "no such kind no-such-kind"
    with pytest.raises(tq.UnknownJob) as unknown:
        tq.result("no-such-job", runtime=runtime)
    assert isinstance(unknown.value, KeyError)
    assert str(unknown.value) == "no job 'no-such-job' in history"
    with pytest.raises(tq.UnknownJob):
        tq.result("\ud800" * 3, runtime=runtime)


def test_result_times_out_and_follows_a_requeue(served):
    _, runtime = served
    slow = tq.submit("outcome_tasks.sleep_then_give", 3, "late", runtime=runtime)
    with pytest.raises(tq.ResultTimeout) as caught:
        tq.result(slow, timeout=0.2, runtime=runtime)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.job_id == slow and caught.value.state in ("queued", "running")
    assert tq.result(slow, runtime=runtime) == "late"  # no timeout: as long as it takes
    # A failed job an operator requeued: the copy's value.
    first = tq.submit("outcome_tasks.give_special", "nan", runtime=runtime)
    with pytest.raises(tq.JobFailed):
        tq.result(first, timeout=60, runtime=runtime)
    [copy] = ops.requeue(runtime, [first]).new_ids.values()
    with pytest.raises(tq.JobFailed) as again:
        tq.result(first, timeout=60, runtime=runtime)
    assert again.value.job_id == copy  # the copy failed the same way


# --- the console's job detail ----------------------------------------------------------

def test_console_detail_shows_the_result_literally(served):
    _, runtime = served
    value = {"[bold]k": "[/]v\x1b[31mred[$accent]", "n": [1, None]}
    job_id = tq.submit("outcome_tasks.give", value, runtime=runtime)
    _ended(runtime, [job_id])

    @pilot_test
    async def scenario() -> None:
        app = make_app(runtime)
        async with app.run_test(size=(200, 60)) as pilot:
            await loaded(pilot)
            app.open_job(job_id)
            await loaded(pilot, JobDetailScreen)
            await shows(pilot, "result", '"[bold]k": "[/]v\\u001b[31mred[$accent]"')
    scenario()


def test_a_job_a_consumer_holds_unwritten_is_known_at_once(backend, tmp_path):
    """A consumer's history writer has taken a just-submitted job's record from the
    submitted outbox (renamed to an outbox of its own) and not written it yet:
    tq.result, tq wait and the HTTP API still know the job, at once — the record is
    read from that outbox and written (idempotently) by the reader. They called it
    unknown after a 2 s grace, or for good when the writer was slow."""
    from tq.storage import SUBMITTED

    runtime = backend.runtime()
    job_id = tq.submit("tq.tasks.demo.echo", 7, runtime=runtime)
    # What a consumer's writer round does first (HistoryWriter._take_outboxes).
    assert runtime.control.outbox_adopt(SUBMITTED, "busy-consumer")
    reader = backend.runtime()
    assert queries.unknown_jobs(reader, [job_id, "no-such-job"]) == ["no-such-job"]
    assert queries.job_detail(reader, job_id)["state"] == "queued"
    # The owner writes it later: nothing changes, no second row.
    from tq.history import open_records, write_records
    owner = next(o for o in runtime.control.outbox_owners() if o.startswith("busy-consumer+"))
    raw, marker = runtime.control.outbox_read(owner, 100)
    records, _ = open_records(raw, runtime.records, "test")
    assert write_records(runtime.history_db(), records) == len(records) > 0
    runtime.control.outbox_done(owner, marker)
    assert queries.job_detail(reader, job_id)["state"] == "queued"

"""Job results: a task's return value kept with its job in history, and read back.

One consumer per backend serves the whole module (module-scoped): every test
submits its own jobs and waits on them by id, so they share nothing but the
running consumer. What JSON cannot carry (NaN, Infinity, sets, non-string
keys), what nests too deep and what is over `[history] result_limit` fails the
job with the reason, on its first attempt (not retried)."""
from __future__ import annotations

import time
import uuid

import pytest

import tq
from tq import queries

from conftest import BACKENDS, Backend, RunningConsumer

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

"""Huey's own API on tq's Huey instance (`tq.runtime.current().queue(name)`).

What a Huey user relies on keeps working on tq's queues: enqueueing returns
a handle (Huey's Result) whose `get()` reads the job's outcome from history,
with Huey's semantics (None while not ended and not blocking, ResultTimeout
past a timeout, TaskException for a failure); tuples and sets in arguments
arrive as sent, in the task and in history; a chord is refused at enqueue,
with one line, and none of its members is enqueued.

One consumer per backend serves the module (module-scoped, in this process,
so `@huey.task()` functions declared on the runtime's Huey are known to its
workers); every test enqueues its own jobs and waits on them by id.
"""
from __future__ import annotations

import threading
import uuid
from types import SimpleNamespace

import pytest
from huey.api import Result, ResultGroup, group
from huey.exceptions import HueyException, TaskException
from huey.exceptions import ResultTimeout as HueyResultTimeout

import tq
from tq import queries
from tq.cli import main
from tq.queues import CHORD_REFUSED, ChordRefused
from tq.serializer import JsonSerializer, MessageRefused, dumps_json, loads_json
from tq.submit import SubmitError

from conftest import BACKENDS, Backend, RunningConsumer, use_env

MODULES = "tq.tasks.demo,outcome_tasks"
GATES: dict[str, threading.Event] = {}  # a gated job runs until its test opens the gate


def add(a, b):
    return a + b


def fail(message):
    raise ValueError(message)


def gated(key):
    GATES[key].wait(60)
    return "opened"


def describe(*args, **kwargs):
    return repr((args, kwargs))


@pytest.fixture(scope="module", params=[
    pytest.param(kind, marks=[pytest.mark.redis, pytest.mark.mysql] if kind == "redis" else [])
    for kind in BACKENDS])
def served(request, tmp_path_factory):
    """(backend, runtime, huey, tasks): a consumer running two workers on `default`."""
    backend = Backend(request.param, tmp_path_factory.mktemp(f"hueyapi-{request.param}"))
    backend.env.update(TQ_TASKS_MODULES=MODULES, TQ_HISTORY_FLUSH_INTERVAL="0.05")
    runtime = backend.runtime()
    huey = runtime.queue("default")
    tasks = SimpleNamespace(add=huey.task()(add), fail=huey.task()(fail),
                            gated=huey.task()(gated), describe=huey.task()(describe))
    consumer = RunningConsumer(runtime, workers=2, queues=["default"])
    yield backend, runtime, huey, tasks
    for gate in GATES.values():
        gate.set()
    consumer.stop()
    backend.cleanup()


# --- result handles -------------------------------------------------------------------

def test_a_called_task_returns_a_handle_that_gets_its_value(served):
    _, runtime, huey, tasks = served
    handle = tasks.add(2, 3)
    assert isinstance(handle, Result) and isinstance(handle.id, str)
    assert handle.get(blocking=True, timeout=60) == 5
    assert handle() == 5 and handle.is_ready()
    assert huey.result(handle.id) == 5  # by id, as Huey's huey.result(id)
    assert huey.result(handle.id) == 5  # history keeps it: reading does not consume it
    assert tq.result(handle.id, runtime=runtime) == 5
    assert queries.job_detail(runtime, handle.id)["state"] == "succeeded"


def test_a_failed_job_raises_huey_task_exception_carrying_the_error(served):
    _, runtime, huey, tasks = served
    handle = tasks.fail("disk full")
    with pytest.raises(TaskException) as caught:
        handle.get(blocking=True, timeout=60)
    error = caught.value
    assert isinstance(error, tq.JobFailed)
    assert error.metadata["error"] == "ValueError('disk full')"
    assert error.metadata["task_id"] == handle.id
    assert "ValueError: disk full" in error.metadata["traceback"]
    assert (error.error_type, error.error_message, error.state) == (
        "ValueError", "disk full", "failed")
    assert str(error) == f"job {handle.id} failed: ValueError: disk full"
    with pytest.raises(TaskException):
        handle.get()  # the outcome is kept, as Huey's Result keeps it
    with pytest.raises(TaskException):
        huey.result(handle.id)
    with pytest.raises(tq.JobFailed):
        tq.result(handle.id, runtime=runtime)


def test_not_ended_is_none_without_blocking_and_a_timeout_when_blocking(served):
    _, runtime, huey, tasks = served
    key = uuid.uuid4().hex
    GATES[key] = threading.Event()
    handle = tasks.gated(key)
    assert handle.get() is None  # Huey: not ready, not blocking
    assert huey.result(handle.id) is None
    assert not handle.is_ready()
    with pytest.raises(HueyResultTimeout) as caught:
        handle.get(blocking=True, timeout=0.2)
    assert isinstance(caught.value, tq.ResultTimeout) and isinstance(caught.value,
                                                                     HueyException)
    assert handle.id in str(caught.value)
    with pytest.raises(tq.ResultTimeout):  # tq's own call raises Huey's too
        tq.result(handle.id, timeout=0, runtime=runtime)
    GATES[key].set()
    assert handle.get(blocking=True, timeout=60) == "opened"


def test_a_pipeline_returns_its_results_in_order(served):
    _, _, huey, tasks = served
    results = huey.enqueue(tasks.add.s(1, 2).then(tasks.add, 10).then(tasks.add, 100))
    assert isinstance(results, ResultGroup) and len(results) == 3
    assert results.get(blocking=True, timeout=60) == [3, 13, 113]
    assert results[-1] == 113  # the last result, as Huey indexes it (blocking)
    assert [handle.id for handle in results] == [handle.id for handle in results._results]


def test_a_failed_pipeline_raises_for_every_job_after_the_failure(served):
    _, runtime, huey, tasks = served
    results = huey.enqueue(tasks.add.s(1, 1).then(tasks.fail).then(tasks.add, 5))
    first, failing, never = results
    assert first.get(blocking=True, timeout=60) == 2
    with pytest.raises(TaskException) as caught:
        failing.get(blocking=True, timeout=60)
    assert caught.value.metadata["error"] == "ValueError('2')"  # the value 1 + 1 handed on
    with pytest.raises(TaskException) as caught:
        never.get(blocking=True, timeout=60)  # Huey raises here too; tq does not wait
    assert caught.value.error_type == "PipelineFailed"
    assert f"job {failing.id} before it in the pipeline failed" in str(caught.value)
    assert queries.job_detail(runtime, never.id)["attempts"] == 0


def test_a_group_and_map_keep_working(served):
    _, _, huey, tasks = served
    results = huey.enqueue(group([tasks.add.s(1, 1), tasks.add.s(2, 2), tasks.add.s(3, 3)]))
    assert isinstance(results, ResultGroup)
    assert results.get(blocking=True, timeout=60) == [2, 4, 6]
    mapped = tasks.add.map([(1, 2), (3, 4)])
    assert mapped.get(blocking=True, timeout=60) == [3, 7]
    assert sorted(mapped.as_completed()) == [3, 7]


# --- argument types -----------------------------------------------------------------

SENT_ARGS = ((1, (2, [3, (4,)])), {5, 6}, frozenset({7}), [(), set()],
             {"$tuple": [1, 2]}, {"$set": "not a set"}, {"$esc": ["$tuple", 1]},
             {"$tuple": (8,)}, [{"$frozenset": 9}])
SENT_KWARGS = {"point": (1.5, -2), "tags": {"a"}, "nested": {"t": ((),)}}


def test_tuples_and_sets_arrive_as_sent_through_huey_and_submit(served):
    _, runtime, _, tasks = served
    expected = repr((SENT_ARGS, SENT_KWARGS))
    by_huey = tasks.describe(*SENT_ARGS, **SENT_KWARGS)
    assert by_huey.get(blocking=True, timeout=60) == expected
    by_submit = tq.submit("outcome_tasks.describe", *SENT_ARGS, runtime=runtime,
                          **SENT_KWARGS)
    assert tq.result(by_submit, timeout=60, runtime=runtime) == expected
    for job_id in (by_huey.id, by_submit):
        job = queries.job_detail(runtime, job_id)
        # History keeps the message's text: the arguments a JSON array, tags readable.
        assert job["args"][0] == {"$tuple": [1, {"$tuple": [2, [3, {"$tuple": [4]}]]}]}
        assert job["args"][1] == {"$set": [5, 6]}
        assert job["args"][4] == {"$esc": ["$tuple", [1, 2]]}
        assert job["kwargs"]["point"] == {"$tuple": [1.5, -2]}
        assert loads_json(dumps_json(job["args"])) == job["args"]


def test_tq_show_prints_tagged_arguments_readably(served, monkeypatch, capsys):
    backend, runtime, _, tasks = served
    handle = tasks.describe((1, 2), {3})
    handle.get(blocking=True, timeout=60)
    use_env(monkeypatch, backend.env)
    assert main(["show", handle.id]) == 0
    shown = capsys.readouterr().out
    assert '{"$tuple":[1,2]}' in shown.replace(" ", "") and '{"$set":[3]}' in \
        shown.replace(" ", "")


def _nested_tuples(levels: int):
    value: tuple = ()
    for _ in range(levels):
        value = (value,)
    return value


@pytest.mark.parametrize("args, reason", [
    ([b"bytes"], "arguments must be JSON values"),
    ([{1.5, float("nan")}], "not finite"),
    ([_nested_tuples(60)], "nested deeper than 100 levels"),  # a tag is two JSON levels
    ([{(1, 2): "tuple key"}], "arguments must be JSON values"),
    ([set(range(200_000))], "over the limit"),
], ids=["bytes", "nan-in-set", "deep-tuples", "tuple-key", "huge-set"])
def test_submit_refuses_what_tagged_json_cannot_carry_in_one_line(served, args, reason):
    _, runtime, _, _ = served
    with pytest.raises(SubmitError) as caught:
        tq.submit("outcome_tasks.describe", *args, runtime=runtime)
    message = str(caught.value)
    assert reason in message and "\n" not in message and "Error" not in message


def _message(args_json: str) -> bytes:
    return (f'{{"id":"{uuid.uuid4()}","name":"outcome_tasks.describe","args":{args_json},'
            f'"kwargs":{{}},"tq":{{"attempt":0}}}}').encode()


@pytest.mark.parametrize("args_json, reason", [
    ('[{"$tuple":"x"}]', "malformed $tuple value"),
    ('[{"$tuple":null}]', "malformed $tuple value"),
    ('[{"$tuple":{"a":1}}]', "malformed $tuple value"),
    ('[{"$set":[[1]]}]', "malformed $set value"),  # an unhashable member
    ('[{"$set":[1,1]}]', "malformed $set value"),  # tq never sends a member twice
    ('[{"$set":[{"$set":[1]}]}]', "malformed $set value"),  # a set in a set
    ('[{"$frozenset":"ab"}]', "malformed $frozenset value"),
    ('[{"$esc":["$tuple"]}]', "malformed $esc value"),
    ('{"$tuple":[1]}', "args must be an array, got a tuple"),  # the top level is never tagged
    ('[' + '{"$tuple":[' * 60 + ']}' * 60 + ']', "nested deeper than 100 levels"),
    ('[{"$tuple":["' + "x" * 2_000_000 + '"]}]', "over the limit"),
], ids=["string", "null", "object", "unhashable", "repeated", "set-in-set", "frozen-str",
        "esc-short", "top-level", "deep", "huge"])
def test_forged_tags_in_a_message_are_refused_with_their_reason(served, args_json, reason):
    _, _, huey, _ = served
    with pytest.raises(MessageRefused) as caught:
        huey.deserialize_task(_message(args_json))
    assert reason in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("args_json, arrives", [
    ('[{"$tuple":[1],"x":2}]', [{"$tuple": [1], "x": 2}]),  # two keys: a dict, not a tag
    ('[{"$esc":["$set",[1,2]]}]', [{"$set": [1, 2]}]),
    ('[{"$tuple":[]}]', [()]),
    ('[{"$frozenset":[]}]', [frozenset()]),
], ids=["two-keys", "escaped", "empty-tuple", "empty-frozenset"])
def test_well_formed_messages_decode_as_sent(served, args_json, arrives):
    _, _, huey, _ = served
    task = huey.deserialize_task(_message(args_json))
    assert list(task.args) == arrives and isinstance(task.args, tuple)


def test_the_serializer_tags_only_inside_the_arguments():
    payload = JsonSerializer().serialize({"args": [(1,)], "kwargs": {"k": {2}}})
    assert payload == b'{"args":[{"$tuple":[1]}],"kwargs":{"k":{"$set":[2]}}}'
    assert dumps_json([1, [2]]) == "[1,[2]]"  # plain values: plain JSON, as before


# --- chords: refused at enqueue -------------------------------------------------------

@pytest.fixture
def idle(backend):
    """A backend whose default queue no consumer serves: what enqueue left is there."""
    runtime = backend.runtime(TQ_TASKS_MODULES=MODULES)
    huey = runtime.queue("default")
    return huey, SimpleNamespace(add=huey.task()(add))


def test_a_chord_is_refused_at_enqueue_with_one_line_and_nothing_enqueued(idle):
    huey, tasks = idle
    chords = [
        group([tasks.add.s(1, 1), tasks.add.s(2, 2)]).then(tasks.add, 3),
        group([tasks.add.s(1, 1)]).then(tasks.add, 3).then(tasks.add, 4),
        # A chord inside a group: the plain member before it is not enqueued either.
        group([tasks.add.s(5, 5), group([tasks.add.s(1, 1)]).then(tasks.add, 3)]),
    ]
    for refused in chords:
        with pytest.raises(ChordRefused) as caught:
            huey.enqueue(refused)
        assert str(caught.value) == CHORD_REFUSED and "\n" not in CHORD_REFUSED
        assert isinstance(caught.value, HueyException)
    assert huey.pending_count() == 0 and huey.scheduled_count() == 0
    # A plain group and a pipeline still go in whole.
    huey.enqueue(group([tasks.add.s(1, 1), tasks.add.s(2, 2)]))
    huey.enqueue(tasks.add.s(1, 2).then(tasks.add, 3))
    assert huey.pending_count() == 3

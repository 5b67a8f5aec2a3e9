"""What tq relies on in Huey beyond its documented API, checked against the installed Huey.

tq subclasses Huey, its Registry, Serializer, Consumer, Worker, Scheduler,
ProcessEnvironment and two storages, and reads or overrides names Huey does
not document (`_registry`, `_requeue_task`, `_set_signal_handlers`,
`worker_threads`, `environment.is_alive`, ...). A Huey release may rename any
of them; an override of a hook Huey no longer calls is then silently dead. So
each such name is listed here with the tq module that depends on it and the
shape tq uses (a callable taking these parameters, an attribute of an
instance, a hook Huey's own code still calls), and a change fails here, by
name, instead of in production. The huey pin in pyproject.toml is the minor
series this holds for: widen it only after this test passes on the new one.
"""
from __future__ import annotations

import inspect
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from huey import MemoryHuey
from huey import signals as S
from huey.api import Huey, Task
from huey.consumer import Consumer, Environment, ProcessEnvironment, Scheduler, Worker
from huey.registry import Message, Registry
from huey.serializer import Serializer
from huey.storage import BaseSqlStorage, PriorityRedisStorage, SqliteStorage


@dataclass(frozen=True)
class Method:
    """`owner.name` is a callable accepting `params` (by these names)."""
    user: str  # the tq module that depends on it
    owner: type
    name: str
    params: tuple[str, ...] = ()


# Methods tq calls or overrides (an override keeps Huey's parameters: it calls super()).
METHODS = [
    Method("tq.queues", Huey, "__init__",
           ("name", "results", "utc", "serializer", "storage_class")),
    Method("tq.queues", Huey, "task",
           ("retries", "retry_delay", "retry_backoff", "timeout", "name")),
    Method("tq.queues", Huey, "signal"),
    Method("tq.queues", Huey, "serialize_task", ("task",)),
    Method("tq.queues", Huey, "deserialize_task", ("data",)),
    Method("tq.queues", Huey, "dequeue"),
    Method("tq.queues", Huey, "enqueue", ("task",)),
    Method("tq.queues", Huey, "execute", ("task", "timestamp")),
    Method("tq.queues", Huey, "is_revoked", ("task", "timestamp", "peek")),
    Method("tq.queues", Huey, "delete", ("key",)),
    Method("tq.queues", Huey, "_requeue_task", ("task", "timestamp", "retry_eta")),
    Method("tq.ops", Huey, "revoke_by_id", ("id", "revoke_once")),
    Method("tq.consumer", Huey, "notify_interrupted_tasks"),
    Method("tq.queues", Registry, "string_to_task", ("task_str",)),
    Method("tq.queues", Registry, "task_to_string", ("task_class",)),
    Method("tq.queues", Registry, "create_message", ("task",)),
    Method("tq.queues", Registry, "create_task", ("message",)),
    Method("tq.submit", Task, "__init__",
           ("args", "kwargs", "id", "eta", "retries", "retry_delay", "retry_backoff",
            "priority", "expires", "timeout")),
    Method("tq.submit", Task, "resolve_expires", ("utc",)),
    Method("tq.registry", Task, "check_timeout"),
    Method("tq.serializer", Serializer, "_serialize", ("data",)),
    Method("tq.serializer", Serializer, "_deserialize", ("data",)),
    Method("tq.consumer", Consumer, "__init__",
           ("huey", "workers", "periodic", "initial_delay", "backoff", "max_delay",
            "worker_type", "health_check_interval", "shutdown_timeout")),
    Method("tq.consumer", Consumer, "get_environment", ("worker_type",)),
    Method("tq.consumer", Consumer, "_set_signal_handlers"),
    Method("tq.consumer", Consumer, "_interrupt_workers"),
    Method("tq.consumer", Consumer, "check_worker_health"),
    Method("tq.consumer", Consumer, "start"),
    Method("tq.consumer", Environment, "is_alive", ("proc",)),
    Method("tq.consumer", ProcessEnvironment, "__init__"),
    Method("tq.consumer", ProcessEnvironment, "init_child", ("process",)),
    Method("tq.consumer", Worker, "loop", ("now",)),
    Method("tq.consumer", Worker, "sleep"),
    Method("tq.consumer", Worker, "initialize"),
    Method("tq.consumer", Worker, "shutdown"),
    Method("tq.consumer", Scheduler, "loop", ("now",)),
    Method("tq.storage.sqlite", SqliteStorage, "__init__", ("name", "filename")),
    Method("tq.storage.sqlite", BaseSqlStorage, "db", ("commit",)),
    Method("tq.storage.sqlite", BaseSqlStorage, "sql",
           ("query", "params", "commit", "results")),
    Method("tq.storage.sqlite", BaseSqlStorage, "initialize_schema"),
    Method("tq.runtime", BaseSqlStorage, "close"),
    Method("tq.storage.redis", PriorityRedisStorage, "__init__",
           ("name", "blocking")),
    Method("tq.storage.redis", PriorityRedisStorage, "convert_ts", ("ts",)),
    Method("tq.storage.redis", PriorityRedisStorage, "enqueue", ("data", "priority")),
]


@pytest.mark.parametrize("need", METHODS, ids=lambda m: f"{m.owner.__name__}.{m.name}")
def test_method(need: Method) -> None:
    where = f"{need.user} relies on huey's {need.owner.__qualname__}.{need.name}"
    member = getattr(need.owner, need.name, None)
    assert callable(member), f"{where}: it is gone"
    params = inspect.signature(member).parameters
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    missing = [name for name in need.params if name not in params and not takes_kwargs]
    assert not missing, f"{where} with parameters {missing}: now {list(params)}"


@dataclass(frozen=True)
class Hook:
    """Huey's `caller` still calls `call`: tq overrides it and would otherwise
    change nothing, without any error."""
    user: str
    caller: Callable[..., Any]
    call: str


HOOKS = [
    Hook("tq.queues", Huey.execute, "self.is_revoked("),
    Hook("tq.queues", Huey._execute, "self._requeue_task("),
    Hook("tq.queues", Huey._execute, "self.delete("),
    Hook("tq.queues", Huey.enqueue, "self.serialize_task("),
    Hook("tq.queues", Huey.dequeue, "self.deserialize_task("),
    Hook("tq.consumer", Huey._execute, "self._tasks_in_flight.add("),
    Hook("tq.serializer", Serializer.serialize, "self._serialize("),
    Hook("tq.serializer", Serializer.deserialize, "self._deserialize("),
    Hook("tq.consumer", Worker.loop, "self.huey.dequeue("),
    Hook("tq.consumer", Worker.loop, "self.huey.execute("),
    Hook("tq.consumer", Worker.loop, "self.sleep("),
    Hook("tq.consumer", Consumer.start, "self._set_signal_handlers("),
    Hook("tq.consumer", Consumer._create_process, "self.environment.init_child("),
    Hook("tq.consumer", Consumer.__init__, "self.get_environment("),
    Hook("tq.consumer", Consumer._create_worker, "self.worker_class"),
    Hook("tq.consumer", Consumer._create_scheduler, "self.scheduler_class"),
]


@pytest.mark.parametrize("hook", HOOKS, ids=lambda h: f"{h.caller.__qualname__}:{h.call}")
def test_hook_is_called(hook: Hook) -> None:
    assert hook.call in inspect.getsource(hook.caller), (
        f"{hook.user} overrides what huey's {hook.caller.__qualname__} reached through "
        f"`{hook.call}`; it no longer does, so tq's override has no effect")


def _no_missing(user: str, owner: str, obj: object, names: list[str]) -> None:
    missing = [name for name in names if not hasattr(obj, name)]
    assert not missing, f"{user} relies on {owner} having {missing}"


def test_huey_instance() -> None:
    huey = MemoryHuey("contract", utc=True)
    _no_missing("tq.queues", "a Huey", huey,
                ["_registry", "_tasks_in_flight", "serializer", "storage"])
    assert isinstance(huey._registry, Registry), "tq.queues replaces Huey._registry"
    assert isinstance(huey._registry._registry, dict), (
        "tq.queues (TqRegistry.string_to_task) reads Registry._registry as a dict of tasks")
    assert isinstance(huey._tasks_in_flight, set), (
        "tq.consumer tests Huey._tasks_in_flight for a running job")

    task = huey.task(retries=1, timeout=5, name="contract")(lambda: None).s()
    _no_missing("tq.queues, tq.submit, tq.ops", "a Huey Task", task,
                ["id", "args", "kwargs", "eta", "retries", "retry_delay", "priority",
                 "timeout", "expires", "expires_resolved", "revoke_id"])
    assert huey._registry.task_to_string(type(task)) in huey._registry._registry


def test_message_fields() -> None:
    # tq.queues builds Message(**fields) from a dict of every field and refuses chords.
    wanted = {"id", "name", "eta", "retries", "retry_delay", "retry_backoff", "priority",
              "args", "kwargs", "on_complete", "on_error", "expires", "expires_resolved",
              "timeout", "chord_config"}
    assert wanted <= set(Message._fields), (
        f"tq.queues reads huey's Message fields {sorted(wanted - set(Message._fields))}")


def test_signals() -> None:
    # tq.queues turns each of these signals into history; a renamed one would
    # leave jobs `running` in history for ever.
    names = ["SIGNAL_EXECUTING", "SIGNAL_SCHEDULED", "SIGNAL_ERROR", "SIGNAL_TIMEOUT",
             "SIGNAL_LOCKED", "SIGNAL_RATE_LIMITED", "SIGNAL_RETRYING", "SIGNAL_COMPLETE",
             "SIGNAL_CANCELED", "SIGNAL_REVOKED", "SIGNAL_EXPIRED", "SIGNAL_INTERRUPTED"]
    _no_missing("tq.queues", "huey.signals", S, names)


def test_consumer_instance() -> None:
    consumer = Consumer(MemoryHuey("contract"), workers=2, periodic=False,
                        initial_delay=0.05, backoff=1.3, max_delay=1.0, worker_type="thread",
                        health_check_interval=5, shutdown_timeout=1)
    _no_missing("tq.consumer", "a Huey Consumer", consumer,
                ["_graceful_sig", "_interrupt_sig", "environment", "stop_flag", "scheduler",
                 "worker_threads", "huey"])
    threads = consumer.worker_threads
    assert isinstance(threads, list) and len(threads) == 2 and all(
        isinstance(pair, tuple) and len(pair) == 2 for pair in threads), (
        "tq.consumer (ConsumerGroup.stop) reads Consumer.worker_threads as (worker, process) "
        f"pairs: now {threads!r}")
    worker, process = threads[0]
    assert consumer.environment.is_alive(process) is False, (
        "tq.consumer (ConsumerGroup.stop) asks Consumer.environment.is_alive(process)")
    _no_missing("tq.consumer", "a Huey Worker", worker,
                ["delay", "max_delay", "backoff", "stop_flag", "huey"])
    assert (worker.delay, worker.max_delay, worker.backoff) == (0.05, 1.0, 1.3), (
        "tq.consumer (TqWorker.sleep) reads Worker.delay/max_delay/backoff as Consumer's "
        "initial_delay/max_delay/backoff")


def test_process_environment() -> None:
    environment = ProcessEnvironment(signal.SIGINT, signal.SIGTERM)
    assert (environment.graceful, environment.interrupt) == (signal.SIGINT, signal.SIGTERM), (
        "tq.consumer (TqProcessEnvironment.init_child) reads ProcessEnvironment.graceful "
        "and .interrupt")


def test_sqlite_storage(tmp_path: Path) -> None:
    storage = SqliteStorage(name="contract", filename=str(tmp_path / "huey.db"))
    _no_missing("tq.storage.sqlite", "a Huey SqliteStorage", storage,
                ["ddl", "lock", "_conn", "to_blob", "name"])
    assert isinstance(SqliteStorage.ddl, list), (
        "tq.storage.sqlite extends SqliteStorage.ddl (a list of statements)")
    storage.enqueue(b"job", 3)
    # tq's claim and put-back read and write Huey's `task` table themselves.
    assert storage.sql("select queue, data, priority from task", results=True) == \
        [("contract", b"job", 3.0)], "tq.storage.sqlite reads huey's task(queue, data, priority)"
    tables = {row[0] for row in storage.sql(
        "select name from sqlite_master where type = 'table'", results=True)}
    assert {"task", "schedule", "kv"} <= tables, (
        f"tq.storage.sqlite queries huey's tables task, schedule and kv: now {sorted(tables)}")
    storage.close()
    assert storage._conn is None, (
        "tq.storage.sqlite (_reset_after_fork) sets SqliteStorage._conn to None to reconnect")


def test_redis_storage() -> None:
    # No server needed: redis-py connects on the first command.
    storage = PriorityRedisStorage(name="contract", blocking=False, clean_name=False)
    _no_missing("tq.storage.redis", "a Huey PriorityRedisStorage", storage,
                ["conn", "queue_key", "schedule_key", "result_key", "blocking"])
    # tq's Lua scripts address Huey's keys by these names.
    assert (storage.queue_key, storage.schedule_key, storage.result_key) == (
        "huey.redis.contract", "huey.schedule.contract", "huey.results.contract"), (
        "tq.storage.redis addresses huey's keys huey.{redis,schedule,results}.<name>")

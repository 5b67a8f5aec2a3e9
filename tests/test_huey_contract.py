"""The Huey internals tq relies on, each checked with the shape tq uses, so a Huey
release that renames or reshapes one fails here by name (and names the tq module
that depends on it) rather than somewhere deep in a consumer.

The huey pin in pyproject.toml is the minor series this passes on; widen it only
after running this file against the new release."""
from __future__ import annotations

import inspect

import huey
from huey import MemoryHuey
from huey.consumer import Consumer, ProcessEnvironment, Scheduler, Worker
from huey.registry import Message, Registry


def needs(condition: bool, name: str, user: str) -> None:
    assert condition, f"Huey {huey.__version__}: {name} changed or is gone; {user} relies on it"


def params(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_registry_internals():
    app = MemoryHuey("tq-contract", utc=True)

    @app.task()
    def add(a, b):
        return a + b

    needs(isinstance(app._registry, Registry), "Huey._registry (a Registry)",
          "tq.queues.TqHuey (its own TqRegistry) and tq.submit (string_to_task)")
    needs(isinstance(app._registry._registry, dict), "Registry._registry (name -> task class)",
          "tq.queues.TqRegistry.string_to_task")
    name = app._registry.task_to_string(type(add.s(1, 2)))
    needs(name in app._registry._registry, "Registry.task_to_string / _registry keys",
          "tq.queues (task names in records)")
    needs(app._registry.string_to_task(name) is type(add.s(1, 2)), "Registry.string_to_task",
          "tq.submit.prepare")
    message = app._registry.create_message(add.s(1, 2))
    needs(isinstance(message, Message), "Registry.create_message -> Message", "tq.queues")
    needs(type(app._registry.create_task(message)) is type(add.s(1, 2)),
          "Registry.create_task(Message)", "tq.queues.TqHuey.deserialize_task")
    for field in ("id", "name", "eta", "retries", "retry_delay", "priority", "expires_resolved",
                  "on_complete", "on_error", "args", "kwargs"):
        needs(field in Message._fields, f"Message field {field!r}",
              "tq.queues (_message_fields/_dict_to_message)")


def test_huey_internals():
    app = MemoryHuey("tq-contract", utc=True)
    needs(params(app._requeue_task) == ["task", "timestamp", "retry_eta"],
          "Huey._requeue_task(task, timestamp, retry_eta=None)",
          "tq.queues.TqHuey._requeue_task (retries keep their job id)")
    needs(hasattr(app, "_tasks_in_flight"), "Huey._tasks_in_flight",
          "tq.consumer.TqProcessEnvironment (SIGTERM interrupts a running job)")
    needs(callable(getattr(app, "notify_interrupted_tasks", None)),
          "Huey.notify_interrupted_tasks", "tq.consumer.ConsumerGroup (stop)")
    for method in ("is_revoked", "delete", "execute", "enqueue"):
        needs(callable(getattr(app, method, None)), f"Huey.{method}", "tq.queues.TqHuey")


def test_consumer_internals():
    app = MemoryHuey("tq-contract", utc=True)
    consumer = Consumer(app, workers=2, worker_type="thread")
    user = "tq.consumer.ConsumerGroup (stopping its consumers)"
    needs(callable(getattr(Consumer, "_set_signal_handlers", None)),
          "Consumer._set_signal_handlers", "tq.consumer.TqConsumer (the group owns signals)")
    needs(params(Consumer.get_environment) == ["self", "worker_type"],
          "Consumer.get_environment(worker_type)", "tq.consumer.TqConsumer")
    needs(hasattr(consumer, "_graceful_sig") and hasattr(consumer, "_interrupt_sig"),
          "Consumer._graceful_sig/_interrupt_sig", "tq.consumer.TqConsumer.get_environment")
    needs(len(consumer.worker_threads) == 2
          and all(len(pair) == 2 for pair in consumer.worker_threads),
          "Consumer.worker_threads [(worker, process)]", user)
    needs(callable(getattr(consumer.environment, "is_alive", None)),
          "Consumer.environment.is_alive(process)", user)
    needs(callable(getattr(consumer, "_interrupt_workers", None)),
          "Consumer._interrupt_workers", user)
    needs(hasattr(consumer.stop_flag, "set") and callable(getattr(consumer.scheduler, "join", None)),
          "Consumer.stop_flag (an Event) / Consumer.scheduler (a joinable process)", user)
    needs(consumer.worker_class is Worker and consumer.scheduler_class is Scheduler,
          "Consumer.worker_class / scheduler_class", "tq.consumer.TqConsumer")
    worker = consumer.worker_threads[0][0]
    needs(hasattr(worker, "delay"), "Worker.delay (the back-off)", "tq.consumer.TqWorker")
    for method in ("loop", "sleep", "initialize", "shutdown"):
        needs(callable(getattr(Worker, method, None)), f"Worker.{method}", "tq.consumer.TqWorker")
    needs(callable(getattr(Scheduler, "loop", None)), "Scheduler.loop", "tq.consumer.TqScheduler")


def test_process_environment_internals():
    import signal

    environment = ProcessEnvironment(signal.SIGINT, signal.SIGTERM)
    user = "tq.consumer.TqProcessEnvironment"
    needs(environment.graceful == signal.SIGINT and environment.interrupt == signal.SIGTERM,
          "ProcessEnvironment(graceful, interrupt) attributes", user)
    needs(callable(getattr(ProcessEnvironment, "init_child", None)),
          "ProcessEnvironment.init_child(process)", user)
    needs(callable(getattr(ProcessEnvironment, "is_alive", None)),
          "ProcessEnvironment.is_alive", "tq.consumer.ConsumerGroup")

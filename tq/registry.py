"""The tq task registry: `@tq.task()` and `@tq.periodic()` record functions here.

Huey binds a task to one Huey instance. tq runs one Huey instance per named
queue, so tasks are declared once here and every queue's Huey instance learns
them on first use (see queues.TqRegistry). A task's name is its dotted path,
`package.module.function`, which is also what `tq submit` takes.
"""
from __future__ import annotations

import importlib
import inspect
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from huey.exceptions import CancelExecution


@dataclass
class TaskDef:
    name: str
    func: Callable[..., Any]
    queue: str | None = None
    priority: int | None = None
    retries: int = 0
    retry_delay: float = 0
    retry_backoff: float = 0
    timeout: float | None = None
    expires: float | None = None
    signature: inspect.Signature = field(init=False)

    def __post_init__(self) -> None:
        self.signature = inspect.signature(self.func)


TASKS: dict[str, TaskDef] = {}
PERIODIC_FROM_CODE: dict[str, tuple[str, str, str | None]] = {}  # name -> (schedule, task, queue)


def task_name(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__name__}"


def task(queue: str | None = None, priority: int | None = None, retries: int = 0,
         retry_delay: float = 0, retry_backoff: float = 0, timeout: float | None = None,
         expires: float | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a job function. The function itself is returned unchanged, so it
    can still be called directly (and tested) as plain Python."""
    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        name = task_name(func)
        TASKS[name] = TaskDef(name, func, queue, priority, retries, retry_delay,
                              retry_backoff, timeout, expires)
        func.tq_name = name  # type: ignore[attr-defined]
        return func
    return decorator


def periodic(schedule: str, queue: str | None = None, **options: Any
             ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a task that runs on a schedule: `@every 30s` or five crontab fields."""
    from tq.schedule import parse_schedule

    parse_schedule(schedule)

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        func = task(queue=queue, **options)(func)
        PERIODIC_FROM_CODE[func.__name__] = (schedule, task_name(func), queue)
        return func
    return decorator


def import_task_modules(modules: list[str]) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            from tq.config import ConfigError
            raise ConfigError(f"[tasks] modules: cannot import {module!r}: {exc}") from None


def get_task(name: str) -> TaskDef:
    try:
        return TASKS[name]
    except KeyError:
        raise LookupError(f"unknown task {name!r}") from None


# --- cooperative cancellation -------------------------------------------------
# The consumer sets the running job's id here so a task can ask whether an
# operator cancelled it (`tq cancel ID`) without knowing its own id.
_current = threading.local()


def current_job_id() -> str | None:
    """The id of the job running in this worker, or None outside a job."""
    return getattr(_current, "job_id", None)


def current_attempt() -> int:
    """The running job's attempt number (1 on the first run), or 0 outside a job."""
    task = getattr(_current, "task", None)
    return getattr(task, "tq_attempt", 0) if task is not None else 0


def cancel_requested() -> bool:
    """True once an operator has asked to cancel the running job.

    Long tasks call this (or `check_cancel()`) between units of work; a task
    that never checks runs to its end and keeps its real outcome."""
    job_id = current_job_id()
    checker = getattr(_current, "checker", None)
    return bool(job_id and checker and checker(job_id))


def check_cancel() -> None:
    """Raise Huey's CancelExecution (no retry) if the running job was cancelled,
    or TaskTimeout if it has run past its timeout: thread workers cannot be
    interrupted, so this is how they stop an overdue job."""
    task = getattr(_current, "task", None)
    if task is not None:
        task.check_timeout()
    if cancel_requested():
        raise CancelExecution(retry=False)

"""The tq task registry: `@tq.task()` and `@tq.periodic()` record functions here.

Huey binds a task to one Huey instance. tq runs one Huey instance per named
queue, so tasks are declared once here and every queue's Huey instance learns
them on first use (see queues.TqRegistry). A task's name is its dotted path,
`package.module.function`, which is also what `tq submit` takes.
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from huey.exceptions import CancelExecution

if TYPE_CHECKING:
    from tq.runtime import Runtime


@dataclass
class TaskDef:
    name: str
    func: Callable[..., Any]
    queue: str | None = None
    priority: int | str | None = None  # a number or a name (jobspec.priority)
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


def task(queue: str | None = None, priority: int | str | None = None, retries: int = 0,
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


# --- tq's metadata on a Huey task ---------------------------------------------
@dataclass(frozen=True)
class TaskMeta:
    """What tq keeps on a Huey task beside Huey's own fields: one object, its
    defaults here. It travels in the message (the "tq" field, see
    TqHuey.serialize_task), except `encoded`, which is only this process's."""
    attempt: int = 0  # attempts started so far (1 while the first one runs)
    # Retries as submitted: Huey counts task.retries down on every retry.
    # None: not recorded (a task tq did not make), read as the task's own.
    max_retries: int | None = None
    enqueued_at: float | None = None
    requeued_from: str | None = None  # the job this one is a copy of (`tq requeue`)
    # The arguments as history keeps them (tagged JSON), made once per job.
    encoded: tuple[str, str] | None = field(default=None, compare=False)

    def to_message(self, task: Any) -> dict[str, Any]:
        return {"attempt": self.attempt, "max_retries": self.retries_of(task),
                "enqueued_at": self.enqueued_at, "requeued_from": self.requeued_from}

    @classmethod
    def from_message(cls, fields: dict[str, Any], task: Any) -> TaskMeta:
        return cls(attempt=int(fields.get("attempt") or 0),
                   max_retries=fields.get("max_retries", task.retries),
                   enqueued_at=fields.get("enqueued_at"),
                   requeued_from=fields.get("requeued_from"))

    def retries_of(self, task: Any) -> int | None:
        return task.retries if self.max_retries is None else self.max_retries


NO_META = TaskMeta()


def task_meta(task: Any) -> TaskMeta:
    """tq's metadata of a Huey task (the defaults for one tq did not make)."""
    return getattr(task, "tq_meta", NO_META)


def set_meta(task: Any, meta: TaskMeta) -> None:
    task.tq_meta = meta


# --- the job running in this thread -------------------------------------------
# The consumer says which job runs (`running`) so a task can ask whether an
# operator cancelled it (`tq cancel ID`) without knowing its own id.
@dataclass(frozen=True)
class CurrentJob:
    task: Any  # the Huey task
    runtime: Runtime
    checker: Callable[[str], bool]  # job id -> an operator asked to cancel it


_current: ContextVar[CurrentJob | None] = ContextVar("tq_current_job", default=None)


@contextmanager
def running(task: Any, runtime: Runtime) -> Iterator[CurrentJob]:
    """The job `task` runs in this thread (or process) for the `with` block:
    set on entry and reset on exit however the job ends, so nothing of one
    job is seen by the next on the same worker."""
    job = CurrentJob(task, runtime, runtime.cancel_checker)
    token = _current.set(job)
    try:
        yield job
    finally:
        _current.reset(token)


def serving_runtime() -> Runtime | None:
    """The runtime of the consumer running this thread's job, if any."""
    job = _current.get()
    return job.runtime if job is not None else None


def current_job_id() -> str | None:
    """The id of the job running in this worker, or None outside a job."""
    job = _current.get()
    return job.task.id if job is not None else None


def current_attempt() -> int:
    """The running job's attempt number (1 on the first run), or 0 outside a job."""
    job = _current.get()
    return task_meta(job.task).attempt if job is not None else 0


def cancel_requested() -> bool:
    """True once an operator has asked to cancel the running job.

    Long tasks call this (or `check_cancel()`) between units of work; a task
    that never checks runs to its end and keeps its real outcome."""
    job = _current.get()
    return bool(job is not None and job.task.id and job.checker(job.task.id))


def check_cancel() -> None:
    """Raise Huey's CancelExecution (no retry) if the running job was cancelled,
    or TaskTimeout if it has run past its timeout: thread workers cannot be
    interrupted, so this is how they stop an overdue job."""
    job = _current.get()
    if job is not None:
        job.task.check_timeout()
    if cancel_requested():
        raise CancelExecution(retry=False)

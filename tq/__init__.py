"""tq: an operations console and toolkit for Huey task queues.

The Python API is small: declare tasks with `@tq.task()` (or `@tq.periodic()`),
enqueue them with `tq.submit()` / `tq.submit_many()`, and let long tasks call
`tq.check_cancel()` so an operator can stop them; `tq.result(job_id)` returns a
job's return value (or raises tq.JobFailed / tq.ResultTimeout / tq.UnknownJob).

`import tq` is light: the API names are loaded on first use (PEP 562), so
`tq --help` and anything that imports one tq module for one job load neither
huey nor redis, peewee or a database driver until something needs them
(tests/test_lazy_import.py holds this).
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the names are, for type checkers and readers
    from tq.attach import attach
    from tq.registry import (
        cancel_requested,
        check_cancel,
        current_attempt,
        current_job_id,
        periodic,
        task,
    )
    from tq.results import JobFailed, ResultTimeout, UnknownJob, result
    from tq.runtime import configure, current
    from tq.submit import JobExists, SubmitError, submit, submit_many

# Each API name and the module that defines it.
_API = {
    "task": "tq.registry", "periodic": "tq.registry", "cancel_requested": "tq.registry",
    "check_cancel": "tq.registry", "current_job_id": "tq.registry",
    "current_attempt": "tq.registry",
    "configure": "tq.runtime", "current": "tq.runtime",
    "submit": "tq.submit", "submit_many": "tq.submit", "SubmitError": "tq.submit",
    "JobExists": "tq.submit", "attach": "tq.attach",
    "result": "tq.results", "JobFailed": "tq.results", "ResultTimeout": "tq.results",
    "UnknownJob": "tq.results",
}

__all__ = ["task", "periodic", "submit", "submit_many", "SubmitError", "JobExists", "configure",
           "current", "attach",
           "cancel_requested", "check_cancel", "current_job_id", "current_attempt",
           "result", "JobFailed", "ResultTimeout", "UnknownJob"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:  # not an API name: a submodule, which the import system loads itself
        raise AttributeError(f"module 'tq' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))


class _Package(types.ModuleType):
    """`tq.submit` is the function, though tq/submit.py is also a submodule: the
    import system binds a submodule on its package once it is loaded (before any
    `tq.submit` was asked for, that would make `tq.submit(...)` call a module), so
    that one binding is turned back into the function. The module itself stays
    sys.modules["tq.submit"] (`from tq.submit import enqueue` is unaffected)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _API.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

"""tq: an operations console and toolkit for Huey task queues.

The Python API is small: declare tasks with `@tq.task()` (or `@tq.periodic()`),
enqueue them with `tq.submit()` / `tq.submit_many()`, and let long tasks call
`tq.check_cancel()` so an operator can stop them.
"""
from tq.registry import (cancel_requested, check_cancel, current_attempt, current_job_id,
                         periodic, task)
from tq.runtime import configure, current
from tq.submit import JobExists, SubmitError, submit, submit_many

__all__ = ["task", "periodic", "submit", "submit_many", "SubmitError", "JobExists", "configure",
           "current",
           "cancel_requested", "check_cancel", "current_job_id", "current_attempt"]
__version__ = "0.1.0"

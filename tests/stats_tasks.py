"""Tasks for the summary tests: a retry whose count is known in advance."""
from __future__ import annotations

from pathlib import Path

import tq


@tq.task(retries=1)
def fail_once(folder: str) -> str:
    """Fail the first attempt, succeed the retry: exactly one retry per job."""
    marker = Path(folder) / str(tq.current_job_id())
    if not marker.exists():
        marker.write_text("failed once")
        raise RuntimeError("first attempt fails on purpose")
    return "ok"

"""Built-in upkeep, scheduled by `[history] rollup_every` (see tq.scheduler): roll the
history up into summaries, then prune what is past retention.

The scheduler calls run_rollup itself, outside the job queues (a backlog must not
delay the figures that show the backlog); the task is kept so that an operator can
still submit a roll-up by hand (`tq submit tq.tasks.maintenance.rollup`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import tq
from tq import summaries

if TYPE_CHECKING:
    from tq.runtime import Runtime


def run_rollup(runtime: Runtime) -> dict[str, Any]:
    """One roll-up (skipped if another consumer's is still running) and one prune."""
    result = summaries.rollup(runtime)
    pruned = summaries.prune(runtime)
    return {"skipped": result.skipped, "minutes": len(result.minutes),
            "event_minutes": len(result.event_minutes), "seconds": round(result.seconds, 3),
            "pruned": pruned}


@tq.task()
def rollup() -> dict[str, Any]:
    return run_rollup(tq.current())

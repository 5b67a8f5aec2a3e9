"""Built-in upkeep, scheduled by `[history] rollup_every` (see tq.scheduler): roll the
history up into summaries, then prune what is past retention."""
from __future__ import annotations

import tq
from tq import summaries


@tq.task()
def rollup() -> dict:
    """One roll-up (skipped if another consumer's is still running) and one prune."""
    runtime = tq.current()
    result = summaries.rollup(runtime)
    pruned = summaries.prune(runtime)
    return {"skipped": result.skipped, "minutes": len(result.minutes),
            "event_minutes": len(result.event_minutes), "seconds": round(result.seconds, 3),
            "pruned": pruned}

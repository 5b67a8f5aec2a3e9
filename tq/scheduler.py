"""Periodic tasks: each tick enqueued once, whichever consumers run the scheduler.

Schedules come from `[periodic]` in the config and from `@tq.periodic` in code.
Every consumer runs this loop; for each tick the queue backend's claim_tick
lets exactly one consumer enqueue it (SET NX on Redis, INSERT OR IGNORE on
SQLite), so operators need no "scheduler on one machine only" rule.

The built-in roll-up (summaries and retention) is not a job: a claimed tick
runs it in a thread of the claiming consumer's scheduler, outside every job
queue, so no backlog in any queue can starve it (a roll-up still running when
the next tick comes skips that tick; summaries.rollup is itself exclusive).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tq import registry
from tq.schedule import Schedule, parse_schedule

if TYPE_CHECKING:
    from tq.runtime import Runtime

logger = logging.getLogger("tq.scheduler")


@dataclass
class PeriodicSpec:
    name: str
    schedule: Schedule
    task: str
    queue: str | None
    inline: Callable[[Runtime], Any] | None = None  # run in the scheduler, not enqueued


ROLLUP_NAME, ROLLUP_TASK = "tq-rollup", "tq.tasks.maintenance.rollup"


def periodic_specs(runtime: Runtime) -> list[PeriodicSpec]:
    specs = {name: PeriodicSpec(name, parse_schedule(schedule), task, queue)
             for name, (schedule, task, queue) in registry.PERIODIC_FROM_CODE.items()}
    # Built in: summaries and retention ([history] rollup_every), while its module is loaded.
    rollup_every = runtime.config.history.rollup_every
    if rollup_every != "off" and ROLLUP_TASK in registry.TASKS:
        from tq.tasks.maintenance import run_rollup
        specs[ROLLUP_NAME] = PeriodicSpec(ROLLUP_NAME, parse_schedule(rollup_every),
                                          ROLLUP_TASK, None, inline=run_rollup)
    for name, entry in runtime.config.periodic.items():
        specs[name] = PeriodicSpec(name, parse_schedule(entry.schedule), entry.task, entry.queue)
    return sorted(specs.values(), key=lambda spec: spec.name)


class PeriodicScheduler:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.specs = periodic_specs(runtime)
        self._last_tick: dict[str, int] = {}
        self._inline: dict[str, threading.Thread] = {}

    def run(self, stop: threading.Event, interval: float = 0.25) -> None:
        while not stop.wait(interval):
            self.run_due(time.time())

    def run_due(self, now: float) -> int:
        from tq.submit import SubmitError, submit

        enqueued = 0
        for spec in self.specs:
            tick = spec.schedule.tick_at(now)
            if tick is None or self._last_tick.get(spec.name) == tick:
                continue
            self._last_tick[spec.name] = tick
            ttl = int(max(spec.schedule.every or 60, 60) * 2)
            try:
                if spec.inline is not None and self._busy(spec.name):
                    continue  # the last run still goes on: this tick is skipped
                if not self.runtime.control.claim_tick(spec.name, tick, ttl):
                    continue
                if spec.inline is not None:
                    self._run_inline(spec.name, spec.inline, tick, now)
                    enqueued += 1
                    continue
                job_id = submit(spec.task, queue=spec.queue, runtime=self.runtime)
            except SubmitError as exc:
                logger.error("periodic %s: %s", spec.name, exc)
                continue
            except Exception as exc:
                logger.warning("periodic %s: tick not enqueued (%s)", spec.name, exc)
                self._last_tick.pop(spec.name, None)
                continue
            self.runtime.control.record_periodic(spec.name, {
                "tick": tick, "at": now, "job_id": job_id, "by": self.runtime.worker_name()})
            enqueued += 1
        return enqueued

    def _busy(self, name: str) -> bool:
        thread = self._inline.get(name)
        return thread is not None and thread.is_alive()

    def _run_inline(self, name: str, inline: Callable[[Runtime], Any], tick: int,
                    now: float) -> None:
        def run() -> None:
            try:
                inline(self.runtime)
                outcome = "succeeded"
            except Exception as exc:
                logger.warning("periodic %s failed: %s", name, exc)
                outcome = "failed"
            try:
                self.runtime.control.record_periodic(name, {
                    "tick": tick, "at": now, "job_id": f"{name}@{tick}", "outcome": outcome,
                    "by": self.runtime.worker_name()})
            except Exception as exc:
                logger.warning("periodic %s: run not recorded (%s)", name, exc)
        thread = threading.Thread(target=run, name=f"tq-{name}", daemon=True)
        self._inline[name] = thread
        thread.start()

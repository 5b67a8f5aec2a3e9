"""Periodic tasks: each tick enqueued once, whichever consumers run the scheduler.

Schedules come from `[periodic]` in the config and from `@tq.periodic` in code.
Every consumer runs this loop; for each tick the queue backend's claim_tick
lets exactly one consumer enqueue it (SET NX on Redis, INSERT OR IGNORE on
SQLite), so operators need no "scheduler on one machine only" rule.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from tq import registry
from tq.schedule import Schedule, parse_schedule

logger = logging.getLogger("tq.scheduler")


@dataclass
class PeriodicSpec:
    name: str
    schedule: Schedule
    task: str
    queue: str | None


ROLLUP_NAME, ROLLUP_TASK = "tq-rollup", "tq.tasks.maintenance.rollup"


def periodic_specs(runtime) -> list[PeriodicSpec]:
    specs = {name: PeriodicSpec(name, parse_schedule(schedule), task, queue)
             for name, (schedule, task, queue) in registry.PERIODIC_FROM_CODE.items()}
    # Built in: summaries and retention ([history] rollup_every), while its module is loaded.
    rollup_every = runtime.config.history["rollup_every"]
    if rollup_every != "off" and ROLLUP_TASK in registry.TASKS:
        specs[ROLLUP_NAME] = PeriodicSpec(ROLLUP_NAME, parse_schedule(rollup_every),
                                          ROLLUP_TASK, None)
    for name, entry in runtime.config.periodic.items():
        specs[name] = PeriodicSpec(name, parse_schedule(entry.schedule), entry.task, entry.queue)
    return sorted(specs.values(), key=lambda spec: spec.name)


class PeriodicScheduler:
    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self.specs = periodic_specs(runtime)
        self._last_tick: dict[str, int] = {}

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
                if not self.runtime.control.claim_tick(spec.name, tick, ttl):
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

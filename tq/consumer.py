"""`tq consumer`: Huey consumers for several queues in one supervised process.

One Huey Consumer serves one Huey instance, so this process starts one per
queue and keeps, beside them, four small loops of its own:
  - heartbeat: registers this consumer (host, pid, queues, workers) every few
    seconds, so `tq workers` and the console can see it;
  - recovery: puts back jobs claimed by consumers whose heartbeat stopped
    (the at-least-once guarantee; see recovery.py);
  - periodic: enqueues each periodic tick once across all consumers;
  - health: restarts a crashed worker or scheduler.
SIGINT/SIGTERM stop it gracefully: running jobs get `grace` seconds to finish,
what is still running then is put back on its queue; a second signal stops now.
"""
from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable

from huey.consumer import Consumer, ProcessEnvironment, Scheduler, Worker

from tq import recovery
from tq.queues import host_name
from tq.scheduler import PeriodicScheduler

logger = logging.getLogger("tq.consumer")
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int | None) -> None:
    """A forked child (worker or scheduler) must not outlive a consumer killed
    with SIGKILL: it would keep taking jobs under a dead consumer's name."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # the consumer died between the fork and the prctl


class TqProcessEnvironment(ProcessEnvironment):
    """Huey's process model, with children that die with the consumer and
    obey SIGTERM: Huey's children ignore SIGTERM unless a job is running, and
    a worker interrupted in a job goes on taking jobs. Here SIGTERM interrupts
    the running job (it is put back, as at a consumer stop) and the child
    exits once it is between jobs."""

    def init_child(self, process) -> None:
        _die_with_parent(process.huey.runtime.consumer_pid)
        process.tq_terminated = False

        def terminate(signum, frame):
            process.tq_terminated = True
            if process.huey._tasks_in_flight:
                raise KeyboardInterrupt  # Huey's own interruption of a running job

        signal.signal(self.graceful, signal.SIG_IGN)  # Ctrl-C: the consumer decides
        signal.signal(self.interrupt, terminate)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _stop_if_terminated(process) -> None:
    if getattr(process, "tq_terminated", False):
        raise KeyboardInterrupt  # ends Huey's loop in this child; shutdown() follows


class TqWorker(Worker):
    delay: float  # Huey's current back-off, set by Worker.__init__
    max_delay: float
    backoff: float

    def loop(self, now=None) -> None:
        _stop_if_terminated(self)
        super().loop(now)
        _stop_if_terminated(self)

    def sleep(self) -> None:
        """Idle: Huey's back-off, but waiting on the queue's wake-up list where
        the backend has one, so a new job is taken at once (see storage)."""
        wait = getattr(self.huey.storage, "wait_for_work", None)
        if wait is None or self.stop_flag.is_set():
            return super().sleep()
        delay: float = min(self.delay, self.max_delay)
        try:
            wait(delay)
        except Exception:  # backend unreachable: the next claim reports it
            self.stop_flag.wait(delay)
        self.delay = delay * self.backoff

    def initialize(self) -> None:
        self.huey.settle_with_claims()
        super().initialize()

    def shutdown(self) -> None:
        # Before the group puts back what is still in flight: a finished job
        # must not be put back and run again.
        self.huey.settle_finished()
        super().shutdown()
        if os.getpid() != self.huey.runtime.consumer_pid:
            self.huey.runtime.flush_history(timeout=10)


class TqScheduler(Scheduler):
    def loop(self, now=None) -> None:
        _stop_if_terminated(self)
        super().loop(now)


class TqConsumer(Consumer):
    worker_class = TqWorker
    scheduler_class = TqScheduler

    def get_environment(self, worker_type):
        if worker_type == "process":
            return TqProcessEnvironment(self._graceful_sig, self._interrupt_sig)
        return super().get_environment(worker_type)

    def _set_signal_handlers(self) -> None:
        pass  # the group handles signals for all its consumers


class ConsumerGroup:
    def __init__(self, runtime, queues: Iterable[str] | None = None, workers: int | None = None,
                 worker_type: str | None = None, periodic: bool = True,
                 services: Iterable[Callable[[threading.Event], None]] = ()) -> None:
        config = runtime.config.consumer
        self.runtime = runtime
        self.queues = list(queues or runtime.queues)
        for name in self.queues:
            runtime.queue(name)  # unknown queue -> one-line error before anything starts
        self.workers = workers or config.workers
        self.worker_type = worker_type or config.worker_type
        self.grace = config.grace
        self.heartbeat_every = config.heartbeat
        self.periodic = periodic
        self.services = list(services)
        self.name = f"{host_name()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.started = runtime.clock()
        self.stop_event = threading.Event()
        self.stopped = threading.Event()
        self._signals = 0
        self.consumers: list[TqConsumer] = []
        self._threads: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        runtime = self.runtime
        runtime.set_worker_name(self.name)
        runtime.consumer_pid = os.getpid()
        self.beat()  # registered before the first job is claimed
        for name in self.queues:
            consumer = TqConsumer(runtime.queues[name], workers=self.workers, periodic=False,
                                  initial_delay=0.05, backoff=1.3,
                                  max_delay=runtime.config.consumer.poll_max,
                                  worker_type=self.worker_type, health_check_interval=5,
                                  shutdown_timeout=self.grace)
            self.consumers.append(consumer)
        for consumer in self.consumers:
            consumer.start()
        # The history writer starts only once the process workers are forked: a
        # fork while its thread is inside SQLite copies SQLite's mutexes held, and
        # the child then waits forever in its first sqlite3.connect (seen as a
        # process worker that never claims a job on a busy machine).
        runtime.writer.attach_outbox(runtime.control, self.name)
        loops: list[tuple[str, Callable[[], None]]] = [
            ("tq-heartbeat", self._heartbeat_loop), ("tq-recovery", self._recovery_loop)]
        if self.periodic:
            scheduler = PeriodicScheduler(runtime)
            loops.append(("tq-periodic", lambda: scheduler.run(self.stop_event)))
        for service in self.services:
            loops.append((getattr(service, "__name__", "tq-service"),
                          functools.partial(service, self.stop_event)))
        for name, target in loops:
            thread = threading.Thread(target=self._guard(name, target), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info("consumer %s started: queues %s, %d %s worker(s) each", self.name,
                    ", ".join(self.queues), self.workers, self.worker_type)

    def _guard(self, name: str, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            while not self.stop_event.is_set():
                try:
                    target()
                    return
                except Exception:
                    logger.exception("%s failed; restarting it in 1s", name)
                    self.stop_event.wait(1.0)
        return run

    def install_signal_handlers(self) -> None:
        def handle(signum, frame):
            self._signals += 1
            if self._signals == 1:
                logger.info("received %s: stopping gracefully (up to %ss for running jobs)",
                            signal.Signals(signum).name, self.grace)
                self.stop_event.set()
            else:
                logger.warning("second signal: stopping now; running jobs are put back")
                self.grace = 0
                for consumer in self.consumers:
                    consumer.stop_flag.set()
                raise KeyboardInterrupt
        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGTERM, handle)

    def run(self) -> None:
        """Start, serve until a stop signal, then stop gracefully."""
        self.install_signal_handlers()
        self.start()
        try:
            next_health = time.monotonic() + 5
            while not self.stop_event.wait(0.2):
                if time.monotonic() >= next_health:
                    next_health = time.monotonic() + 5
                    for consumer in self.consumers:
                        consumer.check_worker_health()
        except KeyboardInterrupt:
            pass
        self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        for consumer in self.consumers:
            consumer.stop_flag.set()
            try:  # idle workers blocked on the wake-up list see the stop at once
                consumer.huey.storage.wake_workers()
            except Exception:
                pass
        deadline = time.monotonic() + self.grace
        try:
            for consumer in self.consumers:
                for _, process in consumer.worker_threads:
                    process.join(max(0.0, deadline - time.monotonic()))
                consumer.scheduler.join(max(0.0, deadline - time.monotonic()))
        except KeyboardInterrupt:
            pass
        busy = [consumer for consumer in self.consumers
                if any(consumer.environment.is_alive(p) for _, p in consumer.worker_threads)]
        for consumer in busy:
            consumer._interrupt_workers()
            consumer.huey.notify_interrupted_tasks()
        put_back = recovery.put_back_own(self.runtime, self.name)
        if put_back:
            logger.warning("%d running job(s) did not finish within %ss and were put back",
                           put_back, self.grace)
        for thread in self._threads:
            thread.join(timeout=2)
        try:
            recovery.forget_if_idle(self.runtime, self.name)
        except Exception:
            logger.warning("could not deregister consumer %s", self.name)
        if not self.runtime.flush_history(timeout=10):
            logger.warning("history database unreachable at shutdown: records kept in %s",
                           self.runtime.config.data_dir / "spill")
        self.runtime.close()
        self.stopped.set()
        logger.info("consumer %s stopped", self.name)

    # --- loops ----------------------------------------------------------------------
    def info(self) -> dict:
        return {"id": self.name, "host": host_name(), "pid": os.getpid(),
                "queues": self.queues, "workers": self.workers,
                "worker_type": self.worker_type, "started": self.started,
                # Read only by older tq versions, which judged liveness by it; the
                # backend stamps the beat that counts (see storage).
                "beat": self.runtime.clock()}

    def beat(self) -> None:
        self.runtime.control.heartbeat(self.name, self.info())

    def _heartbeat_loop(self) -> None:
        failing = False
        while not self.stop_event.wait(self.heartbeat_every):
            try:
                self.beat()
                if failing:
                    logger.warning("heartbeat: queue backend reachable again")
                failing = False
            except Exception as exc:
                if not failing:
                    logger.warning("heartbeat failed (%s); retrying", exc)
                failing = True

    def _recovery_loop(self) -> None:
        while not self.stop_event.wait(self.heartbeat_every):
            try:
                recovery.recover_lost(self.runtime)
            except Exception as exc:
                logger.debug("recovery pass failed: %s", exc)

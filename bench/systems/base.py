"""Base class for a system under test.

A system owns: a unique Redis prefix (queue name / key prefix), the code that
enqueues jobs from the harness process, and the worker subprocesses.  The
harness only talks to this interface, so adding a system = one module.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from bench import common

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class SkipSystem(Exception):
    """Raised by ``check()`` when a system cannot run here (import failed...)."""


@dataclass
class WorkerHandle:
    n: int
    procs: list = field(default_factory=list)
    spawned_at: float = 0.0
    ready_at: float = 0.0


class System:
    #: short id used on the command line and in tables
    name = "base"
    #: how "N workers" are realised, printed under the tables
    worker_note = ""
    #: whether this entry takes part in the enqueue / latency benchmarks
    #: (variants of the same library share one enqueue path)
    do_enqueue = True
    do_latency = False

    def __init__(self, run_id: str, redis_url: str, log_dir: str):
        self.redis_url = redis_url
        # Only [A-Za-z0-9_]: valid as a Huey name, an RQ job id, a Celery queue.
        self.prefix = f"{run_id}_{self.name.replace('-', '_')}"
        self.keys = common.Keys(self.prefix)
        self.r = common.redis_client(redis_url)
        self.log_dir = log_dir
        self._handles = []
        self._gated = {}

    # ------------------------------------------------------------ to override
    @classmethod
    def check(cls):
        """Raise SkipSystem(reason) if the system cannot run in this venv."""

    def setup(self):
        pass

    def enqueue_noop(self, n):
        raise NotImplementedError

    def enqueue_sleep(self, n, ms):
        raise NotImplementedError

    def enqueue_record_start(self, enqueued_at):
        raise NotImplementedError

    def enqueue_loop_rate(self, n):
        """Enqueue n no-op jobs one call at a time (no workers); jobs/s."""
        raise NotImplementedError

    def enqueue_batch_rate(self, n):
        """Optional: the library's batch enqueue API; None if it has none."""
        return None

    def worker_commands(self, n):
        """List of argv lists, one per worker process to start."""
        raise NotImplementedError

    def expected_ready(self, n):
        """How many worker_ready() signals n workers send; None = no signal,
        use warm-up jobs instead."""
        return n

    def queue_keys(self):
        """Redis keys that hold the pending jobs (renamed to close the gate)."""
        raise NotImplementedError

    def extra_cleanup(self):
        """Remove shared keys that do not carry the prefix (registries...)."""

    # ------------------------------------------------------------ processes
    def worker_env(self):
        env = dict(os.environ)
        env[common.ENV_PREFIX] = self.prefix
        env[common.ENV_REDIS_URL] = self.redis_url
        env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start_workers(self, n) -> WorkerHandle:
        self.r.delete(self.keys.ready)
        handle = WorkerHandle(n=n, spawned_at=time.time())
        env = self.worker_env()
        for i, argv in enumerate(self.worker_commands(n)):
            log = open(os.path.join(self.log_dir, f"{self.prefix}-w{n}-{i}.log"), "ab")
            p = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
            log.close()
            handle.procs.append(p)
        self._handles.append(handle)
        return handle

    def stop_workers(self, handle: WorkerHandle, grace=0.3):
        """SIGTERM each worker's own process group (children: forked work
        horses, prefork pool), wait, then SIGKILL what is left."""
        for p in handle.procs:
            _signal_group(p, signal.SIGTERM)
        deadline = time.time() + grace
        for p in handle.procs:
            try:
                p.wait(max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
        for p in handle.procs:
            _signal_group(p, signal.SIGKILL)
            try:
                p.wait(2)
            except subprocess.TimeoutExpired:
                pass
        if handle in self._handles:
            self._handles.remove(handle)

    def stop_all(self):
        for h in list(self._handles):
            self.stop_workers(h, grace=0.5)

    def _check_alive(self, handle):
        for p in handle.procs:
            if p.poll() is not None:
                raise RuntimeError(f"{self.name}: worker pid {p.pid} exited with {p.returncode}; "
                                   f"see logs in {self.log_dir}")

    def wait_ready(self, handle: WorkerHandle, timeout=60.0):
        """Block until the workers can take jobs.  Uses the workers' own
        ready signal when the system has one, else runs warm-up jobs."""
        expected = self.expected_ready(handle.n)
        deadline = time.time() + timeout
        if expected is not None:
            while int(self.r.get(self.keys.ready) or 0) < expected:
                self._check_alive(handle)
                if time.time() > deadline:
                    raise TimeoutError(f"{self.name}: workers not ready after {timeout}s")
                time.sleep(0.01)
        else:
            warm = 2 * handle.n
            self.arm(warm)
            self.enqueue_noop(warm)
            self.wait_done(warm, timeout, handle)
        handle.ready_at = time.time()

    # ------------------------------------------------ completion + the gate
    def arm(self, n):
        """Reset the completion counter; the n-th finished job signals done."""
        p = self.r.pipeline()
        p.delete(self.keys.done, self.keys.done_list, self.keys.lat)
        p.set(self.keys.target, n)
        p.execute()

    def wait_done(self, n, timeout, handle: WorkerHandle = None) -> float:
        """Wait until n jobs finished since arm(n); return the finish time the
        last job wrote (time.time() in the worker)."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                got = int(self.r.get(self.keys.done) or 0)
                raise TimeoutError(f"{self.name}: only {got}/{n} jobs done after {timeout:.0f}s")
            res = self.r.blpop([self.keys.done_list], timeout=min(1.0, left))
            if res:
                return float(res[1])
            if handle is not None:
                self._check_alive(handle)

    def close_gate(self):
        """Hide the pre-enqueued jobs: RENAME the queue keys to staging keys.
        Workers started now find an empty queue and just become ready."""
        self._gated = {}
        pipe = self.r.pipeline(transaction=True)
        for key in self.queue_keys():
            if self.r.exists(key):
                staged = self.keys.gate + (key.decode() if isinstance(key, bytes) else key)
                self._gated[key] = staged
                pipe.rename(key, staged)
        pipe.execute()
        if not self._gated:
            raise RuntimeError(f"{self.name}: no queue key found to gate; queue_keys()={self.queue_keys()}")

    def open_gate(self) -> float:
        """Atomically make all pre-enqueued jobs visible (one MULTI/EXEC of
        RENAMEs; a RENAME onto a key wakes BRPOP/BZPOPMIN waiters).  Returns
        the time taken just *before* sending it: the start of the clock."""
        pipe = self.r.pipeline(transaction=True)
        for key, staged in self._gated.items():
            pipe.rename(staged, key)
        t0 = time.time()
        pipe.execute()
        self._gated = {}
        return t0

    def pending(self):
        """Jobs still in the queue keys (for sanity checks)."""
        total = 0
        for key in self.queue_keys():
            t = self.r.type(key)
            if t == b"list":
                total += self.r.llen(key)
            elif t == b"zset":
                total += self.r.zcard(key)
        return total

    def purge(self):
        """Drop pending jobs and per-run state between runs."""
        keys = list(self.queue_keys()) + list(self._gated.values())
        if keys:
            self.r.delete(*keys)
        self._gated = {}

    def cleanup(self):
        self.stop_all()
        common.delete_pattern(self.r, f"*{self.prefix}*")
        self.extra_cleanup()


def _signal_group(p: subprocess.Popen, sig):
    if p.poll() is not None and sig != signal.SIGKILL:
        return
    try:
        os.killpg(p.pid, sig)  # the group this harness created for p
    except (ProcessLookupError, PermissionError):
        pass


def python_argv(*args):
    return [sys.executable, *args]

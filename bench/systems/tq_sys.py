"""tq slot: ALL tq-specific code of the harness (plus the task functions in
bench/tasks.py and the growth/memory phases in bench/tq_phases.py).

* Configuration: TQ_* variables (``tq_env()``): Redis queue backend under our
  prefix, one queue ``bench``, tasks from ``bench.tasks``, and job history in
  a MariaDB database of this run's own (``tqbench_<prefix>``, created in
  ``setup()``, dropped in ``cleanup()``), so no history leaks between runs.
  ``--tq-backend sqlite`` (``TQ.backend``) measures the embedded default instead:
  queues and history in SQLite files of the run's own data folder (enqueue only).
* Enqueue: ``tq.submit(task, *args, queue=..., runtime=...)`` for one job,
  ``tq.submit_many(specs, runtime=...)`` for a batch (500 per call), and the
  CLI ``tq submit --file`` for a JSON-lines file.
* Workers: ``tq consumer --queue bench -w N -k thread`` (N threads in one
  process) with the same TQ_* variables.
* The start gate is tq's own pause (``tq.ops.pause/resume``): the claim script
  checks the pause flag atomically, so no job is handed out before resume.
* Ready signal: the consumer registers itself in ``tq.<prefix>.workers``
  (``tq.queries.list_workers``) before its workers take jobs.
* Each throughput run starts with empty ``job``/``attempt`` tables and, after
  the last job's completion, waits until history holds all N jobs as
  succeeded: the "history lag" the consumer's batched writer adds.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

from bench.systems.base import SkipSystem, System

QUEUE = "bench"
MYSQL = dict(host="127.0.0.1", port=3306, user="root", password="")
CHUNK = 500
BENCH_TASKS = "('bench.tasks.noop', 'bench.tasks.sleep_ms', 'bench.tasks.record_start')"


def _tq_cli():
    """Path of the ``tq`` console script: next to this interpreter, else PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "tq")
    if os.access(here, os.X_OK):
        return here
    return shutil.which("tq")


def mysql(database=None):
    import pymysql
    return pymysql.connect(database=database, autocommit=True, **MYSQL)


class TQ(System):
    name = "tq"
    worker_note = "tq: N = `tq consumer --queue bench -w N -k thread` (N threads in one process, history to MariaDB)"
    do_latency = True
    backend = "redis"  # or "sqlite": the embedded default (harness --tq-backend)

    @classmethod
    def check(cls):
        try:
            import tq
            import tq.ops  # noqa: F401
            import tq.queries  # noqa: F401
        except Exception as e:  # ImportError, or a half-written package failing
            raise SkipSystem(f"`import tq` failed ({type(e).__name__}: {e}); "
                             f"install tq into this venv (pip install -e <tq checkout>) to bench it") from None
        if not _tq_cli():
            raise SkipSystem("tq is importable but its `tq` command is not installed")
        if cls.backend == "sqlite":
            return
        try:
            mysql().close()
        except Exception as e:
            raise SkipSystem(f"MariaDB at {MYSQL['host']}:{MYSQL['port']} unreachable: {e}") from None

    @property
    def database_name(self):
        return f"tqbench_{self.prefix}"[:64]

    def tq_env(self):
        if self.backend == "sqlite":  # queue.db and history.db in the data folder
            return {"TQ_QUEUES_BENCH": "0", "TQ_TASKS_MODULES": "bench.tasks",
                    "TQ_TQ_DATA_DIR": self.data_dir, "TQ_TQ_LOG_LEVEL": "warning"}
        return {
            "TQ_QUEUE_BACKEND": "redis",
            "TQ_QUEUE_URL": self.redis_url,
            "TQ_QUEUE_PREFIX": self.prefix,
            "TQ_HISTORY_URL": f"mysql://{MYSQL['user']}@{MYSQL['host']}:{MYSQL['port']}/{self.database_name}",
            "TQ_QUEUES_BENCH": "0",
            "TQ_TASKS_MODULES": "bench.tasks",
            "TQ_TQ_DATA_DIR": self.data_dir,
            "TQ_TQ_LOG_LEVEL": "warning",
        }

    def setup(self):
        from tq.config import load_config
        from tq.runtime import Runtime
        self.data_dir = tempfile.mkdtemp(prefix=f"{self.prefix}-data-")
        if self.backend == "redis":
            with mysql() as conn:
                conn.cursor().execute(f"CREATE DATABASE `{self.database_name}`")
            self._db_created = True
        config = load_config(env=self.tq_env())
        # The schema as a consumer or `tq up` leaves it (history_db no longer migrates).
        from tq import migrations
        from tq.models import open_database
        migrations.migrate(open_database(config.history.url))
        self.runtime = Runtime(config)
        self.runtime.history_db()  # schema now, not inside the first timed call
        self.storage = self.runtime.queue(QUEUE).storage
        self.sql = mysql(self.database_name) if self.backend == "redis" else None
        self.truncate = True  # growth sets False: keep the loaded history between runs

    # -- enqueue
    def _submit_many(self, task, args, n):
        import tq
        item = {"task": task, "args": list(args), "queue": QUEUE}
        for i in range(0, n, CHUNK):
            tq.submit_many([dict(item) for _ in range(min(CHUNK, n - i))], runtime=self.runtime)

    def enqueue_noop(self, n):
        self._submit_many("bench.tasks.noop", [], n)

    def enqueue_sleep(self, n, ms):
        self._submit_many("bench.tasks.sleep_ms", [ms], n)

    def enqueue_record_start(self, enqueued_at):
        import tq
        tq.submit("bench.tasks.record_start", enqueued_at, queue=QUEUE, runtime=self.runtime)

    def enqueue_loop_rate(self, n):
        import tq
        submit, runtime = tq.submit, self.runtime
        t0 = time.perf_counter()
        for _ in range(n):
            submit("bench.tasks.noop", queue=QUEUE, runtime=runtime)
        dt = time.perf_counter() - t0
        self.purge()
        return n / dt

    def enqueue_batch_rate(self, n):
        t0 = time.perf_counter()
        self.enqueue_noop(n)
        dt = time.perf_counter() - t0
        self.purge()
        return n / dt

    def submit_file_rate(self, n, tmp_dir):
        """`tq submit --file` of n lines; returns (jobs/s of the whole command,
        jobs/s net of process start-up, start-up s), where start-up is the wall
        time of the same command on a 1-line file."""
        import subprocess
        line = '{"task": "bench.tasks.noop", "queue": "bench"}\n'
        env = self.worker_env()
        times = {}
        for count in (1, n):
            path = os.path.join(tmp_dir, f"{self.prefix}-jobs-{count}.jsonl")
            with open(path, "w") as f:
                f.write(line * count)
            t0 = time.perf_counter()
            out = subprocess.run([_tq_cli(), "submit", "--file", path], env=env, capture_output=True,
                                 text=True)
            times[count] = time.perf_counter() - t0
            os.unlink(path)
            if out.returncode != 0 or f"submitted {count} job" not in out.stdout:
                raise RuntimeError(f"tq submit --file failed ({out.returncode}): {out.stdout} {out.stderr}")
            if self.storage.queue_size() != count:
                raise RuntimeError(f"tq submit --file: {self.storage.queue_size()} jobs queued, expected {count}")
            self.purge()
        return n / times[n], (n - 1) / (times[n] - times[1]), times[1]

    def http_rates(self, n, clients=(1, 8)):
        """HTTP submit and status rates through `tq serve` (its own process, no
        token: loopback), each from 1 and from 8 concurrent client threads (one
        keep-alive httpx client each). Returns {mode: jobs/s}: submit-1,
        submit-8 (POST /api/v1/jobs), status-1, status-8 (GET /api/v1/jobs/{id})."""
        import socket
        import subprocess
        import threading

        import httpx
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {k: v for k, v in self.worker_env().items() if k != "TQ_API_TOKENS"}
        server = subprocess.Popen([_tq_cli(), "serve", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}/api/v1"
        rates = {}
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("tq serve did not start")
                time.sleep(0.05)
            for count in clients:
                ids = []
                lock = threading.Lock()

                def submit(k, ids=ids, lock=lock):
                    with httpx.Client(base_url=base, timeout=60) as c:
                        mine = []
                        for _ in range(k):
                            r = c.post("/jobs", json={"task": "bench.tasks.noop", "queue": QUEUE})
                            if r.status_code != 201:
                                raise RuntimeError(f"POST /jobs: {r.status_code} {r.text[:200]}")
                            mine.append(r.json()["id"])
                        with lock:
                            ids.extend(mine)

                def status(mine):
                    with httpx.Client(base_url=base, timeout=60) as c:
                        for job_id in mine:
                            r = c.get(f"/jobs/{job_id}")
                            if r.status_code != 200:
                                raise RuntimeError(f"GET /jobs/id: {r.status_code}")

                per = n // count
                for mode, work, parts in (("submit", submit, [per] * count),
                                          ("status", status, None)):
                    if parts is None:
                        parts = [ids[i::count] for i in range(count)]
                    errors = []

                    def run(part, work=work, errors=errors):
                        try:
                            work(part)
                        except Exception as e:  # reported after the join
                            errors.append(e)
                    threads = [threading.Thread(target=run, args=(p,)) for p in parts]
                    t0 = time.perf_counter()
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                    dt = time.perf_counter() - t0
                    if errors:
                        raise errors[0]
                    rates[f"http-{mode}-{count}"] = per * count / dt
                self.purge()
        finally:
            server.terminate()
            server.wait(30)
        return rates

    # -- workers
    def worker_env(self):
        env = super().worker_env()
        env.update(self.tq_env())
        return env

    def worker_commands(self, n):
        return [[_tq_cli(), "consumer", "--queue", QUEUE, "-w", str(n), "-k", "thread", "--no-periodic"]]

    def wait_ready(self, handle, timeout=60.0):
        """Ready = the consumer process is registered in tq's workers hash
        (it registers before its workers take the first job)."""
        from tq.queries import list_workers
        pids = {p.pid for p in handle.procs}
        deadline = time.time() + timeout
        while not pids <= {w["pid"] for w in list_workers(self.runtime) if w["alive"]}:
            self._check_alive(handle)
            if time.time() > deadline:
                raise TimeoutError(f"{self.name}: consumer not registered after {timeout}s")
            time.sleep(0.01)
        handle.ready_at = time.time()

    def stop_workers(self, handle, grace=0.3):
        # A graceful stop flushes history and deregisters; give it the time.
        super().stop_workers(handle, grace=max(grace, 5.0))

    # -- the gate: tq's pause, checked atomically inside the claim
    def close_gate(self):
        from tq import ops
        if self.storage.queue_size() == 0:
            raise RuntimeError("tq: nothing queued to gate")
        ops.pause(self.runtime, QUEUE)
        self._gated = {"paused": QUEUE}

    def open_gate(self):
        from tq import ops
        t0 = time.time()
        ops.resume(self.runtime, QUEUE)
        self._gated = {}
        return t0

    def after_run(self, n, t_last):
        """Wait until history shows all n jobs succeeded; returns the lag (s)
        from the last job's completion, or None if not within 60 s."""
        deadline = time.time() + 60
        cur = self.sql.cursor()
        while time.time() < deadline:
            cur.execute(f"SELECT COUNT(*) FROM job WHERE task IN {BENCH_TASKS} AND state = 'succeeded'")
            if cur.fetchone()[0] >= n:
                return max(0.0, time.time() - t_last)
            time.sleep(0.01)
        return None

    def queue_keys(self):
        return [self.storage.queue_key]

    def purge(self):
        s = self.storage
        if self.backend == "sqlite":
            s.flush_queue()
            s.flush_schedule()
            with s.db(commit=True) as curs:  # as below: outboxes, id markers
                curs.execute("delete from tq_outbox")
                curs.execute("delete from tq_dedupe")
            self._gated = {}
            return
        ns = s.ns
        self.r.delete(s.queue_key, s.schedule_key, s.inflight_key, f"{ns}paused", f"{ns}workers")
        # Submitted jobs' queued records wait in outboxes until a consumer writes
        # them: left there, one phase's would be written during the next's clock.
        # The id markers go too: a batch file's lines get ids from its content, so
        # the next run's identical file would be refused as submitted before.
        for pattern in (f"{ns}outbox*", f"{ns}dedupe.*"):
            keys = list(self.r.scan_iter(pattern, count=1000))
            for start in range(0, len(keys), 10_000):
                self.r.delete(*keys[start:start + 10_000])
        self._gated = {}
        if getattr(self, "sql", None) is not None:
            cur = self.sql.cursor()
            if self.truncate:
                cur.execute("TRUNCATE TABLE job")
                cur.execute("TRUNCATE TABLE attempt")
            else:  # only the benchmark's own jobs, not the loaded history
                cur.execute(f"DELETE attempt FROM attempt JOIN job ON attempt.job_id = job.id "
                            f"WHERE job.task IN {BENCH_TASKS}")
                cur.execute(f"DELETE FROM job WHERE task IN {BENCH_TASKS}")

    def cleanup(self):
        super().cleanup()
        if getattr(self, "runtime", None) is not None:
            self.runtime.close()
        if getattr(self, "sql", None) is not None:
            self.sql.close()
        if getattr(self, "_db_created", False):
            with mysql() as conn:
                conn.cursor().execute(f"DROP DATABASE IF EXISTS `{self.database_name}`")
        if getattr(self, "data_dir", None):
            shutil.rmtree(self.data_dir, ignore_errors=True)

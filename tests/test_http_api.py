"""`tq serve`'s JSON API through a real uvicorn on a loopback port, on both backends.

One server and one consumer (on `default`) per backend serve the module. The
pagination jobs go to `reports`, which no consumer runs, so their order and
states hold still while they are paged through."""
from __future__ import annotations

import contextlib
import json
import threading
import uuid
from pathlib import Path

import httpx
import pytest
import uvicorn

from tq import queries
from tq.http.app import create_app
from tq.tokens import load

from conftest import BACKENDS, Backend, RunningConsumer, free_port, use_env, wait_for

MODULES = "tq.tasks.demo,tq.tasks.events,outcome_tasks"
READ = "r" * 20
OPERATE = "o" * 20
TOKENS = f"reader:{READ}:read,ops:{OPERATE}:operate"
N = 1000


class Served:
    def __init__(self, backend: Backend, runtime, url: str) -> None:
        self.backend, self.runtime, self.url = backend, runtime, url
        self.ops = httpx.Client(base_url=url + "/api/v1", timeout=60,
                                headers={"Authorization": f"Bearer {OPERATE}"})
        self.read = httpx.Client(base_url=url + "/api/v1", timeout=60,
                                 headers={"Authorization": f"Bearer {READ}"})
        self.anon = httpx.Client(base_url=url + "/api/v1", timeout=60)


@pytest.fixture(scope="module", params=[
    pytest.param(kind, marks=[pytest.mark.redis, pytest.mark.mysql] if kind == "redis" else [])
    for kind in BACKENDS])
def served(request, tmp_path_factory):
    backend = Backend(request.param, tmp_path_factory.mktemp(f"http-{request.param}"))
    backend.env.update(TQ_TASKS_MODULES=MODULES, TQ_HISTORY_FLUSH_INTERVAL="0.05")
    runtime = backend.runtime()
    consumer = RunningConsumer(runtime, workers=2, queues=["default"])
    app = create_app(backend.runtime(), load({"TQ_API_TOKENS": TOKENS}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=30, message="uvicorn to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Served(backend, runtime, f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(30)
    consumer.stop()
    backend.cleanup()


def test_submit_run_status_result(served):
    answer = served.ops.post("/jobs", json={"task": "outcome_tasks.give", "args": [{"a": 1}]})
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["id"]
    result = served.read.get(f"/jobs/{job_id}/result", params={"wait": 60})
    assert result.status_code == 200, result.text
    assert result.json()["state"] == "succeeded"
    assert result.json()["result"] == {"a": 1}
    detail = served.read.get(f"/jobs/{job_id}").json()
    assert detail["state"] == "succeeded" and detail["attempt_log"]


def test_failed_job_shows_its_error(served):
    answer = served.ops.post("/jobs", json={"task": "outcome_tasks.fail_with_retries",
                                            "kwargs": {"message": "<b>broken</b>"}})
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["id"]
    result = served.read.get(f"/jobs/{job_id}/result", params={"wait": 60}).json()
    assert result["state"] == "failed" and "<b>broken</b>" in result["error"]


def test_unknown_job_is_404(served):
    for path in ("/jobs/nope", "/jobs/nope/result"):
        answer = served.read.get(path)
        assert answer.status_code == 404 and set(answer.json()) == {"error"}
    assert served.ops.post("/jobs/nope/requeue").status_code == 404


def _all_pages(served, sort: str, order: str, limit: int = 170) -> list[dict]:
    seen: list[dict] = []
    cursor = None
    while True:
        params = {"queue": "reports", "sort": sort, "order": order, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = served.read.get("/jobs", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["total"] == N
        seen += body["jobs"]
        cursor = body["next"]
        if not cursor:
            return seen


@pytest.fixture(scope="module")
def thousand(served):
    batch = [{"task": "tq.tasks.demo.echo", "args": [i], "queue": "reports",
              "priority": i % 7} for i in range(N)]
    answer = served.ops.post("/jobs/batch", json=batch)
    assert answer.status_code == 200, answer.text
    assert answer.json()["submitted"] == N and not answer.json()["bad"]
    # History gets submitted jobs through the consumer's writer: wait until it has them.
    wait_for(lambda: served.read.get("/jobs", params={"queue": "reports", "limit": 1}
                                     ).json()["total"] == N, timeout=60, message="1,000 jobs")
    return served


@pytest.mark.parametrize("sort", queries.SORTABLE)
def test_pagination_sees_every_job_once_in_order(thousand, sort):
    for order in ("asc", "desc"):
        rows = _all_pages(thousand, sort, order)
        ids = [row["id"] for row in rows]
        assert len(ids) == N and len(set(ids)) == N
        keys = [(row[sort] is None, row[sort], row["id"]) for row in rows]
        if order == "asc":
            assert keys == sorted(keys, key=lambda k: (k[0], k[1] or 0 if k[0] else k[1], k[2]))
        else:
            present = [k for k in keys if not k[0]]
            assert present == sorted(present, reverse=True)


def test_forged_cursor_is_400(thousand):
    for cursor in ("zz!", "eyJ4IjoxfQ", "WyJpZCIsImFzYyIsbnVsbCwxXQ"):
        answer = thousand.read.get("/jobs", params={"cursor": cursor, "sort": "id"})
        assert answer.status_code == 400, answer.text
        assert set(answer.json()) == {"error"}


def test_bulk_dry_run_counts_exactly_and_changes_nothing(thousand):
    body = {"where": "queue:reports task:tq.tasks.demo.echo", "dry_run": True}
    preview = thousand.ops.post("/jobs/cancel", json=body)
    assert preview.status_code == 200, preview.text
    count = preview.json()["count"]
    assert count == N
    assert queries.count_jobs(thousand.runtime) >= N  # nothing changed by the dry run
    assert thousand.read.get("/jobs", params={"queue": "reports", "state": "canceled"}
                             ).json()["total"] == 0


def test_bulk_cancel_and_requeue_touch_exactly_what_they_select(served):
    # Jobs of their own (a task no other test here schedules), on a queue no consumer runs.
    where = "queue:events task:tq.tasks.demo.sleep"
    made = served.ops.post("/jobs/batch", json=[
        {"task": "tq.tasks.demo.sleep", "queue": "events", "delay": 3600}] * 5)
    assert made.status_code in (200, 201), made.text
    wait_for(lambda: served.read.get("/jobs", params={"where": where}).json()["total"] == 5,
             timeout=60, message="the 5 jobs in history")
    canceled = served.ops.post("/jobs/cancel", json={"where": where})
    assert canceled.status_code == 200 and canceled.json()["count"] == 5, canceled.text
    listed = served.read.get("/jobs", params={"where": where, "state": "canceled"}).json()
    assert listed["total"] == 5
    preview = served.ops.post("/jobs/requeue", json={"where": where, "state": "canceled",
                                                     "dry_run": True}).json()
    assert preview["count"] == 5
    requeued = served.ops.post("/jobs/requeue", json={"where": where, "state": "canceled"})
    assert requeued.status_code == 200 and requeued.json()["count"] == 5, requeued.text
    wait_for(lambda: served.read.get("/jobs", params={"where": where, "state": "queued"}
                                     ).json()["total"] == 5, timeout=60,
             message="5 copies queued")
    again = served.ops.post("/jobs/requeue", json={"where": where, "state": "canceled"})
    assert again.json()["count"] == 0, again.text  # each original is requeued once
    entries = served.read.get("/audit").json()["entries"]
    assert any(entry["user"] == "api:ops" and entry["action"] == "cancel"
               and entry["count"] == 5 for entry in entries)


def test_actions_by_id(served):
    job_id = served.ops.post("/jobs", json={"task": "tq.tasks.demo.echo", "queue": "events",
                                            "delay": 3600}).json()["id"]
    run_now = served.ops.post(f"/jobs/{job_id}/run-now")
    assert run_now.status_code == 200, run_now.text
    cancel = served.ops.post(f"/jobs/{job_id}/cancel")
    assert cancel.status_code == 200 and cancel.json()["count"] == 1, cancel.text
    requeue = served.ops.post(f"/jobs/{job_id}/requeue")
    assert requeue.status_code == 200 and requeue.json()["count"] == 1, requeue.text
    entries = served.read.get("/audit").json()["entries"]
    assert any(entry["user"] == "api:ops" and entry["action"] == "requeue" for entry in entries)


def test_pause_resume_and_reads(served):
    assert served.ops.post("/queues/events/pause").status_code == 200
    queues = served.read.get("/queues").json()
    assert "events" in json.dumps(queues)
    assert served.ops.post("/queues/events/resume").status_code == 200
    assert served.ops.post("/queues/nosuch/pause").status_code == 404
    for path in ("/workers", "/periodic", "/stats", "/audit"):
        answer = served.read.get(path)
        assert answer.status_code == 200, (path, answer.text)
    assert served.anon.get("/healthz").status_code == 200
    metrics = served.anon.get("/metrics")
    assert metrics.status_code == 200 and "tq_" in metrics.text
    assert httpx.get(served.url + "/docs").status_code == 200


AUTH = [("anon", "get", "/jobs", 401), ("wrong", "get", "/jobs", 401),
        ("read", "post", "/jobs", 403), ("read", "post", "/jobs/x/cancel", 403),
        ("read", "post", "/queues/default/pause", 403), ("anon", "post", "/jobs/batch", 401),
        ("read", "get", "/jobs", 200)]


@pytest.mark.parametrize("who,method,path,status", AUTH)
def test_auth(served, who, method, path, status):
    client = {"anon": served.anon, "read": served.read, "wrong": httpx.Client(
        base_url=served.url + "/api/v1", headers={"Authorization": "Bearer " + "x" * 20})}[who]
    kwargs = {"json": {"task": "tq.tasks.demo.echo"}} if method == "post" else {}
    answer = getattr(client, method)(path, **kwargs)
    assert answer.status_code == status, answer.text
    if status >= 400:
        assert set(answer.json()) == {"error"}


DEEP = "[" * 5000 + "]" * 5000
HOSTILE = [
    ("bad json", b"{", 400),
    ("not an object", b"[1]", 400),
    ("unknown field", json.dumps({"task": "tq.tasks.demo.echo", "colour": 1}).encode(), 422),
    ("wrong type", json.dumps({"task": "tq.tasks.demo.echo", "priority": "x"}).encode(), 422),
    ("args not a list", json.dumps({"task": "tq.tasks.demo.echo", "args": 3}).encode(), 422),
    ("huge", json.dumps({"task": "tq.tasks.demo.echo", "args": ["x" * (10 << 20)]}).encode(),
     413),
    ("nan", b'{"task": "tq.tasks.demo.echo", "args": [NaN]}', 400),
    ("infinity", b'{"task": "tq.tasks.demo.echo", "args": [Infinity]}', 400),
    ("duplicate key", b'{"task": "tq.tasks.demo.echo", "task": "x"}', 400),
    ("deep", ('{"task": "tq.tasks.demo.echo", "args": ' + DEEP + "}").encode(), 400),
    ("bad utf-8", b'{"task": "tq.tasks.demo.\xff"}', 400),
    ("markup task", json.dumps({"task": "[bold]x[/]\x1b[31m<script>"}).encode(), 422),
    ("empty", b"", 400),
]


@pytest.mark.parametrize("case,body,status", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_bodies_enqueue_nothing(served, case, body, status):
    before = queries.count_jobs(served.runtime)
    depths = queries.queue_depths(served.runtime, "default")
    answer = served.ops.post("/jobs", content=body,
                             headers={"Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    assert set(answer.json()) == {"error"} and "\n" not in answer.json()["error"]
    assert "Traceback" not in answer.text and "Error:" not in answer.json()["error"][:6]
    queries.catch_up(served.runtime)
    assert queries.count_jobs(served.runtime) == before
    assert queries.queue_depths(served.runtime, "default") == depths


def test_batch_reports_bad_items_by_position(served):
    token = uuid.uuid4().hex
    lines = [json.dumps({"task": "tq.tasks.demo.echo", "args": [token], "queue": "events"}),
             "{", json.dumps({"task": "no.such.task"}), '{"task": "x", "args": [NaN]}']
    answer = served.ops.post("/jobs/batch", content="\n".join(lines).encode(),
                             headers={"Content-Type": "application/x-ndjson"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["submitted"] == 1
    assert [bad["position"] for bad in body["bad"]] == [2, 3, 4]


def test_serve_without_tokens_refuses_other_than_loopback(tq_env, monkeypatch):
    import subprocess
    import sys
    monkeypatch.delenv("TQ_API_TOKENS", raising=False)
    done = subprocess.run([sys.executable, "-m", "tq.cli", "serve", "--bind", "0.0.0.0",
                           "--port", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "loopback only" in done.stderr


@contextlib.contextmanager
def tq_serve(cwd):
    """`tq serve` in its own process with this process's TQ_* settings, run from
    `cwd`; yields a client of its API once it answers."""
    import subprocess
    import sys
    port = free_port()
    log = open(Path(cwd) / "serve.log", "w+")  # a file, not a pipe nobody reads
    server = subprocess.Popen([sys.executable, "-m", "tq.cli", "serve", "--port", str(port)],
                              cwd=cwd, stdout=subprocess.DEVNULL, stderr=log)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30)

        def up() -> bool:
            assert server.poll() is None, Path(cwd, "serve.log").read_text()
            try:
                return client.get("/healthz").status_code in (200, 503)
            except httpx.TransportError:
                return False
        wait_for(up, timeout=60, message="tq serve to answer")
        yield client
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def test_serve_takes_its_body_limit_from_http_max_body(tq_env, monkeypatch, tmp_path):
    """`[http] max_body` (here from TQ_HTTP_MAX_BODY) is the limit `tq serve` enforces."""
    monkeypatch.delenv("TQ_API_TOKENS", raising=False)
    monkeypatch.setenv("TQ_HTTP_MAX_BODY", "2048")
    with tq_serve(tmp_path) as client:
        spec = {"task": "tq.tasks.demo.echo", "args": ["x" * 3000]}
        answer = client.post("/jobs", json=spec)
        assert answer.status_code == 413, answer.text
        assert set(answer.json()) == {"error"}


def test_serve_in_a_fresh_directory_answers_at_once(monkeypatch, tmp_path):
    """The embedded default with nothing run before: `tq serve` brings the history
    schema up at start, as a consumer does, so history reads answer (they were 503
    'run tq migrate' until some consumer had started) and a job goes in."""
    use_env(monkeypatch, {})
    with tq_serve(tmp_path) as client:
        assert client.get("/healthz").json() == {"ok": True}
        listed = client.get("/jobs")
        assert listed.status_code == 200 and listed.json()["jobs"] == [], listed.text
        job = client.post("/jobs", json={"task": "tq.tasks.demo.echo", "args": [1]})
        assert job.status_code == 201, job.text
        assert client.get("/queues").json()["queues"]["default"]["queued"] == 1


@pytest.mark.redis
@pytest.mark.mysql
def test_serve_started_before_its_database_migrates_it_when_it_comes(monkeypatch, tmp_path):
    """`tq serve` started while its history database does not exist yet serves the
    queue half, then makes the schema on the first read that reaches the database
    (it stayed 503 'run tq migrate' for good)."""
    backend = Backend("redis", tmp_path)
    late = f"tq_late_{uuid.uuid4().hex[:10]}"
    use_env(monkeypatch, {**backend.env, "TQ_HISTORY_URL": backend.env["TQ_HISTORY_URL"]
                          .rsplit("/", 1)[0] + "/" + late})
    try:
        with tq_serve(tmp_path) as client:
            assert client.get("/jobs").status_code == 503
            assert client.get("/queues").json()["queues"]["default"]["queued"] == 0
            import pymysql
            with pymysql.connect(host="127.0.0.1", user="root", autocommit=True) as conn:
                conn.cursor().execute(f"CREATE DATABASE `{late}`")
            wait_for(lambda: client.get("/jobs").status_code == 200, timeout=60,
                     message="history reads to answer once the database exists")
            assert client.get("/healthz").json() == {"ok": True}
    finally:
        import pymysql
        with pymysql.connect(host="127.0.0.1", user="root", autocommit=True) as conn:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{late}`")
        backend.cleanup()


@pytest.mark.parametrize("verb", ["serve", "web"])
def test_a_port_in_use_is_one_line_and_exit_2(verb, tq_env, monkeypatch):
    import socket
    import subprocess
    import sys
    monkeypatch.delenv("TQ_API_TOKENS", raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "tq.cli", verb, "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1].startswith(f"tq: error: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in done.stderr and "ERROR:" not in done.stderr


def test_serve_answers_keep_alive_requests_without_nagle():
    """A connection accepted on `tq serve`'s listener has TCP_NODELAY: uvicorn writes a
    response's head and body apart, and with Nagle on a keep-alive client's next
    request waited for the delayed ACK (about 40 ms a request). asyncio sets it only
    on sockets created with proto IPPROTO_TCP, which the listener used to lack."""
    import argparse
    import asyncio
    import socket

    from tq.cli.serve import _listen

    async def accepted_nodelay() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        listener = _listen(argparse.Namespace(bind="127.0.0.1", port=0))
        server = await asyncio.start_server(handle, sock=listener)
        async with server:
            port = listener.getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            value = await asyncio.wait_for(seen, 30)
            writer.close()
            return value

    assert asyncio.run(accepted_nodelay()) != 0

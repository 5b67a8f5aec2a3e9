"""`tq status` and the HTTP API with one server down: what the other says still shows.

Queue depths and pause come from the queue backend, outcomes from history; with
one of them unreachable (or history without tq's schema) `tq status` prints the
other's half, `?` for what it cannot know, one line naming what is down, and
exits 1; `GET /queues` answers 200 with the same halves; a route that needs the
missing server answers 503 with that line. Both down: one line, exit 2.
Never a guessed 0, a traceback or a password."""
from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from urllib.parse import quote

import httpx
import pytest
import uvicorn

import tq
from tq import queries
from tq.cli import main
from tq.http.app import create_app
from tq.tokens import load

from conftest import MYSQL_HOST, Backend, free_port, use_env, wait_for

PASSWORD = "s3cret-[b]pw\x1b[31m"  # markup and an escape sequence: never printed

# (name, the settings that break one server, which half is missing)
BROKEN = [
    ("history-refused", lambda port: {"TQ_HISTORY_URL": f"mysql://root@{MYSQL_HOST}:{port}/tq",
                                      "TQ_HISTORY_PASSWORD": PASSWORD}, "history"),
    ("history-no-schema", lambda port: {"TQ_HISTORY_URL": "sqlite:///{data}/empty.db"}, "history"),
    ("queue-refused", lambda port: {"TQ_QUEUE_URL": f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/0"},
     "queue"),
]
CASES = [pytest.param(kind, name, broken, down, id=f"{kind}-{name}",
                      marks=[pytest.mark.redis, pytest.mark.mysql] if kind == "redis" else [])
         for kind in ("embedded", "redis") for name, broken, down in BROKEN
         if not (name == "queue-refused" and kind == "embedded")]  # SQLite has no server


@pytest.fixture
def halves(request, tmp_path, monkeypatch):
    kind, name, broken, down = request.param
    backend = Backend(kind, tmp_path)
    runtime = backend.runtime()
    ids = [tq.submit("tq.tasks.demo.echo", args=[n], runtime=runtime) for n in range(2)]
    queries.catch_up(runtime)  # history holds them, queued
    settings = {key: value.format(data=tmp_path) for key, value in
                broken(free_port()).items()}
    settings["TQ_QUEUE_CONNECT_TIMEOUT"] = "2"
    use_env(monkeypatch, {**backend.env, **settings})
    yield backend, backend.runtime(**settings), ids, down
    backend.cleanup()


@pytest.mark.parametrize("halves", [
    pytest.param(p.values, id=p.id, marks=p.marks) for p in CASES], indirect=True)
def test_status_shows_the_half_that_answers(halves, capsys):
    _, runtime, _, down = halves
    data = queries.status(runtime)
    entry = data["queues"]["default"]
    if down == "history":
        assert entry["queued"] == 2 and entry["paused"] is False  # the queue backend's truth
        assert entry["failed"] is None and entry["history"] is None  # unknown, not 0
        assert "queue_unreachable" not in data
        line = data["history_unreachable"]
        assert line.startswith("history database") and ("unreachable" in line
                                                        or "tq migrate" in line)
    else:
        assert entry["queued"] is None and entry["paused"] is None and data["workers_alive"] is None
        assert entry["history"]["queued"] == 2 and entry["failed"] == 0  # history's truth
        assert "history_unreachable" not in data
        assert data["queue_unreachable"].startswith("queue backend")

    code = main(["status"])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert err == "" and "Traceback" not in out and PASSWORD not in out
    default = next(line for line in out.splitlines() if line.strip().startswith("default"))
    cells = default.split()
    if down == "history":
        assert cells[1:4] == ["running", "2", "0"] and cells[5] == "?"
    else:
        assert cells[1:3] == ["?", "?"] and cells[5] == "0"
    assert ("history database" if down == "history" else "queue backend") in out

    code = main(["status", "--json"])
    out, _ = capsys.readouterr()
    assert code == 1 and f"{down}_unreachable" in json.loads(out)


@contextlib.contextmanager
def api_of(runtime):
    """`runtime`'s HTTP API (no tokens) on a real uvicorn on a loopback port, in a
    thread; yields its base URL. log_config=None: uvicorn's records reach caplog,
    so a test sees any traceback it logs."""
    app = create_app(runtime, load({}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None,
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=30, message="uvicorn to start")
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/api/v1"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.mark.parametrize("halves", [
    pytest.param(p.values, id=p.id, marks=p.marks) for p in CASES], indirect=True)
def test_http_answers_the_half_that_answers_and_503_for_the_rest(halves, caplog):
    _, runtime, ids, down = halves
    with api_of(runtime) as url:
        with caplog.at_level(logging.INFO), httpx.Client(base_url=url, timeout=60) as client:
            queues = client.get("/queues")
            assert queues.status_code == 200, queues.text
            assert f"{down}_unreachable" in queues.json()
            # A route that needs the missing server: 503 and its one line.
            needs = client.get("/jobs") if down == "history" else client.post(
                "/jobs", json={"task": "tq.tasks.demo.echo"})
            assert needs.status_code == 503, needs.text
            assert set(needs.json()) == {"error"}
            line = needs.json()["error"]
            assert "\n" not in line and PASSWORD not in line
            assert not re.search(r"\w+(Error|Exception)\b", line), line  # no class names
            # An action the missing server stopped is not a success: 503, its line.
            acted = client.post("/jobs/requeue", json={"state": "failed"}) if down == "history" \
                else client.post(f"/jobs/{ids[0]}/cancel")
            assert acted.status_code == 503, acted.text
            assert acted.json()["outcome"] == "failed" and "\n" not in acted.json()["error"]
            assert PASSWORD not in acted.text
            health = client.get("/healthz")
            assert health.status_code == 503 and down in health.json()["error"]
            # The same keep-alive connection still answers after the 503s.
            assert client.get("/workers").status_code in (200, 503)
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
        assert PASSWORD not in caplog.text


@pytest.mark.redis
@pytest.mark.mysql
def test_both_down_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    use_env(monkeypatch, {"TQ_TQ_DATA_DIR": str(tmp_path), "TQ_QUEUE_BACKEND": "redis",
                          "TQ_QUEUE_URL": f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{free_port()}/0",
                          "TQ_QUEUE_CONNECT_TIMEOUT": "2",
                          "TQ_HISTORY_URL": f"mysql://root@{MYSQL_HOST}:{free_port()}/tq",
                          "TQ_HISTORY_PASSWORD": PASSWORD})
    code = main(["status"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "queue backend" in err and "history database" in err
    assert PASSWORD not in err and "Traceback" not in err


def _exceptions():
    import sqlite3

    import redis
    from redis import exceptions as e
    return [  # (exception, an outage?)
        (redis.ConnectionError("Error 111 connecting"), True),
        (redis.TimeoutError("Timeout reading from socket"), True),
        (e.BusyLoadingError("LOADING Redis is loading the dataset"), True),
        (e.ReadOnlyError("READONLY You can't write against a read only replica"), True),
        (e.OutOfMemoryError("OOM command not allowed"), True),
        (e.AuthenticationError("invalid password"), True),
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.DatabaseError("file is not a database"), True),
        (OSError(28, "No space left on device"), True),
        (e.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
         False),
        (e.DataError("Invalid input of type: 'dict'"), False),
        (e.NoScriptError("NOSCRIPT"), False),
        (sqlite3.IntegrityError("UNIQUE constraint failed"), False),
        (sqlite3.ProgrammingError("Incorrect number of bindings"), False),
        (ValueError("a bug"), False),
    ]


@pytest.mark.parametrize("exc, outage", _exceptions(), ids=lambda v: type(v).__name__
                         if isinstance(v, BaseException) else str(v))
def test_only_errors_of_asking_count_as_a_queue_backend_outage(exc, outage):
    """What counts as 'unreachable' (a batch stops as an outage, status shows the
    other half, HTTP answers 503): errors of asking, not a refusal of the command."""
    assert queries.queue_unreachable(exc) is outage


@pytest.mark.redis
@pytest.mark.mysql
def test_a_forged_queue_key_is_not_called_an_outage(tmp_path, monkeypatch, capsys):
    """A queue key of the wrong type (forged, or another program's) makes Redis answer
    WRONGTYPE: status and the API say that, never 'queue backend unreachable'
    (and not 503, which tells a client to retry later)."""
    import redis as redis_lib

    from conftest import REDIS_URL
    backend = Backend("redis", tmp_path)
    try:
        runtime = backend.runtime()
        client = redis_lib.Redis.from_url(REDIS_URL)
        client.set(runtime.queue("default").storage.queue_key, "forged")
        use_env(monkeypatch, backend.env)
        code = main(["status"])
        out, err = capsys.readouterr()
        assert code == 1 and "WRONGTYPE" in err and "unreachable" not in out + err, out + err
        assert err.count("\n") == 1 and "Traceback" not in err
        with api_of(backend.runtime()) as url:
            answer = httpx.get(f"{url}/queues", timeout=60)
            assert answer.status_code == 500 and set(answer.json()) == {"error"}, answer.text
        client.close()
    finally:
        backend.cleanup()


@pytest.mark.parametrize("halves", [
    pytest.param(p.values, id=p.id, marks=p.marks) for p in CASES], indirect=True)
def test_history_reads_answer_without_the_queue_backend(halves, capsys):
    """tq jobs and tq show read history only: with the queue backend down they list
    what history holds and say in one line on stderr what they may miss (they
    refused, exit 2, before reading); with history down they are one line, exit 2."""
    _, _, ids, down = halves
    for argv in (["jobs"], ["show", ids[0]]):
        code = main(argv)
        out, err = capsys.readouterr()
        if down == "queue":
            assert code == 0, err
            assert ids[0] in out and err.count("\n") == 1 and "may be missing" in err
        else:
            assert code == 2 and out == "" and err.count("\n") == 1
        assert PASSWORD not in out + err and "Traceback" not in err


@pytest.mark.redis
@pytest.mark.mysql
def test_the_console_opens_with_the_queue_backend_down(tmp_path):
    """`tq tui` with Redis down opens (it refused, exit 2, though its Jobs screen
    lists history then), shows the queue backend's banner without a class name,
    and lists history's jobs on the Jobs screen."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time as clock

    backend = Backend("redis", tmp_path)
    try:
        runtime = backend.runtime()
        job = tq.submit("tq.tasks.demo.echo", args=["seen-in-history"], runtime=runtime)
        queries.catch_up(runtime)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TQ_")}
        env.update(backend.env, TQ_QUEUE_URL=f"redis://127.0.0.1:{free_port()}/0",
                   TERM="xterm-256color", COLUMNS="160", LINES="40")
        leader, follower = pty.openpty()
        console = subprocess.Popen([sys.executable, "-m", "tq.cli", "tui"], env=env,
                                   stdin=follower, stdout=follower, stderr=follower,
                                   cwd=tmp_path, close_fds=True)
        os.close(follower)
        seen = b""

        def read() -> None:
            nonlocal seen
            while select.select([leader], [], [], 0.2)[0]:
                try:
                    seen += os.read(leader, 65536)
                except OSError:  # the console exited: the pty is closed
                    break

        def screen_shows(*texts: bytes) -> bool:
            read()
            assert console.poll() is None, seen.decode(errors="replace")[-2000:]
            plain = seen.replace(b"\x1b", b"")
            return all(text in plain or text in seen for text in texts)

        try:
            wait_for(lambda: screen_shows(b"queue backend", b"unreachable"), timeout=60,
                     message="the console with its queue backend banner")
            assert b"ConnectionError" not in seen
            os.write(leader, b"2")  # the Jobs screen: history's rows
            wait_for(lambda: screen_shows(job[:8].encode()), timeout=60,
                     message="the Jobs screen to list the job from history")
            os.write(leader, b"q")
            deadline = clock.monotonic() + 30
            while console.poll() is None and clock.monotonic() < deadline:
                read()  # so the console never blocks writing its last frames
            assert console.poll() == 0
        finally:
            if console.poll() is None:
                console.kill()
            console.wait(30)
            os.close(leader)
    finally:
        backend.cleanup()


@pytest.mark.redis
@pytest.mark.mysql
def test_api_reads_wait_out_a_silent_redis_once(mute_server, tmp_path):
    """History reads over HTTP with a Redis that accepts and never answers: the
    first waits connect_timeout in its catch-up, the next ones answer at once from
    history (each waited the timeout again: a listing every 4 s)."""
    import time as clock

    backend = Backend("redis", tmp_path)
    try:
        runtime = backend.runtime(TQ_QUEUE_URL=f"redis://127.0.0.1:{mute_server}/0",
                                  TQ_QUEUE_CONNECT_TIMEOUT="4")
        with api_of(runtime) as url, httpx.Client(base_url=url, timeout=60) as api:
            started = clock.monotonic()
            for _ in range(3):
                assert api.get("/jobs").status_code == 200
            elapsed = clock.monotonic() - started
        assert elapsed < 7, elapsed  # one wait of 4 s; three were 12 s
    finally:
        backend.cleanup()

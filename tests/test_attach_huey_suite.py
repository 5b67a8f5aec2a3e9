"""Huey's own tests pass with every Huey attached to tq (issue 17, item 5).

What a user relies on: adding `tq.attach(huey)` to an app changes nothing of
Huey's behaviour. Huey ships its test suite in the wheel; tests/huey_suite_attached.py
runs it with `Huey.__init__` wrapped to attach each instance, tq's history on the
embedded backend of this test, and this test checks that it passed and that tq
did record the jobs (so the listener was really there, not silently detached).
Huey's Redis storage tests use Huey's own key names on the shared Redis and
delete only their own keys (storage.flush_all), never the database.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tq.queries import list_jobs

from conftest import Backend

TESTS_DIR = Path(__file__).parent


@pytest.mark.parametrize("durable", [False, True], ids=["attached", "durable"])
def test_hueys_own_suite_passes_attached(tmp_path, durable):
    """durable: every Redis Huey attached with durable=True (tq's claims around
    Huey's dequeue and execute)."""
    backend = Backend("embedded", tmp_path)
    try:
        env = {key: value for key, value in os.environ.items() if not key.startswith("TQ_")}
        env.update(backend.env)
        env["HUEY_SUITE_DURABLE"] = "1" if durable else "0"
        env["PYTHONPATH"] = str(TESTS_DIR)
        env["HUEY_CI"] = "1"  # Huey skips the one test it marks flaky on CI
        done = subprocess.run([sys.executable, str(TESTS_DIR / "huey_suite_attached.py")],
                              env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-4000:]
        assert "OK" in done.stderr.splitlines()[-1], done.stderr[-2000:]
        runtime = backend.runtime()
        jobs = list_jobs(runtime, limit=500)
        assert len(jobs) >= 100, len(jobs)  # recorded: the listener was attached
        assert {job["state"] for job in jobs} >= {"succeeded", "failed"}
    finally:
        backend.cleanup()

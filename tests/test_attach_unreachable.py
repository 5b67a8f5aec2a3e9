"""An attached Huey app whose own storage is down: the rest of tq still shows.

What an operator relies on: an app on a Redis of its own ([huey] apps) that is
down or unreachable does not take `tq status`, `tq metrics` or the console
with it. Its row says "unreachable" with the reason and "?" for its depths
(never a false 0), tq's own queues and every other app show as usual, and an
action on that app is one line naming the outage, exit 1 (not a traceback and
not an exception name).
"""
from __future__ import annotations

import asyncio
import json
import sys
import uuid

import pytest

from tq.cli import main

from conftest import Backend, free_port, use_env


@pytest.fixture
def dead_app(tmp_path, monkeypatch):
    """A RedisHuey app pointed at a loopback port nothing listens on."""
    module = f"dead{uuid.uuid4().hex[:4]}"  # short: the console shows it whole
    (tmp_path / f"{module}.py").write_text(
        "from huey import RedisHuey\n"
        f"huey = RedisHuey('{module}', url='redis://127.0.0.1:{free_port()}/0')\n\n"
        "@huey.task()\ndef work(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    backend = Backend("embedded", tmp_path)
    use_env(monkeypatch, {**backend.env, "TQ_HUEY_APPS": f"{module}:huey"})
    yield module
    sys.modules.pop(module, None)
    backend.cleanup()


def test_status_shows_the_other_queues_and_says_why_the_app_has_no_depths(dead_app, capsys):
    assert main(["status", "--json"]) == 0
    queues = json.loads(capsys.readouterr().out)["queues"]
    row = queues[dead_app]
    assert row["queued"] is None and row["scheduled"] is None
    assert "unreachable" in row["unreachable"] and "Connection refused" in row["unreachable"]
    assert queues["default"]["queued"] == 0 and "unreachable" not in queues["default"]
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "unreachable" in out and "default" in out and "Traceback" not in out


def test_metrics_leave_the_app_out_rather_than_report_zero(dead_app, capsys):
    assert main(["metrics"]) == 0
    exposition = capsys.readouterr().out
    assert 'tq_queue_depth{queue="default"' in exposition
    assert f'tq_queue_depth{{queue="{dead_app}"' not in exposition


@pytest.mark.parametrize("argv", [["pause", "{app}"], ["resume", "{app}"],
                                  ["pause", "{app}", "--task", "{app}.work"]])
def test_an_action_on_the_app_is_one_line_naming_the_outage(dead_app, capsys, argv):
    assert main([part.format(app=dead_app) for part in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tq: error: a queue server is unreachable: "), err
    assert len(err.strip().splitlines()) == 1
    assert "ConnectionError" not in err and "Traceback" not in err


def test_console_queues_row_says_unreachable(dead_app):
    from tq.config import load_config
    from tq.runtime import Runtime
    from tq.tui.app import TqApp
    from tq.tui.data import Data

    from test_tui_literal import shows
    runtime = Runtime(load_config())

    async def scenario() -> None:
        app = TqApp(Data(runtime), live=False)
        async with app.run_test(size=(160, 30)) as pilot:
            text = await shows(pilot, dead_app, "default", "events")
            [row] = [line for line in text.splitlines() if dead_app in line]
            assert "unreach" in row  # its state, then "?" for queued and running, never 0
            assert row.split("unreach")[1].split()[:2] == ["?", "?"], row
    try:
        asyncio.run(scenario())
    finally:
        runtime.close()

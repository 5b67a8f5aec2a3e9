"""Every Python and shell example of README.md runs, on the embedded default.

The README's Python blocks become one task module (`readme_tasks`), listed in
`[tasks] modules` of a tq.ini in a fresh folder, so every `tq` command below
imports it: its `@tq.periodic` must not break the CLI. Each shell command
line of the README then runs there, one by one, and must exit 0 with no
traceback; each ini block must load. What cannot run here is skipped by the
short list SKIP, each entry saying why. New examples are picked up as they
are written: a new command line runs unless SKIP names it.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tq.config import load_config

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
BIN = Path(sys.executable).parent

# Substring of a command line -> why it does not run here.
SKIP = {
    "pip install": "installs the project: the test runs in the installed venv already",
    "pytest": "runs the test suite itself",
    "tq up": "runs until stopped (consumer, scheduler and watcher: tested in test_ingest)",
    "tq tui": "interactive console (tested in test_tui)",
    "tq consumer": "runs until stopped (tested in test_queue_ops)",
    "tq metrics --serve": "serves until stopped (tested in test_stats)",
    "tq serve &": "run with the curl lines after it, by test_readme_http_example",
    "curl ": "run against a real tq serve and consumer by test_readme_http_example",
    "docker compose": "needs a container engine (compose.yaml is checked by test_deploy)",
    "cp tq.env.example": "a compose deployment step (the file is checked by test_deploy)",
}

# Files the reader is assumed to have (the README names them): small ones are made here.
EVENTS = [{"type": "order.created", "id": n} for n in range(3)]


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README) if lang == language]


def command_lines() -> list[str]:
    commands = []
    for body in blocks("sh") + blocks("bash") + blocks("shell"):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def skipped(command: str) -> str | None:
    return next((why for part, why in SKIP.items() if part in command), None)


@pytest.fixture(scope="module")
def reader_dir(tmp_path_factory) -> Path:
    """A folder as a README reader has it: a tq.ini naming their task module."""
    here = tmp_path_factory.mktemp("readme")
    module = "\n\n".join(blocks("python"))
    # The README's task bodies call the reader's helpers; define them so a run works.
    (here / "readme_tasks.py").write_text(
        "def chunks(*args):\n    return [1, 2]\n\n\ndef render(chunk):\n    pass\n\n\n"
        + module, encoding="utf-8")
    (here / "tq.ini").write_text(
        "[tasks]\nmodules = tq.tasks.demo, tq.tasks.events, tq.tasks.maintenance, "
        "readme_tasks\n", encoding="utf-8")
    (here / "tq-data" / "inbox").mkdir(parents=True)  # made by `tq up`, skipped here
    assert run("tq migrate", here).returncode == 0  # so is the history schema
    return here


def readers_files(here: Path) -> None:
    """Before each command line: each line is an example of its own, and `tq ingest`
    files away what it took, so the reader's files are put back."""
    lines = "".join(json.dumps(event) + "\n" for event in EVENTS)
    (here / "orders-2026-11-23.jsonl").write_text(lines)
    (here / "orders.jsonl").write_text(lines)
    (here / "more.csv.gz").write_bytes(gzip.compress(b"type,id\nrefund,7\n"))
    (here / "jobs.jsonl").write_text(json.dumps({"task": "tq.tasks.demo.echo"}) + "\n")


def reader_env(cwd: Path) -> dict[str, str]:
    """A reader's shell in `cwd`: no TQ_* of ours, the venv's tq on PATH."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TQ_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(cwd),
               TQ_HISTORY_ROLLUP_EVERY="off")
    return env


def run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    command = command.replace(".venv/bin/", "")
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=reader_env(cwd),
                          capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_readme_has_examples_to_run():
    assert blocks("python") and len(command_lines()) >= 10
    assert any("@tq.periodic" in body for body in blocks("python"))
    for part in SKIP:  # a skip that matches nothing is stale: remove it
        assert any(part in command for command in command_lines()), part


COMMANDS = command_lines()


@pytest.mark.parametrize("command", COMMANDS, ids=[c[:50] for c in COMMANDS])
def test_readme_command_runs(command, reader_dir):
    why = skipped(command)
    if why:
        pytest.skip(why)
    readers_files(reader_dir)
    result = run(command, reader_dir)
    assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr


def test_readme_task_module_is_imported_by_tq(reader_dir):
    """`@tq.periodic` in a task module: every tq command still works, and knows it."""
    result = run("tq periodic --json", reader_dir)
    assert result.returncode == 0, result.stderr
    assert "readme_tasks.refresh_cache" in result.stdout
    result = run("tq submit readme_tasks.build_report --args '[42, \"2026-11\"]'", reader_dir)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("text", blocks("ini"), ids=lambda text: text.split("\n", 1)[0][:40])
def test_readme_ini_block_loads(text, tmp_path):
    ini = tmp_path / "tq.ini"
    ini.write_text(text, encoding="utf-8")
    load_config(ini, env={})


def test_readme_http_example(reader_dir):
    """The quick start's curl lines, as written, against a real `tq serve` and
    consumer (on a free port, put in for 8000; the id of the first answer put in
    for ID): the job submitted with curl runs and its result comes back."""
    import time

    from conftest import free_port

    commands = [c for c in COMMANDS if c.startswith("curl ") and "localhost:8000" in c]
    submit = next(c for c in commands if "-X POST" in c and "/api/v1/jobs " in c)
    result = next(c for c in commands if "/result" in c)
    port = free_port()
    env_run = dict(cwd=reader_dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, text=True)
    base = reader_env(reader_dir)
    server = subprocess.Popen(["tq", "serve", "--port", str(port)], env=base, **env_run)
    consumer = subprocess.Popen(["tq", "consumer"], env=base, **env_run)
    try:
        deadline = time.monotonic() + 60
        while True:  # until the server answers (a refused connection is curl's exit 7)
            answer = run(f"curl -sf localhost:{port}/api/v1/healthz", reader_dir)
            if answer.returncode == 0:
                break
            assert server.poll() is None and time.monotonic() < deadline, server.stderr
            time.sleep(0.1)
        posted = run(submit.replace("localhost:8000", f"localhost:{port}"), reader_dir)
        job = json.loads(posted.stdout)
        assert job["state"] == "queued", posted.stdout
        got = run(result.replace("localhost:8000", f"localhost:{port}")
                  .replace("/ID/", f"/{job['id']}/"), reader_dir)
        answer = json.loads(got.stdout)
        assert answer["state"] == "succeeded", got.stdout
        assert answer["result"] == {"args": ["hi"], "kwargs": {}}
    finally:
        for process in (server, consumer):
            process.terminate()
        for process in (server, consumer):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

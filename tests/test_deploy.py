"""The deployment files, checked without a container engine (none runs here):
compose.yaml's every tq command parses as a tq command line, its services are the
ones the README names, no secret is written in it, and the Dockerfile installs tq
exactly as the README's quick start does."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from tq.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
TQ_SERVICES = sorted(name for name, service in SERVICES.items()
                     if service.get("image") == "tq:local")
SECRET = re.compile(r"PASSWORD|SECRET|TOKEN", re.I)


def parses(argv: list[str]) -> None:
    """`argv` (after "tq") is a tq command line with a verb: argparse accepts it."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"not a valid tq command line: tq {shlex.join(argv)}")
    assert getattr(args, "func", None), f"no verb in tq {shlex.join(argv)}"


def test_compose_has_every_service_the_readme_names():
    assert {"redis", "mariadb", "migrate", "consumer", "api", "web", "watch"} <= set(SERVICES)
    assert set(TQ_SERVICES) == {"migrate", "consumer", "api", "web", "watch"}
    assert SERVICES["consumer"]["deploy"]["replicas"] >= 2
    readme = (ROOT / "README.md").read_text()
    assert "## Deploy with compose" in readme
    for name in SERVICES:
        assert f"`{name}`" in readme, f"the README's compose section does not name {name}"


@pytest.mark.parametrize("name", TQ_SERVICES)
def test_every_tq_service_runs_a_valid_tq_command(name):
    command = SERVICES[name]["command"]
    assert isinstance(command, list) and command[0] == "tq", command
    parses(command[1:])
    test = SERVICES[name].get("healthcheck", {}).get("test")
    if test and test[:2] == ["CMD", "tq"]:
        parses(test[2:])


def test_every_long_running_service_has_a_healthcheck_and_waits_for_its_servers():
    for name, service in SERVICES.items():
        check = service.get("healthcheck", {})
        if name == "migrate":  # a one-shot: the others wait for it to complete
            assert service["restart"] == "no" and check.get("disable")
            continue
        assert check.get("test"), f"{name} has no healthcheck"
        if name in TQ_SERVICES:
            assert service["depends_on"]["migrate"]["condition"] == \
                "service_completed_successfully"
            for server in ("redis", "mariadb"):
                assert service["depends_on"][server]["condition"] == "service_healthy"


def test_the_servers_listen_where_compose_publishes_them():
    for name, port in (("api", "8000"), ("web", "8001")):
        command = SERVICES[name]["command"]
        assert command[command.index("--port") + 1] == port
        assert command[command.index("--bind") + 1] == "0.0.0.0"  # needs TQ_API_TOKENS
        assert f"{port}:{port}" in SERVICES[name]["ports"]
        assert f":{port}/" in " ".join(SERVICES[name]["healthcheck"]["test"])


def test_the_watcher_watches_a_mounted_inbox():
    command = SERVICES["watch"]["command"]
    inbox = command[command.index("--inbox") + 1]
    assert any(volume.split(":")[1] == inbox for volume in SERVICES["watch"]["volumes"])


def test_no_secret_is_written_in_compose_and_the_env_file_names_the_settings():
    for name, service in SERVICES.items():
        environment = service.get("environment", {})
        items = environment.items() if isinstance(environment, dict) else \
            (entry.partition("=")[::2] for entry in environment)
        for key, value in items:
            assert not (SECRET.search(key) and value), f"{name} sets {key} in compose.yaml"
        assert not SECRET.search(" ".join(map(str, service.get("command", []))))
    for name in [*TQ_SERVICES, "mariadb"]:
        assert SERVICES[name]["env_file"] == "tq.env"
    example = (ROOT / "tq.env.example").read_text()
    keys = {line.split("=", 1)[0] for line in example.splitlines()
            if line and not line.startswith("#")}
    assert {"TQ_QUEUE_URL", "TQ_HISTORY_URL", "TQ_HISTORY_PASSWORD", "TQ_API_TOKENS",
            "TQ_SECRET", "MARIADB_PASSWORD"} <= keys
    assert "/tq.env" in (ROOT / ".gitignore").read_text().split()


def pip_install(line: str) -> list[str]:
    """The arguments after `pip` of the `pip install` in a shell line."""
    words = shlex.split(line)
    start = next(i for i, word in enumerate(words) if word.endswith("pip") and
                 words[i + 1:i + 2] == ["install"])
    end = next((i for i in range(start, len(words)) if words[i] in ("&&", ";", "||")),
               len(words))
    return words[start + 1:end]


def test_the_image_installs_tq_as_the_readme_says():
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    readme_step = pip_install(quick_start.strip().splitlines()[0])
    runs = [line.removeprefix("RUN ").strip() for line in
            (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("RUN ")]
    image_steps = [pip_install(run) for run in runs if "pip install" in run]
    assert image_steps == [readme_step], (image_steps, readme_step)
    assert readme_step[:2] == ["install", "-q"] and readme_step[-2:] == ["-e", "."]

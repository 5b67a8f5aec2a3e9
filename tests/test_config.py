"""Settings checked as a whole: every hostile value is one stderr line and exit 2.

Each case goes through the real CLI (`tq.cli.main`, in process, and a few as a
subprocess) from a file or from the environment, and must give exactly one
line on stderr naming the key, no traceback and no Python exception name.
Secrets are masked whatever they contain; a mute server fails in about
`connect_timeout`.
"""
from __future__ import annotations

import configparser
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints
from urllib.parse import quote

import pytest

from tq.cli import main
from tq.config import (
    OPEN_SECTIONS,
    SCHEMA,
    SECRET_KEYS,
    SECTIONS,
    ConfigError,
    _plain,
    load_config,
    redact_url,
)
from tq.models import Job

from conftest import MYSQL_HOST, MYSQL_PORT, free_port, use_env

ROOT = Path(__file__).resolve().parent.parent
EXCEPTION_NAMES = re.compile(r"Traceback|\b[A-Z][A-Za-z]*(Error|Exception)\b")
LONG_QUEUE = "q" * (Job.queue.max_length + 6)  # 70 characters

# (where, key or file text, value, what the one line must name)
HOSTILE = [
    ("env", "TQ_CONSUMER_LEASE", "nan", "[consumer] lease = 'nan'"),
    ("env", "TQ_CONSUMER_LEASE", "inf", "[consumer] lease = 'inf'"),
    ("env", "TQ_CONSUMER_LEASE", "-1", "[consumer] lease = '-1'"),
    ("env", "TQ_CONSUMER_LEASE", "1e400", "[consumer] lease = '1e400'"),
    ("env", "TQ_CONSUMER_LEASE", "1", "at least 3 x [consumer] heartbeat"),
    ("env", "TQ_CONSUMER_HEARTBEAT", "NaN", "[consumer] heartbeat = 'NaN'"),
    ("env", "TQ_CONSUMER_HEARTBEAT", "0", "[consumer] heartbeat = '0'"),
    ("env", "TQ_CONSUMER_GRACE", "-Infinity", "[consumer] grace = '-Infinity'"),
    ("env", "TQ_CONSUMER_GRACE", "0", "[consumer] grace = '0'"),
    ("env", "TQ_CONSUMER_LOST_RETRIES", "-1", "[consumer] lost_retries = '-1'"),
    ("env", "TQ_CONSUMER_LOST_RETRIES", "2.5", "[consumer] lost_retries = '2.5'"),
    ("env", "TQ_CONSUMER_WORKERS", "9" * 5000, "[consumer] workers = '999"),
    ("env", "TQ_CONSUMER_WORKERS", "1_0", "[consumer] workers = '1_0'"),
    ("env", "TQ_CONSUMER_WORKERS", "0x10", "[consumer] workers = '0x10'"),
    ("env", "TQ_CONSUMER_WORKERS", "", "[consumer] workers = ''"),
    ("env", "TQ_CONSUMER_POLL_MAX", "0", "[consumer] poll_max = '0'"),
    ("env", "TQ_HISTORY_FLUSH_INTERVAL", "nan", "[history] flush_interval = 'nan'"),
    ("env", "TQ_HISTORY_BUFFER_ROWS", "-5", "[history] buffer_rows = '-5'"),
    ("env", "TQ_HISTORY_BUFFER_ROWS", "10", "[history] buffer_rows = '10'"),  # < flush_rows
    ("env", "TQ_HISTORY_QUERY_TIMEOUT", "inf", "[history] query_timeout = 'inf'"),
    ("env", "TQ_HISTORY_KEEP_DAYS", "1e9", "[history] keep_days = '1e9'"),
    ("env", "TQ_QUEUE_CONNECT_TIMEOUT", "inf", "[queue] connect_timeout = 'inf'"),
    ("env", "TQ_QUEUE_CONNECT_TIMEOUT", "abc", "[queue] connect_timeout = 'abc'"),
    ("env", "TQ_QUEUE_MAX_ARG_BYTES", "0", "[queue] max_arg_bytes = '0'"),
    ("env", "TQ_INGEST_SETTLE_SECONDS", "-1", "[ingest] settle_seconds = '-1'"),
    ("env", "TQ_INGEST_SETTLE_SECONDS", "nan", "[ingest] settle_seconds = 'nan'"),
    ("env", "TQ_INGEST_POLL_INTERVAL", "0", "[ingest] poll_interval = '0'"),
    ("env", "TQ_INGEST_BATCH_SIZE", "1e3", "[ingest] batch_size = '1e3'"),
    ("env", "TQ_INGEST_TYPE_FIELD", "", "[ingest] type_field = ''"),
    ("env", "TQ_TQ_DATA_DIR", "a\x00b", "[tq] data_dir = 'a\\x00b'"),
    ("env", "TQ_TQ_LOG_LEVEL", "[bold]loud\x1b[2J", "[tq] log_level = '[bold]loud\\x1b[2J'"),
    ("env", "TQ_QUEUE_PREFIX", "tq\x1b]0;pwned\x07", "[queue] prefix = 'tq\\x1b]0;pwned\\x07'"),
    ("env", "TQ_QUEUE_NOPE", "1", "unknown setting [queue] nope"),
    ("env", "TQ_QUEUES_" + LONG_QUEUE.upper(), "0", f"queue name '{LONG_QUEUE}'"),
    ("env", "TQ_TASKS_MODULES", "os; rm -rf /", "[tasks] modules = 'os; rm -rf /'"),
    ("env", "TQ_HISTORY_ROLLUP_EVERY", "@every 0s", "[history] rollup_every = '@every 0s'"),
    ("redis", "TQ_QUEUE_URL", "redis://127.0.0.1:0/0", "the port must be a number from 1"),
    ("redis", "TQ_QUEUE_URL", "redis://127.0.0.1:99999/0", "redis://127.0.0.1:99999/0"),
    ("redis", "TQ_QUEUE_URL", "redis://127.0.0.1:abc/0", "redis://127.0.0.1:abc/0"),
    ("redis", "TQ_QUEUE_URL", "redis://127.0.0.1:6379/zero", "the database must be a number"),
    ("env", "TQ_HISTORY_URL", "mysql://root@127.0.0.1:99999/tq", "the port must be a number"),
    ("env", "TQ_HISTORY_URL", "mysql://root@127.0.0.1:3306/", "the database name is missing"),
    ("env", "TQ_HISTORY_URL", "mysql://root@127.0.0.1/" + "d" * 65, "the database name must"),
    ("env", "TQ_HISTORY_URL", "postgres://x/y", "[history] url = 'postgres://x/y'"),
    ("file", "[consumer]\nlease = nan\n", None, "[consumer] lease = 'nan'"),
    ("file", "[consumer]\nheartbeat = 10\nlease = 20\n", None, "[consumer] lease = '20'"),
    ("file", "[consumer]\nworkerz = 3\n", None, "unknown setting [consumer] workerz"),
    ("file", "[consumer\nlease = 3\n", None, "cannot parse"),
    ("file", "no section\n", None, "cannot parse"),
    ("file", "[consumer]\nlease = 1\nlease = 2\n", None, "cannot parse"),
    ("file", f"[queues]\n{LONG_QUEUE} = 0\n", None, f"queue name '{LONG_QUEUE}'"),
    ("file", "[queues]\nbad name = 0\n", None, "bad queue name [queues] 'bad name'"),
    ("file", "[queues]\nmail = 1001\n", None, "[queues] mail: priority must be"),
    ("file", "[queues]\nmail = nan\n", None, "[queues] mail: priority must be"),
    ("file", "[routes]\n* = events:" + "t" * 201 + "\n", None, "task name"),
    ("file", "[routes]\n* = nowhere:tq.tasks.demo.echo\n", None, "unknown queue 'nowhere'"),
    ("file", "[routes]\n[/]x = events:a.b\n", None, "unknown section [/]"),
    ("file", "[periodic]\np = @every 1e400s a.b\n", None, "[periodic] 'p'"),
    ("file", "[periodic]\np = 99 99 * * * a.b\n", None, "[periodic] 'p'"),
    ("file", "[consumer]\nlog = \x1b[31mred\n", None, "unknown setting [consumer] log"),
    ("bytes", b"[consumer]\nlease = \xff\xfe\n", None, "is not UTF-8 text (byte 0xff on line 2)"),
    ("folder", None, None, "is a folder, not a file"),
    ("missing", None, None, "config file not found"),
    ("unreadable", None, None, "cannot read config file"),
]


def _case_id(case) -> str:
    where, key, value, _ = case
    text = key if isinstance(key, str) else where
    return f"{where}:{(text or where)[:30]}={'' if value is None else value[:12]}"


def _unreadable_file(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        path = tmp_path / "secret.ini"
        path.write_text("[tq]\n")
        path.chmod(0)
        return path
    return Path("/proc/self/mem")  # root reads any file; this one refuses read()


@pytest.mark.parametrize("case", HOSTILE, ids=[_case_id(c) for c in HOSTILE])
def test_hostile_config_is_one_line_exit_2(case, tmp_path, monkeypatch, capsys):
    where, key, value, expected = case
    env = {"TQ_TQ_DATA_DIR": str(tmp_path / "data")}
    argv = ["status"]
    if where in ("env", "redis"):
        env[key] = value
        if where == "redis":
            env["TQ_QUEUE_BACKEND"] = "redis"
    else:
        path = {"folder": tmp_path, "missing": tmp_path / "missing.ini",
                "unreadable": _unreadable_file(tmp_path)}.get(where, tmp_path / "tq.ini")
        if where == "file":
            path.write_text(key, encoding="utf-8")
        elif where == "bytes":
            path.write_bytes(key)
        argv = ["--config", str(path), "status"]
    if "\x00" in (value or ""):  # os.environ cannot hold NUL: load it directly
        with pytest.raises(ConfigError) as info:
            load_config(env=env)
        err = f"tq: error: {info.value}\n"
        code = 2
    else:
        use_env(monkeypatch, env)
        code = main(argv)
        err = capsys.readouterr().err
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert expected in lines[0], lines[0]
    assert not EXCEPTION_NAMES.search(lines[0]), lines[0]
    assert "\x1b" not in err and "\x00" not in err
    assert not (tmp_path / "data" / "queue.db").exists()  # refused before anything opened


def test_hostile_config_through_a_subprocess(tmp_path):
    """The same rule from a shell: one line, exit 2, no traceback."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TQ_")}
    for extra, argv in (({"TQ_CONSUMER_LEASE": "nan"}, ["status"]),
                        ({"TQ_QUEUE_BACKEND": "redis", "TQ_QUEUE_URL": "redis://h:99999/0"},
                         ["status"]),
                        ({}, ["--config", str(tmp_path), "jobs"])):
        result = subprocess.run([sys.executable, "-m", "tq.cli", *argv], cwd=tmp_path,
                                env={**env, **extra}, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert not EXCEPTION_NAMES.search(result.stderr), result.stderr


def test_defaults_and_cli_flags_get_the_same_checks():
    config = load_config(env={})
    assert config.consumer.lease >= 3 * config.consumer.heartbeat
    with pytest.raises(ConfigError, match=r"\[consumer\] workers = '-1'"):
        load_config(env={}, overrides={"consumer": {"workers": -1}})
    with pytest.raises(ConfigError, match=r"\[consumer\] workers = 'nan'"):
        load_config(env={}, overrides={"consumer": {"workers": float("nan")}})


def _example_keys(text: str) -> dict[str, set[str]]:
    """The keys tq.example.ini names in each section: set (`key = value`) or shown
    commented out (`# key = value`)."""
    named: dict[str, set[str]] = {}
    keys: set[str] = set()
    for line in text.splitlines():
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            keys = named.setdefault(header.group(1), set())
        elif key := re.match(r"(?:# )?([a-z_][a-z0-9_]*) = ", line):
            keys.add(key.group(1))
    return named


def test_example_ini_names_every_setting_and_no_other():
    """tq.example.ini and the schema name the same settings: every key the schema
    knows has its line (secrets excepted: environment only), and every key line
    there, commented out or not, is a setting (a stale or misspelt one fails)."""
    named = _example_keys((ROOT / "tq.example.ini").read_text())
    assert set(named) == set(SCHEMA) | set(OPEN_SECTIONS)
    for section, keys in SCHEMA.items():
        known = {key for key in keys if (section, key) not in SECRET_KEYS}
        assert named[section] == known, (f"[{section}] missing from tq.example.ini: "
                                         f"{sorted(known - named[section])}; not settings: "
                                         f"{sorted(named[section] - known)}")


def test_example_ini_documents_every_key_and_its_range():
    """Each numeric key of the schema has its range in the comment above it."""
    text = (ROOT / "tq.example.ini").read_text()
    for section, keys in SCHEMA.items():
        body = text.split(f"[{section}]\n", 1)[1].split("\n[", 1)[0]
        for key, (parse, _) in keys.items():
            if (section, key) in SECRET_KEYS:  # environment only: named, never given a value
                assert f"TQ_{section.upper()}_{key.upper()}" in body
                continue
            match = re.search(rf"^(?:# )?{key} =", body, re.M)
            assert match, f"[{section}] {key} missing from tq.example.ini"
            comment = body[:match.start()].rsplit("\n\n", 1)[-1]
            comment = "\n".join(line for line in comment.splitlines()
                                if line.startswith("#") and " = " not in line)
            low_high = getattr(parse, "range", None)
            if low_high is not None:
                low, high = (_plain(bound) for bound in low_high)
                assert f"{low}..{high}" in comment, (section, key, comment)


def _comment_above(body: str, key: str) -> str:
    """The comment lines right above `key` (commented-out keys skipped), as one line."""
    lines = body[:re.search(rf"^(?:# )?{key} =", body, re.M).start()].splitlines()
    comment: list[str] = []
    for line in reversed(lines):
        if not line.startswith("#"):
            break
        if " = " not in line:
            comment.insert(0, line[1:])
    return " ".join(" ".join(comment).split())


def _holds(value: Any, hint: Any) -> bool:
    if get_origin(hint) is Literal:
        return value in get_args(hint)
    if get_origin(hint) is tuple:
        return isinstance(value, tuple) and all(isinstance(item, str) for item in value)
    return type(value) is hint  # an int is not a float here: the parser decides which


def test_section_dataclasses_agree_with_their_parsers_and_tq_example_ini():
    """A setting is declared once, as a field of its section's dataclass in
    tq.config. What can drift from that declaration is held to it here: the
    field's annotation (what mypy checks every read against) is the type its
    parser returns and the loaded value has; a choice lists exactly the
    Literal's values; the default is what tq.example.ini shows, read by the
    field's own parser; the doc is the opening of the key's comment there."""
    text = (ROOT / "tq.example.ini").read_text()
    example = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    example.read_string(text)
    loaded = load_config(env={})
    built = {"queue": loaded.queue, "history": loaded.history, "consumer": loaded.consumer,
             "ingest": loaded.ingest}
    assert set(SECTIONS) == set(SCHEMA)
    for section, cls in SECTIONS.items():
        assert list(SCHEMA[section]) == [f.name for f in fields(cls)]
        hints = get_type_hints(cls)
        body = text.split(f"[{section}]\n", 1)[1].split("\n[", 1)[0]
        for f in fields(cls):
            where, hint = (section, f.name), hints[f.name]
            parse, default, doc = (f.metadata[name] for name in ("parse", "default", "doc"))
            assert SCHEMA[section][f.name] == (parse, default)
            choices = getattr(parse, "choices", None)
            if choices is not None:
                assert get_origin(hint) is Literal and set(get_args(hint)) == set(choices), where
            if section in built:
                assert _holds(getattr(built[section], f.name), hint), where
            if where in SECRET_KEYS:  # environment only: no line of its own
                assert doc in " ".join(body.replace("# ", "").split()), where
                continue
            assert doc in _comment_above(body, f.name), (where, doc)
            if default is None:  # derived from data_dir: shown commented out
                assert hint is str and re.search(rf"^# {f.name} = ", body, re.M), where
            else:
                assert parse(example[section][f.name]) == default, where
                assert _holds(default, hint), where


# --- secrets ------------------------------------------------------------------------------

PASSWORDS = ["S3cret@Tail", "a:b:c@d", "p%40ss", "[/]mark[bold]up", "esc\x1b[2Jape",
             "wörd€", "sp ace", "h#sh?q=1", "sl/ash@x:y", "hunter2"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_password_is_masked_whole_in_urls(password):
    for written in (password, quote(password, safe="")):
        for url in (f"mysql://root:{written}@127.0.0.1:3306/tq",
                    f"redis://:{written}@127.0.0.1:6379/0",
                    f"redis://127.0.0.1:6379/0?password={written}"):
            shown = redact_url(url)
            assert written not in shown and "***" in shown, (url, shown)
            if "?" not in written and "#" not in written:
                assert shown.endswith("127.0.0.1:3306/tq") or "127.0.0.1:6379" in shown


def _secret_parts(password: str) -> list[str]:
    return [password, quote(password, safe="")]


@pytest.mark.parametrize("password", PASSWORDS)
def test_password_never_printed_by_status_errors_or_logs(password, tmp_path, monkeypatch,
                                                         capsys, caplog):
    """Through the CLI: the history server refuses (wrong password, or a closed
    port); neither the error line nor a log line holds any form of it."""
    from tq.cli.common import make_runtime

    closed = free_port()
    for url in (f"mysql://root:{quote(password, safe='')}@{MYSQL_HOST}:{MYSQL_PORT}/tq_none",
                f"mysql://root@{MYSQL_HOST}:{closed}/tq"):
        use_env(monkeypatch, {"TQ_TQ_DATA_DIR": str(tmp_path), "TQ_HISTORY_URL": url,
                              "TQ_HISTORY_PASSWORD": password,
                              "TQ_QUEUE_CONNECT_TIMEOUT": "2"})
        for argv in (["status"], ["jobs"], ["status", "--json"]):
            main(argv)
            captured = capsys.readouterr()
            for part in _secret_parts(password):
                assert part not in captured.out + captured.err, (argv, captured)
        with caplog.at_level(logging.WARNING):
            make_runtime(type("Args", (), {"config": None})())
            logging.getLogger("tq.test").warning("connecting to %s with %s", url, password)
        for part in _secret_parts(password):
            assert part not in caplog.text, caplog.text
        caplog.clear()


def test_status_shows_the_urls_masked(tmp_path, monkeypatch):
    config = load_config(env={"TQ_QUEUE_BACKEND": "redis",
                              "TQ_QUEUE_URL": "redis://:S3cret@Tail@127.0.0.1:6379/0",
                              "TQ_HISTORY_URL": "mysql://root:p@ss:w@127.0.0.1:3306/tq"})
    assert config.queue_url_safe == "redis://:***@127.0.0.1:6379/0"
    assert config.history_url_safe == "mysql://root:***@127.0.0.1:3306/tq"
    assert set(config.secrets()) == {"p@ss:w", "S3cret@Tail"}
    # An unencoded "/" would make the driver read the password as a host: refused, masked.
    with pytest.raises(ConfigError) as info:
        load_config(env={"TQ_HISTORY_URL": "mysql://root:p@ss:w/rd@127.0.0.1:3306/tq"})
    assert "must be percent-encoded" in str(info.value)
    assert "ss:w" not in str(info.value) and "rd@" not in str(info.value)


# --- timeouts -----------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["redis", "mysql"])
def test_a_server_that_never_answers_fails_in_connect_timeout(which, mute_server, tmp_path,
                                                              monkeypatch, capsys):
    env = {"TQ_TQ_DATA_DIR": str(tmp_path), "TQ_QUEUE_CONNECT_TIMEOUT": "2"}
    if which == "redis":
        env.update(TQ_QUEUE_BACKEND="redis", TQ_QUEUE_URL=f"redis://127.0.0.1:{mute_server}/0")
    else:
        env.update(TQ_HISTORY_URL=f"mysql://root@127.0.0.1:{mute_server}/tq")
    use_env(monkeypatch, env)
    started = time.monotonic()
    # A verb that needs the server (tq jobs reads history alone: Redis silent, it lists).
    code = main(["workers" if which == "redis" else "jobs"])
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2 and "unreachable" in err and len(err.splitlines()) == 1, err
    assert 1.5 < elapsed < 6, elapsed  # 2 s configured; it was 10.5 s (Redis), 8 s (MySQL)


# --- numeric CLI options --------------------------------------------------------------------

HOSTILE_OPTIONS = [
    ["jobs", "--sort", "bogus"], ["jobs", "--sort", "[/]"], ["jobs", "--limit", "-1"],
    ["jobs", "--limit", "0"], ["jobs", "--limit", "9" * 30], ["jobs", "--limit", "abc"],
    ["jobs", "--limit", "1e3"], ["jobs", "--limit", ""], ["jobs", "--since", "1e400h"],
    ["jobs", "--since", "9" * 400 + "h"], ["jobs", "--before", "nan"],
    ["jobs", "--since", "\x1b[2Jsoon"], ["cancel", "--since", "yesterday"],
    ["requeue", "--before", "-5m"], ["purge", "--before", "inf"],
    ["consumer", "-w", "0"], ["consumer", "-w", "-3"], ["consumer", "--workers", "nan"],
    ["up", "-w", "99999"], ["metrics", "--serve", "0"], ["metrics", "--serve", "99999"],
    ["metrics", "--serve", "abc"], ["stats", "--since", "bogus"],
    ["stats", "--by", "[bold]x"],
]


@pytest.mark.parametrize("argv", HOSTILE_OPTIONS, ids=lambda argv: " ".join(argv)[:40])
def test_hostile_cli_option_is_one_line_exit_2(argv, tmp_path, monkeypatch, capsys):
    use_env(monkeypatch, {"TQ_TQ_DATA_DIR": str(tmp_path / "data")})
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.splitlines()) == 1 and f"tq {argv[0]}: error: argument" in err, err
    assert not EXCEPTION_NAMES.search(err) and "\x1b" not in err, err
    assert not (tmp_path / "data").exists()  # refused before anything was opened


@pytest.mark.parametrize("password", PASSWORDS)
def test_a_password_written_unencoded_in_a_url_is_one_line_without_it(password):
    """Written raw (not percent-encoded), a password either works or is refused as a
    ConfigError naming the key; never a ValueError whose text quotes part of it
    (urlsplit's "'bold' does not appear to be an IPv4 or IPv6 address")."""
    fragments = [part for part in re.split(r"[^0-9A-Za-zö]+", password) if len(part) >= 4]
    for env in ({"TQ_QUEUE_BACKEND": "redis", "TQ_QUEUE_URL": f"redis://:{password}@127.0.0.1:6379/0"},
                {"TQ_HISTORY_URL": f"mysql://root:{password}@127.0.0.1:3306/tq"}):
        try:
            load_config(env=env)
        except ConfigError as exc:
            line = str(exc)
            assert line.startswith("bad value for [") and "\n" not in line, line
            assert password not in line and not any(part in line for part in fragments), line


@pytest.mark.mysql
def test_status_waits_out_a_silent_redis_once(mute_server, redis_backend, monkeypatch, capsys):
    """`tq status` with a Redis that accepts and never answers: one connect_timeout,
    then history's half and the line (exit 1). It asked it three times (the
    submitted jobs' catch-up, the depths, the quarantine count): 3 x the timeout,
    past a compose healthcheck's."""
    use_env(monkeypatch, {**redis_backend.env, "TQ_QUEUE_CONNECT_TIMEOUT": "4",
                          "TQ_QUEUE_URL": f"redis://127.0.0.1:{mute_server}/0"})
    started = time.monotonic()
    code = main(["status"])
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert code == 1 and "queue backend" in out and "unreachable" in out, out
    assert elapsed < 7, elapsed  # one wait of 4 s; two were 8 s, three 12 s

"""`import tq` and `tq --help` stay light: neither loads huey, redis, peewee or
PyMySQL (nor the console or the exporter). Each check runs in a fresh interpreter,
since this test process has long imported them all."""
from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("huey", "redis", "peewee", "pymysql", "textual", "watchdog", "prometheus_client",
         "croniter", "aiohttp", "textual_serve")

REPORT = f"""
import json, sys
print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
"""


def loaded_after(code: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", code + REPORT], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_import_tq_loads_no_queue_or_database_library():
    assert loaded_after("import tq") == []


def test_tq_help_loads_no_queue_or_database_library():
    # As the console script runs it: tq.cli's main, --help, exit 0.
    code = """
import contextlib, io
from tq.cli import main
with contextlib.redirect_stdout(io.StringIO()) as shown:
    assert main(["--help"]) == 0
assert "submit" in shown.getvalue() and "stats" in shown.getvalue()
"""
    assert loaded_after(code) == []


def test_python_m_tq_cli_help_loads_no_queue_or_database_library():
    code = """
import runpy, sys
sys.argv = ["tq", "--help"]
try:
    runpy.run_module("tq.cli", run_name="__main__")
except SystemExit as exc:
    assert exc.code == 0
"""
    assert loaded_after(code) == []


def test_the_api_names_load_on_first_use_and_are_the_real_ones():
    code = """
import tq
from tq.registry import task
from tq.submit import SubmitError, submit
assert tq.task is task and tq.submit is submit and tq.SubmitError is SubmitError
assert set(tq.__all__) <= set(dir(tq))
"""
    assert "huey" in loaded_after(code)


def test_tq_submit_is_the_function_even_after_its_module_was_imported_first():
    # The import system binds a loaded submodule on its package: tq/submit.py must
    # not shadow tq.submit() for a program that imported it before using the API.
    code = """
import tq.submit
from tq.submit import enqueue
import tq
assert callable(tq.submit) and tq.submit.__name__ == "submit", tq.submit
assert sys.modules["tq.submit"].enqueue is enqueue
"""
    loaded_after("import sys\n" + code)


def test_an_unknown_name_is_an_attribute_error():
    code = """
import tq
try:
    tq.no_such_name
except AttributeError as exc:
    assert "no_such_name" in str(exc)
else:
    raise AssertionError("no AttributeError")
"""
    loaded_after(code)


def test_the_cli_sort_choices_are_the_queries_rule():
    from tq.cli.jobs import SORTABLE as shown
    from tq.queries import SORTABLE

    assert shown == SORTABLE

"""Properties of the job-filter language (tq/where.py), checked by hypothesis.

- Filter text is the filter: `parse(flt.render())` is `flt` again.
- Hostile text never raises anything but FilterError, and a filter that parses
  runs as SQL on both backends.
- SQL selects what the language says: on the same rows, `condition()` (plus
  `Filter.accepts`) selects exactly the rows a plain Python reading of the
  module docstring selects, on SQLite and on MariaDB.

Equality terms (state, queue, id) are drawn in lower case without trailing
spaces: MariaDB's utf8mb4_general_ci compares those case- and accent-blind and
ignores trailing spaces where SQLite compares exactly; that is the column's
collation, not the filter's.
"""
from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tq import groups
from tq.models import STATES, Job
from tq.serializer import dumps_json
from tq.where import KEYS, Filter, FilterError, condition, parse

from conftest import Backend

NOW = 1_795_000_000.0
LOWER = "abcxyz0123456789-_."
NAME = st.text(alphabet=LOWER, min_size=1, max_size=6)
# Substring terms: LIKE's own wildcards and escape, quotes, spaces, case.
TEXT = st.text(alphabet="abAB%_\\'\" :,=", min_size=1, max_size=6)
WORD = TEXT.filter(lambda word: ":" not in word)
JSON_SCALAR = st.none() | st.booleans() | st.integers(-5, 500) | st.sampled_from(
    ["a", "A", "42", "a b", "%", "_", 'q"', "\\", "4.5", "true"])
TIMES = st.integers(int(NOW) - 10_000, int(NOW) + 10_000).map(float)
MESSAGES = st.lists(st.sampled_from(["gateway ", "timeout ", "42", "7.5", "'x'", '"y"', "<n>",
                                     "a" * 60, "\n", ": ", "id ",
                                     "0d9f4c1e-1a2b-4c3d-8e9f-0123456789ab"]),
                    max_size=8).map("".join)

FILTERS = st.builds(
    Filter,
    states=st.lists(st.sampled_from(STATES), max_size=2).map(tuple),
    queues=st.lists(NAME, max_size=2).map(tuple),
    tasks=st.lists(TEXT, max_size=1).map(tuple),
    ids=st.lists(NAME, max_size=2).map(tuple),
    args=st.lists(st.tuples(st.sampled_from(["customer", "n", "a"]),
                            JSON_SCALAR.map(lambda v: v if isinstance(v, str) else json.dumps(v))),
                  max_size=1).map(tuple),
    errors=st.lists(TEXT, max_size=1).map(tuple),
    words=st.lists(WORD, max_size=1).map(tuple),
    since=st.none() | TIMES, before=st.none() | TIMES,
    priority=st.none() | st.integers(0, 1000),
    group=st.none() | st.tuples(st.sampled_from(["", "KeyError", "GatewayTimeout"]),
                                MESSAGES.map(groups.normalise_message)))


@given(FILTERS)
def test_render_parses_back_to_the_same_filter(flt):
    assert parse(flt.render(), now=NOW) == flt


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=40) | st.lists(
    st.sampled_from([*(key + ":" for key in KEYS), "'", '"', "\\", " ", ",", "=", "x", "1",
                     "9" * 30, "1h", "T", "-", "Z", "+99:99", "9999-12-31", "0001-01-01",
                     "\x00", "\u2028", "é"]), max_size=12).map("".join))
@example("since:0001-01-01T00:00:00+01:00")
@example("priority:99999999999999999999")
def test_hostile_filter_text_is_a_filter_error_or_a_filter_that_runs(embedded_runtime, text):
    try:
        flt = parse(text, now=NOW)
    except FilterError:
        return
    run(embedded_runtime, flt)


# --- SQL against the docstring ------------------------------------------------------------

ROWS = st.lists(st.fixed_dictionaries({
    "queue": st.none() | NAME, "task": st.none() | TEXT.map(lambda t: "app." + t),
    "state": st.sampled_from(STATES), "priority": st.none() | st.integers(0, 3),
    "enqueued_at": st.none() | TIMES,
    "args": st.lists(st.dictionaries(st.sampled_from(["customer", "n"]), JSON_SCALAR,
                                     max_size=2) | JSON_SCALAR, max_size=2),
    "kwargs": st.dictionaries(st.sampled_from(["customer", "n", "a", "xcustomer"]),
                              JSON_SCALAR | st.dictionaries(st.just("customer"), JSON_SCALAR),
                              max_size=3),
    "error_type": st.none() | st.sampled_from(["", "KeyError", "GatewayTimeout", "keyerror"]),
    "error_message": st.none() | MESSAGES | TEXT}), max_size=6)


def _json_value(raw: str) -> Any:
    """An `args:KEY=VALUE` value as JSON: a number, true/false/null, else a string."""
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return {"true": True, "false": False, "null": None}.get(raw, raw)


def _dicts(value: Any):
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _dicts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _dicts(item)


def _has(haystack: str | None, needle: str) -> bool:
    return haystack is not None and needle.lower() in haystack.lower()


def python_accepts(flt: Filter, row: dict) -> bool:
    """The module docstring of tq/where.py, read literally."""
    def arg_matches(name: str, raw: str) -> bool:
        want = dumps_json(_json_value(raw)).lower()
        return any(name in d and dumps_json(d[name]).lower() == want
                   for d in _dicts([row["args"], row["kwargs"]]))
    return ((not flt.states or row["state"] in flt.states)
            and (not flt.queues or row["queue"] in flt.queues)
            and all(_has(row["task"], task) for task in flt.tasks)
            and (not flt.ids or row["id"] in flt.ids)
            and all(arg_matches(name, raw) for name, raw in flt.args)
            and all(_has(row["error_type"], e) or _has(row["error_message"], e)
                    for e in flt.errors)
            and all(row["id"] == w or _has(row["task"], w) for w in flt.words)
            and (flt.since is None or (row["enqueued_at"] is not None
                                       and row["enqueued_at"] >= flt.since))
            and (flt.before is None or (row["enqueued_at"] is not None
                                        and row["enqueued_at"] < flt.before))
            and (flt.priority is None or row["priority"] == flt.priority)
            and (flt.group is None or groups.matches(flt.group, row["error_type"],
                                                     row["error_message"])))


def run(runtime, flt: Filter) -> set[str]:
    """The ids the filter selects, as tq.queries and tq.ops select them."""
    runtime.history_db()  # binds the models to this database
    query = Job.select(Job.id, Job.error_type, Job.error_message)
    expression = condition(flt)
    if expression is not None:
        query = query.where(expression)
    return {job_id for job_id, error_type, message in query.tuples()
            if flt.accepts(error_type, message)}


@pytest.fixture
def embedded_runtime(tmp_path):
    be = Backend("embedded", tmp_path)
    yield be.runtime()
    be.cleanup()


def aimed_filter(row: dict, draw: Any) -> Filter:
    """Terms taken from one row, each kept or not: random filters alone almost
    never select a row, so a wrong selection would go unseen."""
    def maybe(value: Any, empty: Any = ()) -> Any:
        return value if draw(st.booleans()) else empty

    def part(text: str | None) -> tuple[str, ...]:
        if not text:
            return ()
        start = draw(st.integers(0, len(text) - 1))
        piece = text[start:draw(st.integers(start + 1, len(text)))]
        return maybe((draw(st.sampled_from([piece, piece.upper(), piece.lower()])),))

    args: tuple[tuple[str, str], ...] = ()
    kwargs = json.loads(row["kwargs"])
    if kwargs:
        # The row's own value: as is, in other case, or a prefix of it.
        name = draw(st.sampled_from(sorted(kwargs)))
        text = dumps_json(kwargs[name])
        text = text[1:-1] if text.startswith('"') else text
        args = maybe(((name, draw(st.sampled_from([text, text.upper(), text[:-1] or text]))),))
    at = row["enqueued_at"]
    return Filter(
        states=maybe((row["state"],)), queues=maybe((row["queue"],)) if row["queue"] else (),
        tasks=part(row["task"]), ids=maybe((row["id"],)), args=args,
        errors=part(row["error_message"]) or part(row["error_type"]),
        words=maybe((row["id"],)) or tuple(w for w in part(row["task"]) if ":" not in w),
        since=maybe(at + draw(st.sampled_from([-1.0, 0.0, 1.0])), None) if at else None,
        before=maybe(at + draw(st.sampled_from([-1.0, 0.0, 1.0])), None) if at else None,
        priority=maybe(row["priority"], None),
        group=maybe((row["error_type"] or "", groups.normalise_message(row["error_message"])),
                    None))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS, flt=FILTERS, data=st.data())
def test_sql_selects_what_the_language_says(runtime, rows, flt, data):
    rows = [dict(row, id=f"job-{n}", args=dumps_json(row["args"]),
                 kwargs=dumps_json(row["kwargs"])) for n, row in enumerate(rows)]
    if rows and data.draw(st.booleans(), label="aim at a row"):
        flt = aimed_filter(data.draw(st.sampled_from(rows), label="row"), data.draw)
    runtime.history_db()
    Job.delete().execute()
    if rows:
        Job.insert_many(rows).execute()
    python = {row["id"] for row in rows
              if python_accepts(flt, dict(row, args=json.loads(row["args"]),
                                          kwargs=json.loads(row["kwargs"])))}
    assert run(runtime, flt) == python, flt.render()

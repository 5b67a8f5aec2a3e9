"""tq.strictjson: the one reader for JSON from outside, and the surfaces that use it.

What a user relies on: whatever way JSON enters (an HTTP body, a `tq submit
--file` line, `--args`, a dropped file's event, control state read back from
Redis), the same text is accepted or refused for the same reason, in one line
with no exception name, and nothing is half-read: a key given twice, NaN, a
number past the digit limit, bad UTF-8 or nesting past the bound is refused
before any of it is used.
"""
from __future__ import annotations

import json
import re

import pytest

from tq import strictjson
from tq.strictjson import StrictJsonError, loads

EXCEPTION_NAME = re.compile(r"\b[A-Z][a-z]+(Error|Exception)\b|Traceback")

HOSTILE = [
    ("NaN", b'[NaN]', "NaN is not a JSON number"),
    ("Infinity", b'{"a": Infinity}', "Infinity is not a JSON number"),
    ("-Infinity", b'[-Infinity]', "-Infinity is not a JSON number"),
    ("duplicate key", b'{"task": "a", "task": "b"}', 'duplicate key "task"'),
    ("duplicate key, nested", b'{"a": {"b": 1, "b": 2}}', 'duplicate key "b"'),
    ("duplicate markup key", b'{"[b]x": 1, "[b]x": 2}', 'duplicate key "[b]x"'),
    ("huge duplicate key", b'{"' + b"k" * 5000 + b'": 1, "' + b"k" * 5000 + b'": 2}',
     "duplicate key"),
    ("bad UTF-8", b'{"a": "\xff"}', "not UTF-8 (bad byte at offset 7)"),
    ("lone surrogate bytes", b'["\xed\xa0\x80"]', "not UTF-8"),
    ("deep", b"[" * 5000 + b"]" * 5000, "nested deeper than 100 levels"),
    ("deep objects", b'{"a":' * 200 + b"1" + b"}" * 200, "nested deeper than 100 levels"),
    ("long number", b"[" + b"9" * 5000 + b"]", "a number is too long"),
    ("cut", b'{"a": ', "invalid JSON"),
    ("empty", b"", "invalid JSON"),
    ("escape sequence", b"\x1b[2J", "invalid JSON"),
]


@pytest.mark.parametrize("label,raw,reason", HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_json_is_refused_in_one_line(label, raw, reason):
    with pytest.raises(StrictJsonError) as caught:
        loads(raw, max_depth=100)
    message = str(caught.value)
    assert reason in message and "\n" not in message and len(message) < 400, message
    assert not EXCEPTION_NAME.search(message), message


@pytest.mark.parametrize("raw,value", [
    (b'{"a": [1, 2.5, "x", null, true]}', {"a": [1, 2.5, "x", None, True]}),
    ('"\\ud800"', "\ud800"),  # an escaped lone surrogate is JSON: kept as sent
    ('"[bold]x[/]\\u001b[2J"', "[bold]x[/]\x1b[2J"),  # data, shown literally elsewhere
    (b"[" * 100 + b"]" * 100, json.loads("[" * 100 + "]" * 100)),
    ("[1e400]", [float("inf")]),  # a literal too large is Python's float: callers bound it
])
def test_json_is_read_as_sent(raw, value):
    assert loads(raw, max_depth=100) == value


def test_wrapper_levels_leave_the_arguments_their_depth():
    args = "[" * 100 + "]" * 100
    assert loads(f'{{"args": {args}}}', max_depth=100, wrapper_levels=1)
    with pytest.raises(StrictJsonError, match="nested deeper than 100 levels"):
        loads(f'{{"args": [{args}]}}', max_depth=100, wrapper_levels=1)


def test_every_surface_refuses_a_key_given_twice(tmp_path):
    """Before one reader, a batch line, an ingest event and a control entry took
    the last of two values for one key, while the HTTP API refused it."""
    from tq import control
    from tq.ingest.formats import Bad, parse_json_event
    from tq.submit import SubmitError, parse_spec_line
    twice = b'{"task": "tq.tasks.demo.echo", "task": "tq.tasks.demo.fail"}'
    with pytest.raises(SubmitError, match='duplicate key "task"'):
        parse_spec_line(twice)
    event = parse_json_event(b'{"type": "a", "type": "b"}')
    assert isinstance(event, Bad) and 'duplicate key "type"' in event.reason
    assert control.json_object('{"beat": 1, "beat": 2}', "heartbeat", "w1") is None
    assert strictjson.loads(b'{"beat": 1}', max_depth=2) == {"beat": 1}

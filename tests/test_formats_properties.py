"""Properties of the streaming .json reader (tq/ingest/formats.py), checked by hypothesis.

The reader sees a file only through `read()` calls, so where those calls cut the
bytes must not matter: any array of events, laid out with any white space and
cut at any read boundary, reads as the events `json.loads` finds in it, item by
item, with the item number as position. A file's first block ending in `[` (a
1 MiB read on a real file) was reported as truncated before this property found
it; the stream below returns at most `step` bytes a read, which puts a boundary
at every place in turn.
"""
from __future__ import annotations

import io
import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from tq.ingest.formats import CHUNK, Bad, read_events, read_json

LIMIT = 1 << 20
SPACE = st.text(alphabet=" \t\r\n", max_size=3)
SCALARS = (st.none() | st.booleans() | st.integers(-(10 ** 20), 10 ** 20)
           | st.floats(allow_nan=False, allow_infinity=False)
           # Quotes, backslashes and brackets inside strings are what the scanner
           # must not mistake for structure.
           | st.text(alphabet=st.sampled_from('ab"\\[]{},: \u00e9\u20ac\U0001f600\n'),
                     max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                      max_leaves=12)
EVENTS = st.dictionaries(st.text(alphabet='ab"\\[]{},:', max_size=6), VALUES, max_size=5)


class ShortReads(io.BytesIO):
    """A stream whose every read returns at most `step` bytes, as a pipe or a
    decompressor may: every byte offset becomes a read boundary for some step."""

    def __init__(self, data: bytes, step: int) -> None:
        super().__init__(data)
        self.step = step

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > self.step:
            size = self.step
        return super().read(size)


@st.composite
def documents(draw: Any) -> tuple[bytes, list[bytes], list[Any]]:
    """A .json array of events with random layout: (file bytes, each item's raw
    bytes between its separators, the events)."""
    events = draw(st.lists(EVENTS, max_size=6))
    raws = []
    for event in events:
        text = json.dumps(event, ensure_ascii=draw(st.booleans()),
                          indent=draw(st.sampled_from([None, 0, 2])),
                          separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
        raws.append((draw(SPACE) + text + draw(SPACE)).encode())
    body = b"[" + b",".join(raws) + (draw(SPACE).encode() if not raws else b"") + b"]"
    return draw(SPACE).encode() + body + draw(SPACE).encode(), raws, events


def read_all(data: bytes, step: int, limit: int = LIMIT) -> list[tuple[int, Any]]:
    return list(read_json(ShortReads(data, step), limit))


@given(documents(), st.integers(1, 64))
@example((b"[]", [], []), 1)  # `[` alone in the first read
@example((b'[{"a": 1}]', [b'{"a": 1}'], [{"a": 1}]), 1)
def test_any_array_split_anywhere_reads_as_json_loads_does(document, step):
    data, _, events = document
    assert json.loads(data) == events
    assert read_all(data, step) == list(enumerate(events, 1))


@given(documents(), st.integers(1, 64))
def test_a_utf8_bom_is_skipped_wherever_the_reads_cut(document, step):
    data, _, events = document
    # A real file is read 1 MiB at a time, so its 3-byte BOM is never split
    # across reads; the short reads here start at 3 bytes for the same reason.
    assert read_all(b"\xef\xbb\xbf" + data, max(step, 3)) == list(enumerate(events, 1))


@given(documents(), st.integers(1, 64), st.integers(2, 80))
def test_an_item_over_the_limit_is_refused_alone(document, step, limit):
    """Items over `max_event_bytes` (counted between their separators) are
    refused one by one; every other item still reads, at its own position."""
    data, raws, events = document
    expected = [(n, "big" if len(raw) > limit else event)
                for n, (raw, event) in enumerate(zip(raws, events), 1)]
    got = [(n, "big" if isinstance(value, Bad) and "max_event_bytes" in value.reason
            else value) for n, value in read_all(data, step, limit)]
    assert got == expected


@given(documents(), st.integers(1, 64), st.data())
def test_a_cut_file_ends_with_a_truncation_report_not_a_wrong_event(document, step, data):
    """A file cut short anywhere inside the array yields the whole items before
    the cut, then one Bad saying it ends early; never an event the file lacks."""
    whole, _, events = document
    end = whole.rindex(b"]")
    cut = data.draw(st.integers(whole.index(b"[") + 1, end), label="cut")
    got = read_all(whole[:cut], step)
    assert got, "a truncated array must say so"
    *items, (_, last) = got
    assert isinstance(last, Bad) and ("ends" in last.reason or "invalid JSON" in last.reason)
    for n, value in items:
        assert value == events[n - 1] or isinstance(value, Bad)


def test_a_file_whose_first_read_ends_in_the_opening_bracket_is_read_whole(tmp_path):
    """The case the property found, on a real file: white space fills the first
    1 MiB read but one byte, so that read ends with `[`."""
    path = tmp_path / "events.json"
    path.write_bytes(b" " * (CHUNK - 1) + b'[{"type": "t", "n": 1}, {"type": "t", "n": 2}]')
    assert list(read_events(path, path.name, LIMIT)) == [
        (1, {"type": "t", "n": 1}), (2, {"type": "t", "n": 2})]


@given(st.binary(max_size=200) | st.text(alphabet='[]{},:"\\ a1\n', max_size=80).map(str.encode),
       st.integers(1, 16), st.integers(1, 40))
def test_any_bytes_after_the_bracket_give_growing_positions_and_events_or_bad(
        junk, step, limit):
    """Whatever follows `[`: no exception, each value an event (a dict) or a
    Bad, and positions strictly grow, because a position is a resume checkpoint
    and the job id of the item (tq/ingest/pipeline.py)."""
    got = read_all(b"[" + junk, step, limit)
    positions = [n for n, _ in got]
    assert positions == sorted(set(positions)) and all(n >= 1 for n in positions)
    assert all(isinstance(value, (dict, Bad)) for _, value in got)


def test_an_empty_slot_is_an_item_of_its_own():
    """`[{..},,{..}]`: the second event is item 3, not a second item 2 (which
    would share a job id and a checkpoint with the empty slot)."""
    got = read_all(b'[{"n": 1},,{"n": 2},]', 4)
    assert [(n, v if isinstance(v, dict) else v.reason) for n, v in got] == [
        (1, {"n": 1}), (2, "empty item"), (3, {"n": 2}), (4, "empty item")]

"""Streaming readers for dropped files: JSON lines, JSON, CSV, each optionally gzipped.

Every reader yields `(position, value)` where position is the 1-based line
number (JSON lines, CSV: the line a record ends on) or item number (JSON
arrays), and value is the decoded event or a `Bad(reason, text)`. Positions
only grow, which is what makes them usable as a resume checkpoint. Nothing is
read whole: lines and items are read one at a time with a size cap
(`max_event_bytes`), so a 1 GB file costs the memory of one event.

A file that cannot be read at all (empty, binary, not UTF-8, broken gzip) is
found by `inspect()` in the first streaming pass, together with its size and
SHA-256, before anything is enqueued, so such a file never half-enters the
queues. (Binary and encoding are judged on the first 64 KiB of content, after
any leading blank lines; a bad byte later spoils only its line. A .json that is neither an array nor an object, or a
CSV with a bad header, raises Unreadable when the reader starts.)

Events must be JSON objects; values are only parsed by the json and csv
modules, never evaluated. Nesting deeper than MAX_DEPTH is refused here
because every later decoder (queue message, worker) would recurse on it.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from tq import strictjson

FORMATS = (".jsonl", ".ndjson", ".json", ".csv")
MAX_DEPTH = 100  # JSON nesting accepted in one event
SNIFF_BYTES = 65536
CHUNK = 1 << 20
_BOM = codecs.BOM_UTF8
BLANK = b" \t\r\n"


class Unreadable(Exception):
    """The whole file cannot be read; the message is the one-line reason."""


@dataclass(frozen=True)
class Bad:
    reason: str
    text: str = ""  # the start of the offending line or item, for the errors file


@dataclass(frozen=True)
class FileInfo:
    size: int
    sha256: str
    problem: str | None = None  # why the file cannot be read at all


def split_format(name: str) -> tuple[str, str] | None:
    """('events', '.jsonl.gz') for a supported name, else None."""
    lowered = name.lower()
    for fmt in FORMATS:
        for ext in (fmt + ".gz", fmt):
            if lowered.endswith(ext) and len(name) > len(ext):
                return name[:-len(ext)], name[-len(ext):]
    return None


def _open_raw(path: Path) -> IO[bytes]:
    return open(path, "rb", buffering=CHUNK)


def open_content(path: Path, gz: bool) -> IO[bytes]:
    """The decompressed bytes of a file, as a buffered stream."""
    # A GzipFile offers every method the readers use (read, readline).
    return cast(IO[bytes], gzip.open(path, "rb")) if gz else _open_raw(path)


def inspect(path: Path, name: str, tick: Callable[[], None] = lambda: None) -> FileInfo:
    """One streaming pass: size and SHA-256 of the file as stored, and, for a
    gzipped file, a full decompression so a broken archive is caught before
    any of it is enqueued. `problem` says why the file is unreadable, if it is."""
    parts = split_format(name)
    gz = parts is not None and parts[1].lower().endswith(".gz")
    digest = hashlib.sha256()
    size = content_size = 0
    head = bytearray()
    inflater = zlib.decompressobj(wbits=47)  # 47: a gzip (or zlib) header expected
    started = False  # the current gzip member has begun
    problem = None
    with _open_raw(path) as handle:
        while block := handle.read(CHUNK):
            size += len(block)
            digest.update(block)
            tick()
            pending = b"" if problem else block
            while pending:
                if not gz:
                    out, pending = pending, b""
                else:
                    if not started:  # gzip allows zero padding between members
                        pending = pending.lstrip(b"\x00")
                        if not pending:
                            break
                        started = True
                    try:
                        out = inflater.decompress(pending, CHUNK)
                    except zlib.error as exc:
                        problem = f"broken gzip: {exc}"
                        break
                    if inflater.eof:  # concatenated members are valid gzip
                        pending = inflater.unused_data
                        inflater, started = zlib.decompressobj(wbits=47), False
                    else:
                        pending = inflater.unconsumed_tail
                if content_size == 0 and out.startswith(_BOM):
                    out = out[len(_BOM):]
                content_size += len(out)
                if not head:  # judged by content: leading blank lines do not count
                    out = out.lstrip(BLANK)
                if len(head) < SNIFF_BYTES:
                    head += out[:SNIFF_BYTES - len(head)]
    if size == 0:
        problem = "empty file"
    elif parts is None:
        problem = "unsupported file type (use .jsonl, .ndjson, .json or .csv, optionally .gz)"
    elif problem is None and started:
        problem = "broken gzip: the file ends before the compressed data does"
    elif problem is None and content_size == 0:
        problem = "empty file"
    elif problem is None:
        problem = _sniff(bytes(head))
    return FileInfo(size, digest.hexdigest(), problem)


def _sniff(head: bytes) -> str | None:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "UTF-16 text: save the file as UTF-8"
    if b"\x00" in head:
        return "binary file (it contains NUL bytes)"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text (bad byte at offset {exc.start})"
    if not head:
        return "empty file (only white space)"
    return None


def check_event(value: Any) -> str | None:
    """Why a decoded event cannot become a job, or None."""
    if not isinstance(value, dict):
        return f"an event must be a JSON object, got {_json_kind(value)}"
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values()
                         if isinstance(child, (dict, list)))
        else:
            stack.extend((child, depth + 1) for child in item
                         if isinstance(child, (dict, list)))
    return None


def _json_kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number")


def _suspicious(raw: bytes) -> bool:
    """Cheap byte test for what check_event walks for: deep nesting."""
    return raw.count(b"[") + raw.count(b"{") > MAX_DEPTH


def parse_json_event(raw: bytes) -> Any:
    """One JSON event from bytes -> dict, or Bad."""
    try:
        value = strictjson.loads(raw, MAX_DEPTH)
    except strictjson.StrictJsonError as exc:
        return Bad(str(exc), _excerpt(raw))
    if not isinstance(value, dict) or _suspicious(raw):
        reason = check_event(value)
        if reason:
            return Bad(reason, _excerpt(raw))
    return value


def _excerpt(raw: bytes, limit: int = 200) -> str:
    return raw.strip(_SPACE)[:limit].decode("utf-8", "replace")


def _too_big(limit: int) -> str:
    return f"event is over {limit:,} bytes ([ingest] max_event_bytes)"


def _lines(stream: IO[bytes], limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line without its end) or (line number, None) for a line
    over `limit` bytes, which is skipped without being held in memory."""
    number = 0
    while True:
        line = stream.readline(limit + 2)
        if not line:
            return
        number += 1
        if number == 1 and line.startswith(_BOM):
            line = line[len(_BOM):]
        if not line.endswith(b"\n") and len(line) >= limit + 2:
            while line and not line.endswith(b"\n"):
                line = stream.readline(CHUNK)
            yield number, None
            continue
        yield number, line.rstrip(b"\r\n")


def read_jsonl(stream: IO[bytes], limit: int) -> Iterator[tuple[int, Any]]:
    for number, line in _lines(stream, limit):
        if line is None:
            yield number, Bad(_too_big(limit))
        elif len(line) > limit:
            yield number, Bad(_too_big(limit), _excerpt(line))
        elif line.strip():
            yield number, parse_json_event(line)


@dataclass
class _CsvRow:
    """What the line feeder learnt about the row the csv reader is reading."""
    line: int = 0  # the line the row ends on
    size: int = 0  # its bytes
    bad: Bad | None = None  # why it cannot be read, if it cannot


def read_csv(stream: IO[bytes], limit: int) -> Iterator[tuple[int, Any]]:
    """A header row, then one event per row (values are strings)."""
    state = _CsvRow()

    def text_lines() -> Iterator[str]:
        for number, line in _lines(stream, limit):
            state.line = number
            if line is None:
                state.bad = Bad(_too_big(limit))
                yield "\n"  # keeps the reader's count; the row is reported as bad
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                state.bad = Bad(f"not UTF-8 (bad byte at offset {exc.start})",
                                   _excerpt(line))
                yield "\n"
                continue
            state.size += len(line) + 1
            yield text + "\n"

    previous_limit = csv.field_size_limit()
    csv.field_size_limit(max(previous_limit, limit))
    reader = csv.reader(text_lines(), strict=True)
    header: list[str] | None = None
    while True:
        state.size, state.bad = 0, None
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield state.line, Bad(f"bad CSV: {exc}")
            continue
        number = state.line
        if state.bad is not None:
            yield number, state.bad
            continue
        if not row:  # a blank line
            continue
        if header is None and not "".join(row).strip():
            continue  # blank lines (spaces, tabs) before the header: not a header
        if header is None:
            header = [field.strip() for field in row]
            if len(set(header)) != len(header) or not all(header):
                raise Unreadable("the CSV header row has empty or repeated column names")
            continue
        if state.size > limit:
            yield number, Bad(_too_big(limit), _excerpt(",".join(row).encode()))
        elif len(row) != len(header):
            yield number, Bad(f"row has {len(row)} fields, the header has {len(header)}",
                              _excerpt(",".join(row).encode()))
        else:
            yield number, dict(zip(header, row))


_OUTSIDE = re.compile(rb'[\[\]{}",]')
_INSIDE = re.compile(rb'["\\]')
_SPACE = b" \t\r\n"


def read_json(stream: IO[bytes], limit: int) -> Iterator[tuple[int, Any]]:
    """A .json file: one event (an object) or an array of events, split into
    items by a small scanner that tracks strings and nesting, so a huge array
    streams and one bad item does not spoil the others."""
    block = stream.read(CHUNK)
    if block.startswith(_BOM):
        block = block[len(_BOM):]
    while not block.lstrip(_SPACE):  # only white space (or a BOM) read so far
        block = stream.read(CHUNK)
        if not block:
            return
    block = block.lstrip(_SPACE)
    if block[:1] == b"{":
        raw = block
        while len(raw) <= limit and (more := stream.read(limit + 1 - len(raw))):
            raw += more
        yield 1, Bad(_too_big(limit), _excerpt(raw)) if len(raw) > limit \
            else parse_json_event(raw)
        return
    if block[:1] != b"[":
        raise Unreadable("a .json file must hold an array of events or one event object")
    yield from _array_items(block[1:], stream, limit)


def _array_items(block: bytes, stream: IO[bytes], limit: int) -> Iterator[tuple[int, Any]]:
    """The items of an array whose `[` has been read, as (item number, value).
    Every slot between separators counts, an empty one too (`[1,,2]`: item 3
    is `2`), so positions strictly grow and each names one place in the file."""
    index = 0
    depth = 0  # nesting inside the current item
    in_string = False
    skip = 0  # an escape split across two blocks: bytes to skip in the next one
    parts: list[bytes] = []  # the current item so far (dropped once over the limit)
    size = 0
    blank = True  # the current item is only white space so far

    def take(piece: bytes) -> None:
        nonlocal size, blank
        if size + len(piece) <= limit:
            parts.append(piece)
        size += len(piece)
        blank = blank and not piece.strip(_SPACE)

    def finish() -> tuple[int, Any]:
        nonlocal index, size, blank
        raw = b"".join(parts) if size <= limit else None
        parts.clear()
        index, size, blank = index + 1, 0, True
        return (index, Bad(_too_big(limit))) if raw is None else (index, parse_json_event(raw))

    # `block` may be empty (the `[` ended the first read): the file goes on
    # until a read returns nothing, never before.
    while True:
        pos, start, end = skip, 0, len(block)
        skip = 0
        while pos < end:
            if in_string:
                match = _INSIDE.search(block, pos)
                if match is None:
                    break
                pos = match.end()
                if block[match.start()] == 0x5C:  # a backslash escapes the next byte
                    skip, pos = max(0, pos + 1 - end), pos + 1
                else:
                    in_string = False
                continue
            match = _OUTSIDE.search(block, pos)
            if match is None:
                break
            char, at, pos = block[match.start()], match.start(), match.end()
            if char == 0x22:  # "
                in_string = True
            elif char in b"[{":
                depth += 1
            elif char in b"]}" and depth > 0:
                depth -= 1
            elif char in b"]}" or depth == 0:  # the array's end, or a comma between items
                closing = char != 0x2C
                take(block[start:at])
                if not blank:
                    yield finish()
                elif not (closing and index == 0):  # `[]` holds no items
                    parts.clear()
                    index, size = index + 1, 0
                    yield index, Bad("empty item")  # `[1,,2]`, `[1,]`: a mistake
                if closing:
                    return  # anything after the closing ] is ignored
                start = pos
        take(block[start:])
        block = stream.read(CHUNK)
        if not block:
            break
    if not blank:
        position, value = finish()
        if isinstance(value, Bad):
            yield position, Bad("the file ends inside this item (truncated?)", value.text)
            return
        yield position, value
    yield index + 1, Bad("the file ends before the array's closing ]")


READERS = {".jsonl": read_jsonl, ".ndjson": read_jsonl, ".json": read_json, ".csv": read_csv}


def read_events(path: Path, name: str, limit: int) -> Iterator[tuple[int, Any]]:
    """All records of a file, as (position, event or Bad). Raises Unreadable."""
    parts = split_format(name)
    if parts is None:
        raise Unreadable("unsupported file type")
    ext = parts[1].lower()
    gz = ext.endswith(".gz")
    reader = READERS[ext[:-3] if gz else ext]
    try:
        with open_content(path, gz) as stream:
            yield from reader(stream, limit)
    except (OSError, EOFError, zlib.error) as exc:
        raise Unreadable(f"read error: {exc}") from None

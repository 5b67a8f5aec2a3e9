"""Queue messages as JSON, optionally signed with HMAC-SHA256.

Huey's default serializer is pickle: anyone who can write to the queue can run
code on the workers. tq's messages carry only JSON-safe job arguments, so we
encode them as JSON and never unpickle. With TQ_SECRET set, every message is
signed and an unsigned or wrongly signed message is refused (the consumer moves
it aside and reports it).

Job arguments are tagged JSON, the same text in a message and in history:
a datetime travels as {"$dt": iso}, a timedelta as {"$td": seconds}, an
exception as {"$err": {type, message, traceback}} (it arrives as a TaskError:
this is what an `.error()` handler receives), a tuple as {"$tuple": [items]},
a set as {"$set": [items]} and a frozenset as {"$frozenset": [items]} (items
sorted when they sort, so one set always reads the same in history), and user
data that looks like a tag as {"$esc": [key, value]}, so everything arrives as
sent. Only values inside the arguments are tagged: the positional arguments
themselves are always a JSON array (Huey keeps them as a tuple; callers hand
them over as a list, see queues._message_fields and TqHuey.job_record).

Bytes are not carried: a queue message is no place for a binary payload
(base64 would make it a third larger and history unreadable); pass a path, a
key or text. A tag is two JSON levels (its object and its array), and the
nesting bound of tq.jobspec counts JSON levels, so a tuple inside a tuple
costs four of the hundred.

Decoding is strict: a tag that does not hold what its kind holds (a $tuple
that is not an array, a $set with an unhashable or repeated member) is
nothing tq sent, and the message is refused with the tag's name.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import traceback as traceback_module
from collections.abc import Mapping
from typing import Any

from huey.serializer import Serializer

SIGNED_MARK = b"tq1:"
_TAGS = ("$dt", "$td", "$err", "$esc", "$tuple", "$set", "$frozenset")
# Exact types the C encoder writes as tagged JSON would: a value made only of
# these (and lists and dicts) takes the fast path (see _plain).
_PLAIN = frozenset({str, int, float, bool, type(None)})
ERROR_MESSAGE_LIMIT = 2_000
ERROR_TRACEBACK_LIMIT = 20_000


class MessageRefused(ValueError):
    """A queue message that is not one of ours: bad bytes, bad JSON or a bad signature."""


def exception_text(exc: BaseException) -> str:
    """str(exc), even for an exception whose __str__ raises."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__}: str() failed>"


class TaskError(Exception):
    """An exception as it travels in a message: its type name, message and
    traceback as text. tq never pickles, so the exception object itself cannot
    travel; an `.error()` handler receives one of these as its last argument."""

    def __init__(self, type: str, message: str = "", traceback: str = "") -> None:
        super().__init__(f"{type}: {message}" if message else type)
        self.type = type
        self.message = message
        self.traceback = traceback

    @classmethod
    def from_exception(cls, exc: BaseException) -> TaskError:
        if isinstance(exc, TaskError):
            return exc
        text = "".join(traceback_module.format_exception(type(exc), exc, exc.__traceback__))
        if len(text) > ERROR_TRACEBACK_LIMIT:
            text = "...\n" + text[-ERROR_TRACEBACK_LIMIT:]
        return cls(type(exc).__name__, exception_text(exc)[:ERROR_MESSAGE_LIMIT], text)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, TaskError) and (self.type, self.message, self.traceback)
                == (other.type, other.message, other.traceback))

    def __hash__(self) -> int:
        return hash((self.type, self.message))

    def __reduce__(self):
        return (TaskError, (self.type, self.message, self.traceback))


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"$td": value.total_seconds()}
    if isinstance(value, BaseException):
        error = TaskError.from_exception(value)
        return {"$err": {"type": error.type, "message": error.message,
                         "traceback": error.traceback}}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if isinstance(value, tuple):
        return {"$tuple": [_encode(item) for item in value]}
    if isinstance(value, (set, frozenset)):
        return {"$frozenset" if isinstance(value, frozenset) else "$set": [
            _encode(item) for item in _ordered(value)]}
    if isinstance(value, dict):
        encoded = {key: _encode(item) for key, item in value.items()}
        if len(encoded) == 1 and next(iter(encoded)) in _TAGS:
            # User data that looks like a tag travels escaped, so it arrives as sent.
            [(key, item)] = encoded.items()
            return {"$esc": [key, item]}
        return encoded
    return value


def _ordered(members: set | frozenset) -> list:
    try:
        return sorted(members)
    except TypeError:  # mixed kinds (1 and "a"): any order decodes to the same set
        return list(members)


def _plain(value: Any) -> bool:
    """Whether `value` is made only of str, int, float, bool, None, list and
    dict (exact types): what the C encoder writes as tagged JSON would, but
    for tag-like keys (the '"$' check after it). A tuple is not plain: the C
    encoder would write it as a list without asking. Not recursive, so a deep
    value raises no RecursionError here (the encoder raises it)."""
    stack = [value]
    pop, extend, plain = stack.pop, stack.extend, _PLAIN
    while stack:
        item = pop()
        kind = type(item)
        if kind is dict:
            extend(item.values())
        elif kind is list:
            extend(item)
        elif kind not in plain:
            return False
    return True


def _decode_hook(obj: dict) -> Any:
    if len(obj) != 1:
        return obj
    [(key, item)] = obj.items()
    if key not in _TAGS:
        return obj
    try:
        if key == "$esc":
            inner, value = item
            if isinstance(inner, str):
                return {inner: value}
        elif key == "$dt" and isinstance(item, str):
            return dt.datetime.fromisoformat(item)
        elif key == "$td" and isinstance(item, (int, float)) and not isinstance(item, bool):
            return dt.timedelta(seconds=item)
        elif key == "$err" and isinstance(item, dict) and set(item) == {
                "type", "message", "traceback"} and all(isinstance(v, str)
                                                         for v in item.values()):
            return TaskError(item["type"], item["message"], item["traceback"])
        elif key == "$tuple" and isinstance(item, list):
            return tuple(item)
        elif key in ("$set", "$frozenset") and isinstance(item, list):
            members = set(item) if key == "$set" else frozenset(item)
            if len(members) == len(item):  # tq never sends a member twice
                return members
    except (TypeError, ValueError, OverflowError):
        pass
    # A tag that does not hold what its kind holds: nothing tq sent.
    raise ValueError(f"malformed {key} value")


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps_json(value: Any) -> str:
    """Compact tagged JSON: the one encoder for job arguments everywhere in tq
    (history keeps the same text a message carries). Raises TypeError or
    ValueError for what it cannot carry (NaN, bytes, objects)."""
    # One encoder built once: json.dumps builds a new one per call with these options.
    if _plain(value):
        text = _COMPACT.encode(value)
        if '"$' not in text:  # no user data that needs escaping (see _serialize)
            return text
    return _COMPACT.encode(_encode(value))


def loads_json(text: str | bytes) -> Any:
    """The inverse of dumps_json: tagged values come back as what was sent."""
    return json.loads(text, object_hook=_decode_hook)


_MESSAGE = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # ASCII, as before


class JsonSerializer(Serializer):
    def __init__(self, secret: str = "") -> None:
        super().__init__()
        self._key = hashlib.sha256(b"tq-queue:" + secret.encode()).digest() if secret else None

    def _serialize(self, data: Any) -> bytes:
        # Most messages hold only plain JSON types and no tag-like key: encoded
        # directly, without building a copy of every value first. Anything else
        # (a datetime; a tuple, which the C encoder would write as a list) and
        # any '"$' in the result (user data that may need escaping) sends the
        # message through _encode.
        payload = None
        if _plain(data):
            payload = _MESSAGE.encode(data).encode()
            if b'"$' in payload:
                payload = None
        if payload is None:
            payload = _MESSAGE.encode(_encode(data)).encode()
        if self._key is None:
            return payload
        signature = hmac.new(self._key, payload, hashlib.sha256).hexdigest().encode()
        return SIGNED_MARK + signature + b":" + payload

    def _deserialize(self, data: bytes) -> Any:
        data = bytes(data)
        if self._key is not None:
            if not data.startswith(SIGNED_MARK):
                raise MessageRefused("unsigned message refused (TQ_SECRET is set)")
            signature, _, payload = data[len(SIGNED_MARK):].partition(b":")
            expected = hmac.new(self._key, payload, hashlib.sha256).hexdigest().encode()
            if not hmac.compare_digest(signature, expected):
                raise MessageRefused("message signature does not match")
            data = payload
        elif data.startswith(SIGNED_MARK):
            data = data[len(SIGNED_MARK):].partition(b":")[2]
        try:
            return json.loads(data.decode("utf-8"), object_hook=_decode_hook)
        except (UnicodeDecodeError, ValueError) as exc:
            raise MessageRefused(f"not a tq message: {exc}") from None


# --- history records in the outboxes ------------------------------------------
# A history record travels through the queue backend (the outboxes, see
# tq/storage/) on its way to the history database, so whoever can write to the
# queue backend could write history too. With TQ_SECRET set every record is
# signed like a message, with a key of its own (a signed message is never a
# valid record, nor the reverse), and the history writer sets aside a record
# whose signature is missing or wrong instead of writing it.

_RECORD_MARK = "tq1:"
# ASCII-only: a lone surrogate in an error message is escaped, so the record
# always reaches the outbox (a NaN too: the history writer refuses it there,
# with its reason, rather than the worker failing to hand the outcome over).
_RECORD_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=True)


def encode_record(record: Mapping[str, Any]) -> str:
    """A history record (tq/records.py; an audit entry) as JSON text: the one
    encoding of records, in an outbox (unsigned) or a file."""
    return _RECORD_ENCODER.encode(record)


def decode_record(text: str) -> Any:
    """The JSON value of an encoded record, not yet checked for shape (the
    history writer does that, and sets aside what is not a record)."""
    return json.loads(text)


class RecordRefused(ValueError):
    """An outbox record that is not ours: unsigned, forged, or not JSON."""


class RecordSigner:
    """seal() a history record for an outbox; open() one read back from it."""

    def __init__(self, secret: str = "") -> None:
        self._key = hashlib.sha256(b"tq-record:" + secret.encode()).digest() if secret else None

    @property
    def signing(self) -> bool:
        return self._key is not None

    def seal(self, record: Mapping[str, Any]) -> str:
        payload = encode_record(record)
        if self._key is None:
            return payload
        # One HMAC per record, in C (hmac.digest): submit_many signs each job's record.
        signature = hmac.digest(self._key, payload.encode(), "sha256").hex()
        return f"{_RECORD_MARK}{signature}:{payload}"

    def open(self, raw: str | bytes) -> Any:
        """The record's JSON value (not yet checked for shape); RecordRefused if
        it is unsigned or forged while TQ_SECRET is set, or not JSON at all."""
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "surrogateescape")
        if self._key is not None:
            if not raw.startswith(_RECORD_MARK):
                raise RecordRefused("bad signature: unsigned record (TQ_SECRET is set)")
            signature, _, payload = raw[len(_RECORD_MARK):].partition(":")
            expected = hmac.digest(self._key, payload.encode("utf-8", "surrogateescape"),
                                   "sha256").hex()
            if not hmac.compare_digest(signature.encode("utf-8", "surrogateescape"),
                                       expected.encode()):
                raise RecordRefused("bad signature: record signature does not match")
            raw = payload
        elif raw.startswith(_RECORD_MARK):
            raw = raw[len(_RECORD_MARK):].partition(":")[2]
        try:
            return decode_record(raw)
        except (ValueError, RecursionError) as exc:
            raise RecordRefused(f"not JSON: {str(exc)[:200]}") from None

"""Strict JSON: the one reader for JSON that comes from outside.

HTTP bodies and cursors, `tq submit --file` lines and `--args`/`--kwargs`,
dropped files' events and the control state read back from Redis all go
through `loads`, so one rule says what tq accepts as JSON:
  - UTF-8 text only (bytes are decoded here; a bad byte is named by offset);
  - no NaN, Infinity or -Infinity: Python's json reads them, no other JSON
    reader does, and a job's arguments could never be written back;
  - no key twice in one object: which one "wins" differs between readers, so a
    document that says two things is refused rather than guessed at;
  - nesting bounded, checked on the text before the parser recurses (a
    10,000-deep array would exhaust its recursion);
  - a number past Python's integer digit limit is "too long", not a crash.
Every refusal is a StrictJsonError whose text is one line, with no exception
name in it, ready to be shown after a position ("line 3: ...").
"""
from __future__ import annotations

import json
from typing import Any


class StrictJsonError(ValueError):
    """Text tq does not take as JSON; str() is the one-line reason."""


def depth_exceeds(encoded: str, limit: int) -> bool:
    """Whether JSON text nests deeper than `limit`. Fast when it plainly does not
    (fewer brackets than the limit); else one pass that skips strings."""
    if encoded.count("[") + encoded.count("{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for char in encoded:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            shown = key if len(key) <= 80 else key[:80] + "..."
            raise StrictJsonError(f"duplicate key {json.dumps(shown)}")
        result[key] = value
    return result


# One decoder, made once: json.loads with any keyword builds a new decoder per
# call, which cost more than the parse itself (5 us of a 10 us line). Sharing it
# between threads is what json.loads does with its own default decoder.
_DECODER = json.JSONDecoder(parse_constant=_no_constant, object_pairs_hook=_no_duplicates)


def loads(raw: bytes | str, max_depth: int, wrapper_levels: int = 0) -> Any:
    """`raw` as a Python value, or StrictJsonError. Values may nest `max_depth`
    levels inside `wrapper_levels` levels of the caller's own envelope (a job
    spec object and its args array are 2), and a refusal names `max_depth`."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StrictJsonError(f"not UTF-8 (bad byte at offset {exc.start})") from None
    else:
        text = raw
    too_deep = f"nested deeper than {max_depth} levels"
    if depth_exceeds(text, max_depth + wrapper_levels):
        raise StrictJsonError(too_deep)
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise StrictJsonError(too_deep) from None
    except StrictJsonError:
        raise
    except ValueError as exc:
        message = str(exc).splitlines()[0] if str(exc) else "not JSON"
        if "digits" in message:  # int() past sys.get_int_max_str_digits
            message = "a number is too long"
        raise StrictJsonError(f"invalid JSON: {message[:300]}") from None

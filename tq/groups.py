"""Failure groups: the one rule that says which failed jobs belong together.

A group is (exception type, normalised message): the first line of the message
with quoted values, UUIDs and numbers replaced by placeholders. The Failed
screen builds groups with this rule and every drill-down or bulk action on a
group selects with the same rule (the filter term `group:TYPE: MESSAGE`), so
opening a group lists exactly its jobs and acting on it touches exactly them.

SQL cannot run the normalisation, so a group is selected in two steps: an
indexable prefilter (`prefilter`: equal type, message starting with the text
before the first placeholder) and the exact test in Python (`matches`).
"""
from __future__ import annotations

import re

MESSAGE_LIMIT = 200
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f-]{27}\b")
_NUMBER = re.compile(r"\d+(\.\d+)?")
_PLACEHOLDERS = ("'…'", "<id>", "<n>")


def normalise_message(message: str | None) -> str:
    """Group failures whose messages differ only in numbers, ids and quoted values."""
    lines = (message or "").splitlines()
    text = lines[0] if lines else ""
    text = _QUOTED.sub("'…'", text)
    text = _UUID.sub("<id>", text)
    return _NUMBER.sub("<n>", text)[:MESSAGE_LIMIT]


def key_text(error_type: str | None, message: str) -> str:
    """The group as one line (the `group:` filter term's value): "TYPE: MESSAGE"."""
    return f"{error_type or ''}: {message}"


def parse_key(text: str) -> tuple[str, str]:
    """The inverse of key_text. Exception type names never hold ": "."""
    error_type, _, message = text.partition(": ")
    return error_type.strip(), message


def matches(group: tuple[str, str], error_type: str | None, message: str | None) -> bool:
    return (error_type or "") == group[0] and normalise_message(message) == group[1]


def literal_prefix(normalised: str) -> str:
    """What every message of the group starts with (before its first placeholder).

    A normalised message that was cut at MESSAGE_LIMIT, or whose text itself holds
    a placeholder's characters, still starts with this: it is only a prefilter."""
    cut = len(normalised)
    for placeholder in _PLACEHOLDERS:
        index = normalised.find(placeholder)
        if index != -1:
            cut = min(cut, index)
    # A quote opens a quoted value even if it never closes: stop before any quote.
    for quote in ("'", '"'):
        index = normalised.find(quote)
        if index != -1:
            cut = min(cut, index)
    return normalised[:cut]


def prefilter(group: tuple[str, str]):
    """A peewee expression on Job that every job of the group satisfies."""
    from tq.models import Job

    error_type, message = group
    expression = (Job.error_type == error_type) if error_type else (
        Job.error_type.is_null() | (Job.error_type == ""))
    prefix = literal_prefix(message)
    if prefix:
        expression &= Job.error_message.startswith(prefix)
    return expression

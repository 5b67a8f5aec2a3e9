"""Showing outside text literally: the one rule for every screen and every CLI line.

Everything that came from outside tq (job ids, task and queue names, arguments,
error messages, tracebacks, file names, anything read from Redis or the history
database) is data, never presentation. Two things could make it presentation:

- Rich markup: `[bold]`, `[/]`, `[link=...]` inside a string handed to Rich as
  markup is interpreted (or raises MarkupError and takes the command down).
- Terminal control: ESC sequences, carriage returns, backspaces, C1 controls
  and bidi overrides move the cursor, recolour or hide text, retitle the window.

So outside text goes through exactly one of these before it is shown:

- `literal(s)` -> a `rich.text.Text` (never parsed as markup) with control
  characters made visible: for tables, the console's cells, `Console.print`.
- `markup(s)` -> the same text escaped for embedding in a Rich markup string
  that tq writes itself (`f"[bold]id[/] {markup(job_id)}"`): the CLI.
- `console_markup(s)` -> the same for a Textual markup string: the console's
  status lines, top bars, labels, notifications and border titles. Textual's
  markup is another language: every `[` opens a tag (`[$accent]`, `[ b]`,
  `[Bold]` are tags there, not in Rich) and a backslash escapes only a `[`, so
  Rich's escaping is not enough there (and doubles backslashes).
- `visible(s)` -> a plain `str` with control characters made visible: for
  plain writes (`sys.stdout.write`, one-line errors) and for widgets that take
  plain text.

Control characters are shown as Python-style escapes (`\\x1b`, `\\r`, `\\u202e`);
a lone surrogate (what `"\\ud800"` in JSON decodes to, which no terminal can
encode) as `\\ud800`. `multiline=True` keeps newlines (and tabs) for tracebacks
and pretty-printed JSON; everywhere else a newline is shown as `\\n`, so one
value is one line.

A string given to a Rich table cell, a Textual DataTable cell, `Static`,
`Label` or `notify` is markup: outside text reaches them as `literal(...)` or
through `markup`/`console_markup`, never as a bare str.
"""
from __future__ import annotations

import re
from typing import Any

from rich.markup import escape as _escape_markup
from rich.text import Text

# C0 controls, DEL, C1 controls, the bidi embeddings/overrides/isolates, the
# line/paragraph separators, and lone surrogates.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_CONTROL_KEEP_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: Any, multiline: bool = False) -> str:
    """`value` as text with every control character shown as an escape."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    pattern = _CONTROL_KEEP_LINES if multiline else _CONTROL
    if multiline:
        text = text.replace("\r\n", "\n")
    return pattern.sub(_escape_char, text)


def _end(text: str) -> str:
    # Neither markup language can escape a backslash that is not before a `[`:
    # one ending a value would escape the `[` of the tag tq writes after it (or
    # be shown doubled when none follows). A zero-width space after it keeps it
    # a plain backslash either way.
    return text + "\u200b" if text.endswith("\\") else text


def markup(value: Any, multiline: bool = False) -> str:
    """`value` made visible and escaped for a Rich markup string (printed by a
    Console with emoji=False: Rich has no escape for `:smile:` codes)."""
    return _escape_markup(_end(visible(value, multiline)))


def console_markup(value: Any, multiline: bool = False) -> str:
    """`value` made visible and escaped for a Textual markup string: there
    `\\[` is a literal `[` whatever follows it."""
    return _end(visible(value, multiline)).replace("[", "\\[")


def literal(value: Any, style: str = "", multiline: bool = False) -> Text:
    """`value` made visible, as Rich Text: shown exactly as written."""
    return Text(visible(value, multiline), style=style)

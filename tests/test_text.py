"""Outside text is shown literally: no markup interpreted, no control character reaches the terminal."""
import io

import pytest
from rich.console import Console
from textual.content import Content

from tq.text import console_markup, literal, markup, visible

HOSTILE = [
    ("[/]", "[/]"),
    ("[bold]abc", "[bold]abc"),
    ("[link=http://x]y[/link]", "[link=http://x]y[/link]"),
    ("\\[bold]", "\\[bold]"),
    ("\x1b]0;owned\x07title", "\\x1b]0;owned\\x07title"),
    ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
    ("a\rb", "a\\rb"),
    ("a\nb", "a\\nb"),
    ("\x9b31m", "\\x9b31m"),
    ("abc\u202edcba", "abc\\u202edcba"),
    ("\ud800", "\\ud800"),
    ("", ""),
    # Tags in Textual's markup but not in Rich's, and backslashes next to tags.
    ("[$accent]x", "[$accent]x"),
    ("[ bold]x", "[ bold]x"),
    ("[Bold]x", "[Bold]x"),
    ("[@click=app.quit]q[/]", "[@click=app.quit]q[/]"),
    ("a\\", "a\\"),
    ("\\\\[b]", "\\\\[b]"),
    ("[[b]]", "[[b]]"),
    (":smile:", ":smile:"),
]
# What ends a value that ends in a backslash (see tq.text._end): invisible.
ZWSP = "\u200b"


def render(renderable) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None, legacy_windows=False,
            emoji=False).print(renderable)
    return out.getvalue().rstrip("\n")


@pytest.mark.parametrize("raw,shown", HOSTILE)
def test_shown_as_written(raw, shown):
    assert visible(raw) == shown
    assert render(literal(raw)) == shown
    assert render(f"[bold]x[/] {markup(raw)}").replace(ZWSP, "") == f"x {shown}"
    # Right after a tag and right before one: an escape must neither leak out nor
    # swallow tq's own tags.
    assert render(f"[bold]{markup(raw)}[/]x").replace(ZWSP, "") == f"{shown}x"


@pytest.mark.parametrize("raw,shown", HOSTILE)
def test_shown_as_written_in_the_console(raw, shown):
    """Textual's markup (status lines, labels, notifications) is another language."""
    content = Content.from_markup(f"[b]x[/b] {console_markup(raw)} [i]y[/i]")
    assert content.plain.replace(ZWSP, "") == f"x {shown} y"
    assert [(span.start, span.end) for span in content.spans] == [
        (0, 1), (len(content.plain) - 1, len(content.plain))]
    tight = Content.from_markup(f"[b]{console_markup(raw)}[/b]y")
    assert tight.plain.replace(ZWSP, "") == f"{shown}y"


def test_multiline_keeps_lines_only():
    assert visible("Traceback\n  line\x1b[0m", multiline=True) == "Traceback\n  line\\x1b[0m"
    assert visible("a\r\nb", multiline=True) == "a\nb"


def test_non_strings():
    assert visible(None) == ""
    assert visible(42) == "42"

"""Outside text is shown literally: no markup interpreted, no control character reaches the terminal."""
import io

import pytest
from rich.console import Console

from tq.text import literal, markup, visible

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
]


def render(renderable) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None, legacy_windows=False).print(renderable)
    return out.getvalue().rstrip("\n")


@pytest.mark.parametrize("raw,shown", HOSTILE)
def test_shown_as_written(raw, shown):
    assert visible(raw) == shown
    assert render(literal(raw)) == shown
    assert render(f"[bold]x[/] {markup(raw)}") == f"x {shown}"


def test_multiline_keeps_lines_only():
    assert visible("Traceback\n  line\x1b[0m", multiline=True) == "Traceback\n  line\\x1b[0m"
    assert visible("a\r\nb", multiline=True) == "a\nb"


def test_non_strings():
    assert visible(None) == ""
    assert visible(42) == "42"

"""One rule for how tq shows ages, times, trends and errors (tq.format), so the CLI
and the console agree: `tq status` and the Queues screen show the same age."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tq.format import first_line, fmt_age, fmt_duration, fmt_time, fmt_times, sparkline


@pytest.mark.parametrize("seconds, shown", [
    (None, ""), (0, "0s"), (-3, "0s"), (44.6, "45s"), (59.4, "59s"),
    (90, "2m"), (89, "1m"), (3599, "60m"), (3600, "1.0h"), (5400, "1.5h"),
    (86_399, "24.0h"), (86_400, "1.0d"), (3.5 * 86_400, "3.5d"),
])
def test_an_age_is_whole_below_an_hour_and_to_a_tenth_above(seconds, shown):
    assert fmt_age(seconds) == shown


def test_the_cli_and_the_console_show_the_same_age():
    from tq.cli.jobs import fmt_age as cli_age
    from tq.tui.widgets import fmt_age as console_age

    assert cli_age is console_age is fmt_age
    assert fmt_age(90) == "2m"  # the CLI said "1.5m", the console "2m"


def test_a_moment_is_utc_in_full_or_compact_beside_now():
    moment = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp()
    assert fmt_time(moment) == "2026-03-04 05:06:07"
    assert fmt_time(moment, now=moment + 3600) == "05:06:07"
    assert fmt_time(moment, now=moment + 86_400) == "03-04 05:06"
    assert fmt_time(None) == fmt_time(0) == ""


def test_moments_shown_together_get_milliseconds_only_when_seconds_would_merge_them():
    base = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp()
    assert fmt_times([base, base + 2, None], now=base) == ["05:06:07", "05:06:09", ""]
    assert fmt_times([base + 0.25, base + 0.999], now=base) == ["05:06:07.250", "05:06:07.999"]


def test_a_duration_below_a_second_is_in_milliseconds():
    assert fmt_duration(10.0, 10.25) == "250ms"
    assert fmt_duration(10.0, 100.0) == "2m"
    assert fmt_duration(None, 5.0) == ""


def test_a_sparkline_has_seven_equal_bars_above_the_baseline():
    assert sparkline([0, 1, 2, 4, 8]) == "▁▂▃▅█"
    assert sparkline([0, 0]) == "▁▁"
    # each bar is an equal seventh of the scale; a whole seventh is its own bar
    assert sparkline(list(range(8)), top=7) == "▁▂▃▄▅▆▇█"
    assert sparkline([3], top=7) == "▄"
    # any job at all is at least the first bar, over the top is the top bar
    assert sparkline([0.001, 50], top=10) == "▂█"
    # a screen's shared scale, and a gap for an unknown value
    assert sparkline([None, 5, 10], top=20) == " ▃▅"


def test_the_console_chart_uses_the_same_bars():
    from tq.tui.widgets import sparkline as console_sparkline

    assert console_sparkline([0, 1, 2, 4, 8, None], 8).plain == "▁▂▃▅█ "


class Silent(Exception):
    def __str__(self) -> str:
        return ""


class Broken(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_the_first_line_of_an_error_says_something_or_names_its_type():
    assert first_line(ValueError("bad value\nTraceback ...")) == "bad value"
    assert first_line(ValueError("\n  \n(2003, \"Can't connect\")\nmore")) == \
        "(2003, \"Can't connect\")"
    assert first_line(Silent()) == "Silent"
    assert first_line(Broken()) == "Broken"
    assert first_line(ValueError("x" * 600), limit=500) == "x" * 500
    assert first_line("") == "" and first_line("one\ntwo") == "one"

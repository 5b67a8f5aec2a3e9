"""What tq's tests rely on inside Textual, pinned so an upgrade fails here, by name.

tests/test_tui_snapshots.py waits for a screen to be steady by reading three
private flags of Textual's widgets (no public API says "nothing is owed"). It
reads them with getattr(..., False), so if a Textual release renamed one the
wait would quietly stop waiting for it and the snapshots would turn flaky;
this test makes that a clear failure instead (pyproject pins textual <9).
"""
import pytest
from textual.screen import Screen
from textual.widget import Widget

OWED = ("_layout_required", "_repaint_required", "_recompose_required")


@pytest.mark.parametrize("kind", [Widget, Screen])
@pytest.mark.parametrize("flag", OWED)
def test_the_flags_the_snapshot_wait_reads_exist(kind, flag):
    node = kind()
    assert isinstance(getattr(node, flag), bool), f"Textual no longer has {kind.__name__}.{flag}"

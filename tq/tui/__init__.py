"""`tq tui`: the live operations console (Textual)."""

"""Files taken from the watched inbox: accepted, rejected and why."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable

from tq.tui.screens.base import TqScreen
from tq.tui.widgets import StatusLine, Table, fill_table, fmt_count, fmt_time, shorten

OUTCOME_STYLE = {"rejected": "bold red", "duplicate": "yellow", "processing": "cyan",
                 "done": "green"}


class IngestScreen(TqScreen):
    TITLE = "Ingest"

    def __init__(self) -> None:
        super().__init__()
        self.loaded = False

    def compose_body(self) -> ComposeResult:
        yield StatusLine(id="status")
        table = Table(id="ingest", cursor_type="row", zebra_stripes=True)
        for name in ("file", "outcome", "accepted", "rejected", "size", "started", "finished",
                     "reason", "sha256"):
            table.add_column(name, key=name)
        yield table

    def on_mount(self) -> None:
        super().on_mount()
        self.focus_main()

    def refresh_data(self) -> None:
        self.load(self.data.ingested, self.show)

    def show(self, files: list[dict]) -> None:
        now = self.data.now()
        fill_table(self.query_one(DataTable), [
            (str(f["id"]), (
                shorten(f["name"], 40), Text(f["outcome"] or "",
                                             style=OUTCOME_STYLE.get(f["outcome"] or "", "")),
                fmt_count(f["accepted"]),
                Text(fmt_count(f["rejected"]), style="red" if f["rejected"] else ""),
                fmt_count(f["size"]), fmt_time(f["started_at"], now),
                fmt_time(f["finished_at"], now), shorten(f["reason"], 60),
                (f["sha256"] or "")[:12]))
            for f in files])
        accepted = sum(f["accepted"] or 0 for f in files)
        rejected = sum(f["rejected"] or 0 for f in files)
        self.query_one(StatusLine).update(
            f"last [b]{len(files)}[/b] files: [b]{fmt_count(accepted)}[/b] events accepted, "
            f"[b]{fmt_count(rejected)}[/b] rejected" if files else
            "no files ingested yet: drop files of JSON events in the inbox folder")
        self.loaded = True

"""Files taken from the watched inbox: accepted, rejected and why."""
from __future__ import annotations

from rich.text import Text

from tq.text import literal
from tq.tui.screens.base import TableScreen
from tq.tui.widgets import StatusLine, fmt_count, fmt_time, shorten

OUTCOME_STYLE = {"rejected": "bold red", "duplicate": "yellow", "processing": "cyan",
                 "done": "green"}


class IngestScreen(TableScreen):
    TITLE = "Ingest"
    COLUMNS = ("file", "outcome", "accepted", "rejected", "size", "started", "finished", "reason",
               "sha256", "errors file")
    FLEXIBLE = "reason"
    SOURCE = "ingested"

    def show(self, files: list[dict]) -> None:
        now = self.data.now()
        self.fill([
            (str(f["id"]), (
                shorten(f["name"], 40), literal(f["outcome"] or "",
                                                style=OUTCOME_STYLE.get(f["outcome"] or "", "")),
                fmt_count(f["accepted"]),
                Text(fmt_count(f["rejected"]), style="red" if f["rejected"] else ""),
                fmt_count(f["size"]), fmt_time(f["started_at"], now),
                fmt_time(f["finished_at"], now), shorten(f["reason"], 60),
                (f["sha256"] or "")[:12], f.get("errors_path") or ""))
            for f in files])
        accepted = sum(f["accepted"] or 0 for f in files)
        rejected = sum(f["rejected"] or 0 for f in files)
        self.query_one(StatusLine).update(
            f"last [b]{len(files)}[/b] files: [b]{fmt_count(accepted)}[/b] events accepted, "
            f"[b]{fmt_count(rejected)}[/b] rejected" if files else
            "no files ingested yet: drop files of JSON events in the inbox folder")
        self.loaded = True

"""Re-make the console captures in this folder from the snapshot tests' demo data.

    .venv/bin/python docs/console/capture.py

For each screen: `<name>.svg` (Textual's SVG export, 120x32, headless) and
`<name>.txt` (the real console in a tmux pane at 80x24, `tmux capture-pane -p`).
`capture.py serve` runs the console on the demo data in the current terminal.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

# name: (keys pressed after the Queues screen has loaded, job to open)
SCREENS = {
    "queues": ((), None),
    "jobs": (("2", "l", "l", "l", "l", "l"), None),
    "job-detail": ((), "job-f-03"),
    "failed": (("3",), None),
    "workers": (("4",), None),
    "periodic": (("5",), None),
    "ingest": (("6",), None),
    "confirm": (("R",), None),
    "help": (("question_mark",), None),
}
TMUX_KEYS = {"question_mark": "?"}


def demo_app(folder: Path, job: str | None = None):
    import pytest
    from test_tui_snapshots import NOW, build_runtime

    from tq.tui.app import TqApp
    from tq.tui.data import Data

    class Demo(TqApp):
        def on_mount(self) -> None:
            super().on_mount()
            if job:
                self.call_after_refresh(self.open_job, job)

    runtime = build_runtime(folder, pytest.MonkeyPatch())
    return Demo(Data(runtime, clock=lambda: NOW), live=False)


async def svg(name: str, keys: tuple[str, ...], job: str | None) -> None:
    folder = Path(tempfile.mkdtemp())
    app = demo_app(folder, job)
    async with app.run_test(size=(120, 32)) as pilot:
        while not getattr(app.screen, "loaded", False):
            await pilot.pause(0.01)
        await pilot.press(*keys)
        for _ in range(100):
            await app.workers.wait_for_complete()
            await pilot.pause(0.02)
        app.save_screenshot(f"{name}.svg", path=str(HERE))
    os.chdir(ROOT)  # build_runtime moved into the folder
    shutil.rmtree(folder, ignore_errors=True)


def text(name: str, keys: tuple[str, ...], job: str | None) -> None:
    session = f"tq-capture-{os.getpid()}"
    command = f"{sys.executable} {__file__} serve" + (f" --job {job}" if job else "")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24",
                    command], check=True)
    try:
        time.sleep(3)
        for key in keys:
            subprocess.run(["tmux", "send-keys", "-t", session, TMUX_KEYS.get(key, key)],
                           check=True)
            time.sleep(0.4)
        time.sleep(1.5)
        pane = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], check=True,
                              capture_output=True, text=True).stdout
        (HERE / f"{name}.txt").write_text("\n".join(line.rstrip() for line in
                                                    pane.splitlines()).rstrip() + "\n")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def serve(job: str | None) -> None:
    folder = Path(tempfile.mkdtemp())
    demo_app(folder, job).run()
    os.chdir(ROOT)
    shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[3] if sys.argv[2:3] == ["--job"] else None)
        return
    for name, (keys, job) in SCREENS.items():
        asyncio.run(svg(name, keys, job))
        text(name, keys, job)
        print(f"{name}: {name}.svg {name}.txt")


if __name__ == "__main__":
    main()

"""A read-only console (`tq tui --read-only`, what a read token's web console runs):
every action key, on every screen, is refused with one line and changes nothing.

The table is built from the screens' own bindings, so an action key added later
is covered without touching this test.
"""
from __future__ import annotations

import pytest
from textual.binding import Binding

from tq.history import write_records
from tq.models import Job
from tq.queries import status
from tq.tui.app import SCREENS, TqApp
from tq.tui.screens.base import READ_ONLY, WRITE_ACTIONS
from tq.tui.screens.job_detail import JobDetailScreen

from test_tui import failed_records, loaded, make_app, open_jobs_tab, pilot_test, until


def action_keys() -> list[tuple[str, str, str]]:
    """(screen name, key, action) for every key bound to an action that changes anything."""
    table = []
    classes = {**SCREENS, "job": JobDetailScreen}
    for name, cls in classes.items():
        for klass in reversed(cls.__mro__):
            for binding in Binding.make_bindings(klass.__dict__.get("BINDINGS", ())):
                action = binding.action.removeprefix("screen.").split("(")[0]
                if action in WRITE_ACTIONS:
                    table.append((name, binding.key, action))
    for binding in Binding.make_bindings(TqApp.BINDINGS):
        assert binding.action.split("(")[0] not in WRITE_ACTIONS
    return sorted(set(table))


ACTION_KEYS = action_keys()


def test_the_table_covers_every_action_the_console_has():
    actions = {action for _, _, action in ACTION_KEYS}
    assert actions == WRITE_ACTIONS
    assert {name for name, _, _ in ACTION_KEYS} >= {"queues", "jobs", "failed", "workers",
                                                     "periodic", "job"}


def new_notes(app: TqApp, seen: set[str]) -> list[str]:
    return [note.message for note in app._notifications if note.identity not in seen]


async def show(pilot, app: TqApp, name: str):
    if name == "job":
        await pilot.press("1")
        await loaded(pilot)
        app.open_job("f-1")
        return await loaded(pilot, JobDetailScreen)
    if name == "jobs":
        screen = await open_jobs_tab(pilot, "failed")
        await pilot.press("space")  # a marked job: the action would have a target
        return screen
    await pilot.press(str(list(SCREENS).index(name) + 1))
    return await until(pilot, lambda: app.screen if app.screen.__class__ is SCREENS[name]
                       and app.screen.loaded else None, message=f"{name} screen")


@pilot_test
async def test_every_action_key_is_refused_with_one_line_and_changes_nothing(backend):
    runtime = backend.runtime()
    write_records(runtime.history_db(), failed_records(["f-1", "f-2"]))
    before = {job.id: job.state for job in Job.select()}
    app = make_app(runtime, readonly=True)
    async with app.run_test(size=(160, 40)) as pilot:
        await loaded(pilot)
        assert "READ-ONLY" in str(app.screen.query_one("TopBar").content)
        screen, shown = None, None
        for name, key, action in ACTION_KEYS:
            if name != shown:
                if shown == "job":
                    await pilot.press("escape")
                screen, shown = await show(pilot, app, name), name
            seen = {note.identity for note in app._notifications}
            await pilot.press(key)
            await until(pilot, lambda seen=seen: new_notes(app, seen),
                        message=f"a refusal of {key} ({action}) on {name}")
            await pilot.pause()
            notes = new_notes(app, seen)
            assert notes == [READ_ONLY], (name, key, notes)
            assert app.screen is screen, f"{key} ({action}) on {name} opened a dialog"
    assert not status(runtime)["queues"]["default"]["paused"]
    assert not runtime.control.paused()
    assert {job.id: job.state for job in Job.select()} == before


def test_the_cli_takes_read_only_and_its_old_spelling():
    from tq.cli import build_parser

    for flag in ("--read-only", "--readonly"):
        assert build_parser().parse_args(["tui", flag]).readonly is True
    assert build_parser().parse_args(["tui"]).readonly is False


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])

"""Watched-folder ingest: dropped files become jobs, routed by type, exactly once.

Every test runs on both backends (embedded SQLite, Redis + MariaDB). The
watcher runs either in a thread of the test process or, where a crash or two
machines are simulated, as `tq watch` subprocesses.
"""
from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from tq.cli import main
from tq.ingest import formats
from tq.ingest.claims import Folders, OrphanFinder
from tq.ingest.pipeline import ingest_file, resume_claim
from tq.ingest.watcher import Watcher
from tq.models import Event, IngestedFile, Job

from conftest import wait_for, wait_for_states

FAST = {"TQ_INGEST_SETTLE_SECONDS": "0.2", "TQ_INGEST_POLL_INTERVAL": "0.05"}
THREE_QUEUES = """
[queues]
default = 0
orders = 0
clicks = 0
mail = 0

[routes]
order.created = orders:tq.tasks.demo.echo:7
page.click = clicks:tq.tasks.events.store_event:2
mail.sent = mail:tq.tasks.demo.echo
"""


# --- helpers -----------------------------------------------------------------------

def write_events(path: Path, events, gz: bool = False) -> Path:
    lines = "".join((event if isinstance(event, str) else json.dumps(event)) + "\n"
                    for event in events)
    path.write_bytes(gzip.compress(lines.encode()) if gz else lines.encode())
    return path


def folders(runtime) -> Folders:
    found = Folders.from_config(runtime.config)
    found.create()
    return found


def queued_ids(runtime) -> list[str]:
    """The ids of every message waiting on every queue, read from the backend."""
    ids = []
    for huey in runtime.queues.values():
        ids += [huey.deserialize_task(data).id for data in huey.storage.enqueued_items()]
    return ids


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def rows(runtime) -> list[IngestedFile]:
    runtime.history_db()
    return list(IngestedFile.select().order_by(IngestedFile.id))


def finished_rows(runtime, count: int, timeout: float = 30.0) -> list[IngestedFile]:
    """Wait for `count` files to be finished and filed away (out of processing/)."""
    processing = Folders.from_config(runtime.config).processing

    def done():
        found = [row for row in rows(runtime) if row.outcome != "processing"
                 and Path(row.path).parent != processing]
        return found if len(found) >= count else None
    return wait_for(done, timeout=timeout, interval=0.1, message=f"{count} ingested files")


class WatcherThread:
    def __init__(self, runtime) -> None:
        self.stop = threading.Event()
        self.watcher = Watcher(runtime)
        self.thread = threading.Thread(target=self.watcher.run, args=(self.stop,), daemon=True)
        self.thread.start()
        assert self.watcher.ready.wait(10), "the watcher did not start"

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


@pytest.fixture
def start_watcher():
    started: list[WatcherThread] = []

    def start(runtime) -> WatcherThread:
        started.append(WatcherThread(runtime))
        return started[-1]
    yield start
    for watcher in started:
        watcher.close()


def watch_process(backend, tmp_path: Path, **env: str) -> subprocess.Popen:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("TQ_") or key.startswith("TQ_TEST_")}
    environment.update(backend.env, **FAST, **env)
    return subprocess.Popen([sys.executable, "-m", "tq.cli", "watch"], cwd=tmp_path,
                            env=environment, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / f"watch-{time.monotonic_ns()}.log", "w"))


# --- watching ------------------------------------------------------------------------

def test_waiting_and_dropped_files_are_all_ingested(backend, start_watcher, tmp_path):
    runtime = backend.runtime(**FAST)
    place = folders(runtime)
    write_events(place.inbox / "early-1.jsonl", [{"type": "a", "n": i} for i in range(30)])
    (place.inbox / "early-2.json.gz").write_bytes(
        gzip.compress(json.dumps([{"type": "a", "n": i} for i in range(20)]).encode()))
    start_watcher(runtime)
    (place.inbox / "live.csv").write_text("type,n\n" + "".join(f"a,{i}\n" for i in range(10)))
    elsewhere = write_events(tmp_path / "moved.ndjson", [{"type": "a"}] * 5)
    os.rename(elsewhere, place.inbox / "moved.ndjson")  # moved in: no close event
    done = finished_rows(runtime, 4)
    assert sorted((row.name, row.outcome, row.accepted) for row in done) == [
        ("early-1.jsonl", "done", 30), ("early-2.json.gz", "done", 20),
        ("live.csv", "done", 10), ("moved.ndjson", "done", 5)]
    assert len(set(queued_ids(runtime))) == 65
    assert files_in(place.inbox) == [] and files_in(place.processing) == []
    assert sorted(p.name for p in files_in(place.history)) == [
        "early-1.jsonl", "early-2.json.gz", "live.csv", "moved.ndjson"]


@pytest.mark.parametrize("polling", [False, True], ids=["events", "polling"])
def test_slowly_written_file_is_taken_only_once_complete(backend, start_watcher, polling):
    # With filesystem events the writer pauses longer than settle_seconds: only the
    # close says the file is complete. Polling relies on the pause being shorter.
    runtime = backend.runtime(TQ_INGEST_POLLING=str(polling).lower(),
                              TQ_INGEST_SETTLE_SECONDS="1.0" if polling else "0.2",
                              TQ_INGEST_POLL_INTERVAL="0.05")
    place = folders(runtime)
    start_watcher(runtime)
    with open(place.inbox / "slow.jsonl", "w") as handle:
        for chunk in range(5):
            handle.write("".join(json.dumps({"type": "t", "chunk": chunk, "i": i}) + "\n"
                                 for i in range(10)))
            handle.write('{"type": "t", "half": ')  # a line cut in the middle
            handle.flush()
            time.sleep(0.4)
            handle.write('"done"}\n')
            handle.flush()
    [row] = finished_rows(runtime, 1)
    time.sleep(0.5)  # a second, premature take would show up as a second row
    assert len(rows(runtime)) == 1
    assert (row.outcome, row.accepted, row.rejected) == ("done", 55, 0)


def test_10000_events_of_three_types_land_on_three_queues(backend, start_watcher, tmp_path):
    ini = tmp_path / "tq.ini"
    ini.write_text(THREE_QUEUES)
    runtime = backend.runtime(TQ_CONFIG=str(ini), TQ_INGEST_BATCH_SIZE="1000", **FAST)
    place = folders(runtime)
    types = ["order.created", "page.click", "mail.sent"]
    events = [{"type": types[i % 3], "n": i} for i in range(10_000)]
    staged = write_events(tmp_path / "big.jsonl", events)
    start_watcher(runtime)
    os.rename(staged, place.inbox / "big.jsonl")
    [row] = finished_rows(runtime, 1, timeout=60)
    assert (row.outcome, row.accepted, row.rejected, row.checkpoint) == ("done", 10_000, 0,
                                                                        10_000)
    sizes = {name: huey.storage.queue_size() for name, huey in runtime.queues.items()}
    assert sizes == {"default": 0, "orders": 3334, "clicks": 3333, "mail": 3333}
    runtime.flush_history()  # no consumer here to write the queued rows
    jobs = Counter(Job.select(Job.queue, Job.task, Job.priority, Job.state).tuples())
    assert jobs == {("orders", "tq.tasks.demo.echo", 7, "queued"): 3334,
                    ("clicks", "tq.tasks.events.store_event", 2, "queued"): 3333,
                    ("mail", "tq.tasks.demo.echo", 0, "queued"): 3333}
    click = runtime.queues["clicks"].deserialize_task(
        runtime.queues["clicks"].storage.enqueued_items(1)[0])
    assert click.kwargs == {"event": {"type": "page.click", "n": 1}, "source": "big.jsonl",
                            "event_type": "page.click"}
    order = runtime.queues["orders"].deserialize_task(
        runtime.queues["orders"].storage.enqueued_items(1)[0])
    assert order.kwargs == {"event": {"type": "order.created", "n": 0}}
    assert [p.relative_to(place.history).parts[:3] for p in files_in(place.history)] == [
        tuple(time.strftime("%Y/%m/%d", time.gmtime(row.finished_at)).split("/"))]


def test_three_bad_lines_of_1000_make_997_jobs_and_an_errors_file(backend, tmp_path):
    ini = tmp_path / "tq.ini"
    ini.write_text("[routes]\ngood = events:tq.tasks.events.store_event\n")
    runtime = backend.runtime(TQ_CONFIG=str(ini))
    lines: list = [{"type": "good", "n": i} for i in range(1000)]
    lines[9] = '{"type": "good", "n": '          # line 10: bad JSON
    lines[499] = {"kind": "good"}                 # line 500: no type
    lines[998] = {"type": "surprise"}             # line 999: no route, no default
    result = ingest_file(runtime, write_events(tmp_path / "mixed.jsonl", lines))
    assert (result.outcome, result.accepted, result.rejected) == ("done", 997, 3)
    assert len(set(queued_ids(runtime))) == 997
    errors = [json.loads(line) for line in Path(result.errors_path).read_text().splitlines()]
    assert Path(result.errors_path) == folders(runtime).rejected / "mixed.jsonl.errors.jsonl"
    assert [(e["line"], e["reason"].split(":")[0]) for e in errors] == [
        (10, "invalid JSON"), (500, "missing type field 'type'"),
        (999, "no route for type 'surprise' and no default route")]


# --- crashes ---------------------------------------------------------------------------

def test_sigkill_mid_file_then_restart_enqueues_every_good_event_once(backend, tmp_path):
    runtime = backend.runtime()
    place = folders(runtime)
    events: list = [{"type": "t", "n": i} for i in range(30_000)]
    for bad in (5, 12_345, 29_999):
        events[bad] = "not json"
    staged = write_events(tmp_path / "large.jsonl", events)
    first = watch_process(backend, tmp_path, TQ_INGEST_BATCH_SIZE="100")
    try:
        os.rename(staged, place.inbox / "large.jsonl")
        wait_for(lambda: any(row.checkpoint >= 3000 for row in rows(runtime)), timeout=60,
                 interval=0.02, message="the watcher to be well into the file")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    [row] = rows(runtime)
    assert row.outcome == "processing" and row.checkpoint < 30_000  # killed mid-file
    assert len(files_in(place.processing)) >= 1
    second = watch_process(backend, tmp_path, TQ_INGEST_BATCH_SIZE="100")
    try:
        [row] = finished_rows(runtime, 1, timeout=60)
    finally:
        second.terminate()
        second.wait()
    assert (row.outcome, row.accepted, row.rejected) == ("done", 29_997, 3)
    ids = queued_ids(runtime)
    assert len(ids) == 29_997 and len(set(ids)) == 29_997
    runtime.flush_history()
    assert Job.select().where(Job.state == "queued").count() == 29_997
    assert files_in(place.processing) == []


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing catches it."""


def test_crash_between_queue_write_and_checkpoint_loses_and_repeats_nothing(
        backend, tmp_path, monkeypatch):
    pipeline = sys.modules["tq.ingest.pipeline"]
    runtime = backend.runtime(TQ_INGEST_BATCH_SIZE="100")
    place = folders(runtime)
    real = pipeline.enqueue
    calls = {"n": 0}

    def dies_after_third_queue_write(runtime, jobs):
        sent = real(runtime, jobs)
        calls["n"] += 1
        if calls["n"] == 3:  # batch 3 is on the queue; its checkpoint is not written
            raise Crash()
        return sent
    monkeypatch.setattr(pipeline, "enqueue", dies_after_third_queue_write)
    with pytest.raises(Crash):
        ingest_file(runtime, write_events(tmp_path / "f.jsonl",
                                          [{"type": "t", "n": i} for i in range(1000)]))
    assert len(queued_ids(runtime)) == 300 and rows(runtime)[0].checkpoint == 200
    runtime.flush_history()  # every enqueued job's queued row went with its message
    assert Job.select().count() == 300
    monkeypatch.setattr(pipeline, "enqueue", real)
    [orphan] = OrphanFinder(place).find()
    result = resume_claim(runtime, orphan, place)
    assert (result.outcome, result.accepted) == ("done", 1000)
    ids = queued_ids(runtime)
    assert len(ids) == 1000 and len(set(ids)) == 1000
    runtime.flush_history()
    assert Job.select().where(Job.state == "queued").count() == 1000


def test_two_watchers_on_one_inbox_take_each_file_once(backend, tmp_path):
    runtime = backend.runtime()
    place = folders(runtime)
    watchers = [watch_process(backend, tmp_path) for _ in range(2)]
    try:
        staging = tmp_path / "staging"
        staging.mkdir()
        for number in range(50):
            staged = write_events(staging / f"f{number:02d}.jsonl",
                                  [{"type": "t", "file": number, "n": i} for i in range(20)])
            os.rename(staged, place.inbox / staged.name)
        done = finished_rows(runtime, 50, timeout=60)
    finally:
        for watcher in watchers:
            watcher.terminate()
            watcher.wait()
    assert len(rows(runtime)) == 50
    assert sorted(row.name for row in done) == [f"f{n:02d}.jsonl" for n in range(50)]
    assert {row.outcome for row in done} == {"done"}
    ids = queued_ids(runtime)
    assert len(ids) == 1000 and len(set(ids)) == 1000
    assert len(files_in(place.history)) == 50 and files_in(place.inbox) == []


def test_same_content_twice_makes_one_set_of_jobs_unless_again(backend, tq_env, tmp_path,
                                                                capsys):
    first = write_events(tmp_path / "day.jsonl", [{"type": "t", "n": i} for i in range(40)])
    copy = tmp_path / "day-copy.jsonl"
    copy.write_bytes(first.read_bytes())
    again = tmp_path / "day-again.jsonl"
    again.write_bytes(first.read_bytes())
    from tq.runtime import current

    assert main(["ingest", str(first)]) == 0
    assert "day.jsonl: done, 40 jobs" in capsys.readouterr().out
    assert main(["ingest", str(copy), "--json"]) == 0
    [report] = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "duplicate" and "day.jsonl" in report["reason"]
    runtime = current()
    assert len(queued_ids(runtime)) == 40
    assert main(["ingest", str(again), "--again"]) == 0
    assert len(set(queued_ids(runtime))) == 80
    assert [row.outcome for row in rows(runtime)] == ["done", "duplicate", "done"]
    assert main(["ingest", str(tmp_path / "nowhere.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


# --- bad input -----------------------------------------------------------------------

def test_unreadable_files_go_to_rejected_with_a_reason(backend, tmp_path):
    runtime = backend.runtime()
    place = folders(runtime)
    (tmp_path / "binary.jsonl").write_bytes(bytes(range(256)) * 64)
    (tmp_path / "broken.jsonl.gz").write_bytes(
        gzip.compress(b"".join(b'{"type": "t", "n": %d}\n' % i for i in range(5000)))[:-200])
    (tmp_path / "notgzip.csv.gz").write_bytes(b"type,n\nt,1\n")
    (tmp_path / "latin1.csv").write_bytes("type,name\nt,caf\xe9\n".encode("latin-1"))
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "scalar.json").write_bytes(b'"just a string"')
    (tmp_path / "notes.txt").write_bytes(b"hello")
    expected = {"binary.jsonl": "binary file", "broken.jsonl.gz": "broken gzip",
                "notgzip.csv.gz": "broken gzip", "latin1.csv": "not UTF-8 text",
                "empty.jsonl": "empty file", "scalar.json": "a .json file must hold",
                "notes.txt": "unsupported file type"}
    for name in expected:
        result = ingest_file(runtime, tmp_path / name)
        assert (result.outcome, result.accepted) == ("rejected", 0), name
        assert result.reason.startswith(expected[name]), (name, result.reason)
        reason_file = place.rejected / f"{name}.reason"
        assert reason_file.read_text().strip() == result.reason
        assert (place.rejected / name).exists()
    assert queued_ids(runtime) == [] and files_in(place.processing) == []
    assert {row.outcome for row in rows(runtime)} == {"rejected"}


def test_bad_lines_within_readable_files(backend, tmp_path):
    runtime = backend.runtime(TQ_INGEST_MAX_EVENT_BYTES="3000")
    deep = '{"type": "t", "x": ' + "[" * 1000 + "]" * 1000 + "}"
    result = ingest_file(runtime, write_events(tmp_path / "deep.jsonl", [
        {"type": "t"}, deep, {"type": "t", "pad": "x" * 4000}, [1, 2], {"type": 5},
        {"type": "t", "when": {"$dt": "2020-01-01"}}, {"type": "t", "ok": True}]))
    reasons = [json.loads(line)["reason"] for line in open(result.errors_path)]
    assert (result.accepted, result.rejected) == (3, 4)
    assert [r.split(" ")[0] for r in reasons] == ["nested", "event", "an", "type"]
    csv_file = tmp_path / "ragged.csv"
    csv_file.write_text('type,user,amount\nbuy,ann,3\nbuy,bob\nbuy,cy,4,extra\n'
                        'buy,"dee, jr",5\n\nsell,eve,"6\n7"\n')
    result = ingest_file(runtime, csv_file)
    errors = [json.loads(line) for line in open(result.errors_path)]
    assert (result.accepted, result.rejected) == (3, 2)
    assert [(e["line"], e["reason"]) for e in errors] == [
        (3, "row has 2 fields, the header has 3"), (4, "row has 4 fields, the header has 3")]
    events = sorted(job.kwargs["event"]["user"] for job in (
        runtime.queues["events"].deserialize_task(data)
        for data in runtime.queues["events"].storage.enqueued_items()) if "user" in
        job.kwargs["event"])
    assert events == ["ann", "dee, jr", "eve"]
    array = tmp_path / "array.json"
    array.write_text('[{"type": "t"}, {"type": "t", oops}, 7, {"type": "t"}')
    result = ingest_file(runtime, array)
    errors = [(e["item"], e["reason"][:12]) for e in map(json.loads, open(result.errors_path))]
    assert (result.accepted, errors) == (2, [(2, "invalid JSON"), (3, "an event mus"),
                                             (5, "the file end")])


def test_symlinks_odd_names_and_paths_outside_the_inbox_are_refused(backend, start_watcher,
                                                                    tmp_path):
    runtime = backend.runtime(**FAST)
    place = folders(runtime)
    outside = tmp_path / "outside.jsonl"
    write_events(outside, [{"type": "t"}])
    os.symlink("/etc/passwd", place.inbox / "passwd.jsonl")
    os.symlink(tmp_path, place.inbox / "linked-dir")
    (place.inbox / "sub").mkdir()
    write_events(place.inbox / "sub" / "nested.jsonl", [{"type": "t"}])
    write_events(place.inbox / "new\nline.jsonl", [{"type": "t"}])
    write_events(place.inbox / "..sneaky.jsonl", [{"type": "t"}])
    write_events(place.inbox / "half.jsonl.part", [{"type": "t"}])
    write_events(place.inbox / "a..b.jsonl", [{"type": "t"}])
    before = Path("/etc/passwd").read_bytes()
    start_watcher(runtime)
    done = finished_rows(runtime, 4)
    assert sorted((row.name, row.outcome) for row in done) == [
        ("a..b.jsonl", "done"), ("linked-dir", "rejected"), ("new\nline.jsonl", "rejected"),
        ("passwd.jsonl", "rejected")]
    reasons = {row.name: row.reason for row in done}
    assert reasons["passwd.jsonl"].startswith("symlink refused")
    assert "control characters" in reasons["new\nline.jsonl"]
    assert (place.rejected / "passwd.jsonl").is_symlink()  # moved as a link, never read
    assert (place.rejected / "new_line.jsonl").read_text().startswith('{"type"')
    assert Path("/etc/passwd").read_bytes() == before
    assert len(queued_ids(runtime)) == 1  # a..b.jsonl only
    assert sorted(p.name for p in place.inbox.iterdir()) == [
        "..sneaky.jsonl", "half.jsonl.part", "sub"]
    assert outside.exists() and (place.inbox / "sub" / "nested.jsonl").exists()


def test_reading_a_large_file_keeps_memory_flat(tmp_path):
    pad = "x" * 10_000
    path = tmp_path / "big.jsonl"
    with open(path, "w") as handle:
        for i in range(3000):  # 30 MB
            handle.write(json.dumps({"type": "t", "n": i, "pad": pad}) + "\n")
    array = tmp_path / "big.json"
    with open(array, "w") as handle:
        handle.write("[" + ",".join(json.dumps({"type": "t", "n": i, "pad": pad})
                                    for i in range(3000)) + "]")
    for file in (path, array):
        tracemalloc.start()
        count = sum(1 for _, event in formats.read_events(file, file.name, 1 << 20)
                    if isinstance(event, dict))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert count == 3000
        assert peak < 8 * 1024 * 1024, f"{file.name}: peak {peak:,} bytes for a 30 MB file"


def test_tq_up_runs_the_watcher_and_stores_events(backend, start_consumer, tmp_path,
                                                  monkeypatch):
    import tq.runtime
    from tq.cli.run import up_services

    runtime = backend.runtime(**FAST)
    monkeypatch.setattr(tq.runtime, "_current", runtime)  # as `tq up` configures it
    place = folders(runtime)
    start_consumer(runtime, workers=2, services=up_services(runtime))
    write_events(tmp_path / "e.jsonl", [{"type": "signup", "user": n} for n in range(5)])
    os.rename(tmp_path / "e.jsonl", place.inbox / "e.jsonl")
    [row] = finished_rows(runtime, 1)
    ids = [f"{row.job_prefix}-{n}" for n in range(1, 6)]
    wait_for_states(runtime, ids)
    stored = sorted((e.type, e.source, json.loads(e.payload)["user"]) for e in Event.select())
    assert stored == [("signup", "e.jsonl", n) for n in range(5)]


def test_orphaned_claims_are_found_only_when_their_owner_is_gone(tmp_path):
    from tq.ingest import claims

    place = Folders(*(tmp_path / name for name in ("inbox", "processing", "history",
                                                   "rejected")))
    place.create()
    host = claims.owner_tag().split("~")[0]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = place.processing / f"{host}~1~{'a' * 32}~live.jsonl"  # pid 1 is always running
    gone = place.processing / f"{host}~{dead.pid}~{'b' * 32}~gone.jsonl"
    remote = place.processing / f"elsewhere~{dead.pid}~{'c' * 32}~remote.jsonl"
    for path in (live, gone, remote):
        path.write_text('{"type": "t"}\n')
    finder = OrphanFinder(place)
    start, after = 1000.0, claims.ORPHAN_AFTER
    assert finder.find(now=start) == [gone]  # another host's claim: not until it goes untouched
    assert finder.find(now=start + after - 1) == [gone]
    assert sorted(finder.find(now=start + after)) == sorted([gone, live, remote])  # too long
    os.utime(remote, ns=(time.time_ns(), time.time_ns() + 10**9))  # its owner touches it
    assert remote not in finder.find(now=start + after + 1)  # touched: its clock starts again
    assert remote in finder.find(now=start + 2 * after + 1)


@pytest.mark.parametrize("name, body, events", [
    ("blank-first.jsonl", b'{"type": "t", "n": 1}\n{"type": "t", "n": 2}\n', 2),
    ("blank-first.jsonl.gz", b'{"type": "t", "n": 1}\n', 1),
    ("blank-first.json", b'[{"type": "t", "n": 1}, {"type": "t", "n": 2}]', 2),
    ("blank-first.csv", b"type,n\nt,1\nt,2\n", 2),
])
def test_a_file_is_judged_by_its_content_not_its_first_64_kib(backend, tmp_path, name, body,
                                                               events):
    """70 KiB of blank lines (a BOM, spaces, CRs) before the events: not "empty"."""
    runtime = backend.runtime()
    leading = b"\xef\xbb\xbf" + b"\n" * 70_000 + b" \t\r\n" * 100
    data = leading + body
    (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    result = ingest_file(runtime, tmp_path / name)
    assert (result.outcome, result.accepted) == ("done", events), result.reason
    (tmp_path / "blank.jsonl").write_bytes(b"\n" * 100_000)
    assert formats.inspect(tmp_path / "blank.jsonl", "blank.jsonl").problem == (
        "empty file (only white space)")

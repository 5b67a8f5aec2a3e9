"""The folder watcher: takes complete files from the inbox, oldest first, one at a time.

When is a file complete?
  - With filesystem events (inotify, Linux): when it is closed after writing,
    or renamed within the inbox (write `x.jsonl.part`, rename to `x.jsonl`).
    A file moved in from elsewhere (no close event) and the files waiting when
    the watcher starts are taken once their size and mtime have not changed
    for `[ingest] settle_seconds`, unless a writer is seen to have them open
    (an open or modify event and no close yet).
  - With `[ingest] polling = true` (network filesystems, where no events cross
    machines) or where the platform reports no close events: once size and
    mtime have not changed for `settle_seconds`, checked every
    `poll_interval` seconds. Writers that pause longer than that should write
    to a `.part` or `.tmp` name (ignored) and rename when done.
Dot-files, `*.tmp` and `*.part` are never taken; sub-folders are not watched.

On start, and every ORPHAN_SCAN seconds, claims left in processing/ by a
crashed watcher (or by this one after an error such as a database outage)
are taken over and finished from their checkpoint (see claims.py).
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from tq.config import ConfigError
from tq.format import first_line
from tq.ingest.claims import Folders, OrphanFinder, ignored
from tq.ingest.pipeline import Result, check_routes, ingest_file, resume_claim

if TYPE_CHECKING:
    from tq.runtime import Runtime

logger = logging.getLogger("tq.ingest")
# watchdog logs a harmless race in its own shutdown as an error; keep it out of our logs.
logging.getLogger("watchdog.observers.inotify").addFilter(
    lambda record: "thread is inactive" not in record.getMessage())
ORPHAN_SCAN = 10.0
STALE_WRITER = 300.0
RETRY_AFTER = 30.0  # a file that could not be claimed (e.g. no permission) is retried after


class _Events(FileSystemEventHandler):
    """Hands watchdog's events (its own thread) to the watcher loop."""

    def __init__(self, sink: queue.SimpleQueue) -> None:
        self.sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.sink.put((event.event_type, event.src_path, event.dest_path))


class Watcher:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.config.ingest
        self.folders = Folders.from_config(runtime.config)
        self.settle = max(0.0, settings.settle_seconds)
        self.polling = settings.polling
        self.poll_interval = settings.poll_interval
        self.scan_every = max(0.05, min(self.poll_interval, self.settle / 2 or 1.0))
        self.close_events = False  # set once we know the observer reports closes
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._seen: dict[str, tuple[int, int, float]] = {}  # name -> size, mtime, unchanged since
        self._writing: dict[str, float] = {}  # name -> last open/write event (monotonic)
        self._complete: set[str] = set()
        self._retry: dict[str, float] = {}
        self._orphans = OrphanFinder(self.folders)
        self.ready = threading.Event()  # set once the inbox is being watched

    # --- the loop ---------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self.folders.create()
        check_routes(self.runtime)
        if os.stat(self.folders.inbox).st_dev != os.stat(self.folders.processing).st_dev:
            # A claim must be one rename; across filesystems it would be a copy that
            # two watchers could both make.
            raise ConfigError(f"[ingest] processing ({self.folders.processing}) must be on the "
                              f"same filesystem as the inbox ({self.folders.inbox})")
        observer = self._start_observer()
        try:
            resumed = self._resume(stop)
            self._scan()
            logger.info("watching %s (%s): %d file(s) waiting, %d resumed", self.folders.inbox,
                        "inotify" if self.close_events else
                        f"polling every {self.poll_interval}s", len(self._seen), resumed)
            self.ready.set()
            next_scan = next_orphans = time.monotonic()
            while not stop.is_set():
                self._drain(max(0.0, next_scan - time.monotonic()))
                if time.monotonic() >= next_scan:
                    self._scan()
                    next_scan = time.monotonic() + self.scan_every
                for name in self._ready():
                    if stop.is_set():
                        break
                    self._take(name, stop)
                    self._drain(0)
                if time.monotonic() >= next_orphans:
                    self._resume(stop)
                    next_orphans = time.monotonic() + ORPHAN_SCAN
        finally:
            self.ready.clear()
            observer.stop()
            observer.join(timeout=5)

    def _start_observer(self) -> BaseObserver:
        handler = _Events(self._events)
        if not self.polling:
            try:
                observer = Observer()
                observer.schedule(handler, str(self.folders.inbox), recursive=False)
                observer.start()
                self.close_events = type(observer).__name__ == "InotifyObserver"
                return observer
            except OSError as exc:  # e.g. the inotify watch limit
                logger.warning("filesystem events unavailable (%s); polling the inbox", exc)
        observer = PollingObserver(timeout=self.poll_interval)
        observer.schedule(handler, str(self.folders.inbox), recursive=False)
        observer.start()
        return observer

    # --- what the filesystem tells us ----------------------------------------------
    def _name(self, path: bytes | str) -> str | None:
        if not path:
            return None
        path = os.fsdecode(path)
        if os.path.dirname(path) != str(self.folders.inbox):
            return None  # only direct children of the inbox
        name = os.path.basename(path)
        return None if ignored(name) else name

    def _drain(self, timeout: float) -> None:
        try:
            item = self._events.get(timeout=timeout) if timeout > 0 else \
                self._events.get_nowait()
        except queue.Empty:
            return
        while True:
            self._on_event(*item)
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                return

    def _on_event(self, kind: str, src: bytes | str, dest: bytes | str) -> None:
        name = self._name(src)
        if kind == "moved":
            self._forget(name)
            target = self._name(dest)
            if target is not None and self.close_events:
                self._complete.add(target)
        elif kind == "deleted":
            self._forget(name)
        elif name is None or not self.close_events:
            return  # polling: the scan's size/mtime check decides
        elif kind in ("opened", "modified"):
            self._writing[name] = time.monotonic()
        elif kind == "closed":
            self._writing.pop(name, None)
            self._complete.add(name)
        elif kind == "closed_no_write":
            self._writing.pop(name, None)

    def _forget(self, name: str | None) -> None:
        if name is not None:
            self._seen.pop(name, None)
            self._writing.pop(name, None)
            self._complete.discard(name)

    def _scan(self) -> None:
        """Size and mtime of every candidate, and since when they have not changed."""
        now = time.monotonic()
        seen: dict[str, tuple[int, int, float]] = {}
        try:
            entries = list(os.scandir(self.folders.inbox))
        except FileNotFoundError:
            self.folders.create()
            entries = []
        for entry in entries:
            if ignored(entry.name):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    continue
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            previous = self._seen.get(entry.name)
            if previous is not None and previous[:2] == (info.st_size, info.st_mtime_ns):
                seen[entry.name] = previous  # unchanged since previous[2]
            else:
                seen[entry.name] = (info.st_size, info.st_mtime_ns, now)
        self._seen = seen
        for name in list(self._complete | self._writing.keys()):
            if name not in seen:
                self._forget(name)

    def _ready(self) -> list[str]:
        """Complete files, oldest first."""
        now = time.monotonic()
        names = set(self._complete)
        names.update(name for name, (_, _, since) in self._seen.items()
                     if now - since >= self.settle
                     and now - self._writing.get(name, -STALE_WRITER) >= STALE_WRITER)
        ready = []
        for name in names:
            if self._retry.get(name, 0) > now:
                continue
            try:
                ready.append((os.lstat(self.folders.inbox / name).st_mtime_ns, name))
            except FileNotFoundError:
                self._forget(name)
        return [name for _, name in sorted(ready)]

    # --- taking files -----------------------------------------------------------------
    def _take(self, name: str, stop: threading.Event) -> None:
        path = self.folders.inbox / name
        self._forget(name)
        try:
            _log(ingest_file(self.runtime, path, stop=stop))
            self._retry.pop(name, None)
        except Exception as exc:
            if os.path.lexists(path):  # not even claimed
                self._retry[name] = time.monotonic() + RETRY_AFTER
                logger.error("cannot take %r from the inbox: %s (retry in %.0fs)", name,
                             first_line(exc), RETRY_AFTER)
            else:
                logger.exception("ingesting %r failed; it stays in %s and is retried", name,
                                 self.folders.processing)

    def _resume(self, stop: threading.Event) -> int:
        resumed = 0
        for path in self._orphans.find():
            if stop.is_set():
                break
            try:
                result = resume_claim(self.runtime, path, self.folders, stop=stop)
                if result is not None:
                    _log(result)
                    resumed += 1
            except Exception as exc:
                logger.error("resuming %s failed (%s); retried in %.0fs", path.name,
                             first_line(exc), ORPHAN_SCAN)
        return resumed


def _log(result: Result) -> None:
    if result.outcome == "taken":
        return  # another watcher has it: not news
    level = logging.WARNING if result.outcome == "rejected" or result.rejected else logging.INFO
    logger.log(level, "%s", result.summary().replace("\n", "\\n"))


def watch_service(runtime: Runtime) -> Callable[[threading.Event], None]:
    """The watcher as a service for `tq up` (ConsumerGroup runs it in a thread)."""
    check_routes(runtime)
    watcher = Watcher(runtime)

    def tq_watcher(stop: threading.Event) -> None:
        watcher.run(stop)
    return tq_watcher

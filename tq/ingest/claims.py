"""Moving files between the ingest folders: claim, file away, take over.

A file is claimed by one atomic `os.rename` from the inbox into `processing/`
under a unique name that carries its owner: `HOST~PID~TOKEN~NAME` (TOKEN is
random and survives a take-over). Of two
watchers (or machines sharing the folder) renaming the same file, one wins and
the other gets FileNotFoundError, so a file is never taken twice. The owner
touches its claim every TOUCH_EVERY seconds while it works on it.

A claim left behind by a crash is an orphan and is taken over (renamed again,
so again exactly one taker wins) when its owner is this host and the process
is gone, or, for any owner, when the claim has not been touched for
ORPHAN_AFTER seconds as seen by the watcher looking at it (its own clock, so
clocks of other machines do not matter).

Files leave `processing/` by `place()`, which never overwrites: a name taken
in the destination gets a numeric suffix (`events.1.jsonl`).
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tq.history import _alive  # is a process of this host still running
from tq.ingest.formats import split_format

if TYPE_CHECKING:
    from tq.config import Config

TOUCH_EVERY = 10.0
ORPHAN_AFTER = 300.0
IGNORED_SUFFIXES = (".tmp", ".part")
# A claim name is HOST (<= 40) ~ PID ~ TOKEN (32) ~ NAME (<= 140 bytes, its end kept), so
# it and its hidden copy name stay under the usual 255-byte limit of a file name.
_NAME_LIMIT = 140
_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:40] or "host"


@dataclass(frozen=True)
class Folders:
    inbox: Path
    processing: Path
    history: Path
    rejected: Path

    @classmethod
    def from_config(cls, config: Config) -> Folders:
        ingest = config.ingest
        return cls(*(Path(folder).absolute() for folder in
                     (ingest.inbox, ingest.processing, ingest.history, ingest.rejected)))

    def create(self) -> None:
        for folder in (self.inbox, self.processing, self.history, self.rejected):
            folder.mkdir(parents=True, exist_ok=True)


def ignored(name: str) -> bool:
    """Names the watcher never takes: hidden files and files still being written."""
    return name.startswith(".") or name.lower().endswith(IGNORED_SUFFIXES)


def refusal(name: str) -> str | None:
    """Why an inbox entry's name is refused, or None."""
    if "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        return "the name escapes the inbox"
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        return "the name contains control characters (a newline?)"
    return None


def safe_name(name: str) -> str:
    """A name fit for a folder listing and a log line (control characters replaced)."""
    cleaned = re.sub(r"[\x00-\x1f\x7f/\\]", "_", name)
    return "_" + cleaned if cleaned in (".", "..", "") or cleaned.startswith(".") else cleaned


# --- claims ---------------------------------------------------------------------

def owner_tag() -> str:
    return f"{_HOST}~{os.getpid()}"


def claim_name(name: str, token: str | None = None) -> str:
    tail = name
    while len(tail.encode()) > _NAME_LIMIT:  # keep the end: it holds the format
        tail = tail[1:]
    return f"{owner_tag()}~{token or uuid.uuid4().hex}~{tail}"


def original_name(claim: str) -> str:
    parts = claim.split("~", 3)
    return parts[3] if len(parts) == 4 else claim


def claim_token(claim: str) -> str:
    """The part of a claim name that stays the same when the claim is taken over:
    it names the file's IngestedFile row and its errors file."""
    parts = claim.split("~", 3)
    return parts[2] if len(parts) == 4 else claim[:32]


def owner_of(claim: str) -> tuple[str, int] | None:
    parts = claim.split("~", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def claim(source: Path, folders: Folders, token: str | None = None) -> Path | None:
    """Move `source` into processing/ under a fresh claim name; None when another
    watcher took it first. A file on another filesystem (`tq ingest /tmp/x`) is
    copied in under a hidden name and then renamed, then the source removed."""
    target = folders.processing / claim_name(source.name, token)
    try:
        os.rename(source, target)
        return target
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    if source.is_symlink():
        raise OSError(errno.ELOOP, "symlink refused", str(source))
    hidden = folders.processing / f".copy-{target.name}"
    shutil.copyfile(source, hidden, follow_symlinks=False)
    os.rename(hidden, target)
    os.unlink(source)
    return target


def take_over(path: Path) -> Path | None:
    """Re-claim an orphaned claim for this process; None if someone else did."""
    target = path.with_name(claim_name(original_name(path.name), claim_token(path.name)))
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    return target


_active: set[str] = set()  # tokens of the claims this process is working on
_active_lock = threading.Lock()


class Holding:
    """Marks a claim as being worked on here, so this process's own orphan scan
    leaves it alone (a claim of ours that is not held is left from a failure)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __enter__(self) -> Holding:
        with _active_lock:
            _active.add(self.token)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        with _active_lock:
            _active.discard(self.token)


class Toucher:
    """Touches a claim now and then, so other watchers see its owner is alive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last = time.monotonic()

    def __call__(self) -> None:
        if time.monotonic() - self.last >= TOUCH_EVERY:
            self.last = time.monotonic()
            try:
                os.utime(self.path)
            except OSError:
                pass


class OrphanFinder:
    """Claims in processing/ whose owner is gone (see the module docstring)."""

    def __init__(self, folders: Folders) -> None:
        self.folders = folders
        self._seen: dict[str, tuple[int, float]] = {}  # claim -> (mtime_ns, first seen)

    def find(self, now: float | None = None) -> list[Path]:
        """Orphans, oldest first. A claim of this very process counts when no
        thread here holds it (left behind by an error, e.g. a database outage).
        `now`: a time.monotonic() reading (tests pass their own)."""
        now = time.monotonic() if now is None else now
        found: list[tuple[float, Path]] = []
        seen: dict[str, tuple[int, float]] = {}
        try:
            entries = list(os.scandir(self.folders.processing))
        except FileNotFoundError:
            return []
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            try:
                mtime = entry.stat(follow_symlinks=False).st_mtime_ns
            except FileNotFoundError:
                continue
            previous = self._seen.get(entry.name)
            since = previous[1] if previous and previous[0] == mtime else now
            seen[entry.name] = (mtime, since)
            owner = owner_of(entry.name)
            if owner and owner[0] == _HOST and owner[1] == os.getpid():
                with _active_lock:
                    orphan = claim_token(entry.name) not in _active
            elif owner and owner[0] == _HOST and not _alive(owner[1]):
                orphan = True
            else:
                orphan = now - since >= ORPHAN_AFTER
            if orphan:
                found.append((mtime, Path(entry.path)))
        self._seen = seen
        return [path for _, path in sorted(found)]


# --- leaving processing/ ----------------------------------------------------------

def _with_suffix(name: str, number: int) -> str:
    for ext in (".errors.jsonl", ".reason"):
        if name.endswith(ext):
            return f"{_with_suffix(name[:-len(ext)], number)}{ext}"
    parts = split_format(name)
    if parts is None:
        stem, dot, ext = name.rpartition(".")
        parts = (stem, dot + ext) if stem else (name, "")
    return f"{parts[0]}.{number}{parts[1]}"


def place(source: Path, folder: Path, name: str) -> Path:
    """Move `source` into `folder` as `name`, or `name` with a suffix when taken.
    Never overwrites: a hard link fails on an existing name, atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    name = safe_name(name)
    for number in range(0, 100_000):
        target = folder / (name if number == 0 else _with_suffix(name, number))
        try:
            os.link(source, target, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:  # a filesystem without hard links
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK,
                                 errno.EXDEV):
                raise
            if os.path.lexists(target):
                continue
            os.rename(source, target)
            return target
        os.unlink(source)
        return target
    raise OSError(errno.EEXIST, "no free name", str(folder / name))


def history_folder(folders: Folders, when: float) -> Path:
    """history/YYYY/MM/DD (UTC) for a file finished at `when`."""
    return folders.history / time.strftime("%Y/%m/%d", time.gmtime(when))

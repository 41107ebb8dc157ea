"""The prediction log's spool: append-only segment files under ``<state_dir>/spool/<database>/``.

Every answered row is appended to the active segment of its process with one ``write`` before the
answer leaves (the kernel holds the bytes, so a SIGKILLed process loses none) and fsynced every
``log_flush_seconds`` by one thread (group commit: a machine crash loses at most one flush
interval), before and independently of the database insert. A segment is deleted once each of its
rows is committed. A process owns its segments through an exclusive ``flock`` (released by the
kernel when the process dies, however it dies); at start it adopts the segments nobody holds and
replays them. Linux/POSIX only (``fcntl``).
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from autoretrain.errors import TransientError

log = logging.getLogger(__name__)

PREFIX = "predictions-"
SUFFIX = ".jsonl"
REJECTED = "rejected.jsonl"  # rows the database refused for good, with the reason (never replayed)
READ_CHUNK = 4 << 20


class SpoolError(TransientError, OSError):
    """The spool directory cannot be created, written or locked."""


@dataclass(eq=False)
class Segment:
    """One segment file: what was appended, fsynced and committed to the database (byte offsets)."""

    path: Path
    fd: int
    size: int = 0  # bytes appended (whole lines only)
    rows: int = 0  # rows appended
    synced: int = 0  # bytes fsynced
    sent: int = 0  # bytes whose rows are committed (or refused for good)
    adopted: bool = False  # left by another process: some rows may already be in the database
    retry: bool = False  # an insert from it failed once: the next attempt skips rows already there
    removed: bool = False


def spool_dir(state_path: Path, url: URL) -> Path:
    """``<state_dir>/spool/<key>``: one folder per database, so a shared state_dir never mixes logs."""
    target = f"{url.get_backend_name()}://{url.host or ''}:{url.port or ''}/{url.database or ''}"
    return state_path / "spool" / hashlib.sha256(target.encode()).hexdigest()[:12]


class Spool:
    """The segment files of one process in ``directory`` (the writer keeps their order and offsets)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._seq = itertools.count()
        self._tag = f"{os.getpid()}-{time.time_ns()}"
        self._dir_dirty = False

    def adopt(self) -> list[Segment]:
        """Create the folder; lock and return the segments no live process holds, oldest first."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as err:
            raise SpoolError(f"cannot create the prediction-log spool {self.directory}: {err}; "
                             "make state_dir (AUTORETRAIN_STATE_DIR) writable") from err
        found = []
        for path in sorted(self.directory.glob(f"{PREFIX}*{SUFFIX}"), key=_age):
            segment = self._try_adopt(path)
            if segment is not None:
                found.append(segment)
        return found

    def _try_adopt(self, path: Path) -> Segment | None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:  # replayed and deleted by another process meanwhile
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(path).st_ino != os.fstat(fd).st_ino:
                raise FileNotFoundError(path)
        except (BlockingIOError, FileNotFoundError):  # a live process owns it, or it was just deleted
            os.close(fd)
            return None
        size = os.fstat(fd).st_size
        return Segment(path=path, fd=fd, size=size, rows=_count_lines(fd, size), synced=size, adopted=True)

    def new_segment(self) -> Segment:
        """A new, empty, locked segment of this process."""
        path = self.directory / f"{PREFIX}{self._tag}-{next(self._seq):06d}{SUFFIX}"
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            raise SpoolError(f"cannot create spool segment {path}: {err}") from err
        self._dir_dirty = True
        return Segment(path=path, fd=fd)

    @staticmethod
    def append(segment: Segment, line: bytes) -> None:
        """Append one whole line; on a short or failed write, cut the segment back and raise OSError."""
        try:
            written = os.write(segment.fd, line)
        except OSError:
            os.ftruncate(segment.fd, segment.size)
            raise
        if written != len(line):  # disk full mid-line: never leave half a row in front of the next one
            os.ftruncate(segment.fd, segment.size)
            raise OSError(f"short write to {segment.path} ({written} of {len(line)} bytes): disk full?")
        segment.size += written
        segment.rows += 1

    def sync(self, segment: Segment, size: int) -> None:
        """fsync ``segment`` (its first ``size`` bytes are durable after this), and the folder if it changed."""
        if segment.synced < size and not segment.removed:
            os.fsync(segment.fd)
            segment.synced = size
        if self._dir_dirty:
            self._dir_dirty = False
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    @staticmethod
    def read(segment: Segment, *, end: int, max_rows: int) -> tuple[list[bytes], int]:
        """Up to ``max_rows`` whole lines from ``segment.sent`` to ``end``, and the bytes they span.

        A last line without its newline (a segment torn by a machine crash, never by a killed
        process) is returned as is, so that the caller counts it as unreadable.
        """
        chunk = min(READ_CHUNK, max_rows * 1024)  # ~3x an average row: one read per batch, not 4 MB
        while True:
            data = os.pread(segment.fd, min(end - segment.sent, chunk), segment.sent)
            lines = data.split(b"\n")
            tail = lines.pop()
            if lines or segment.sent + len(data) >= end:
                break
            chunk *= 2  # one line longer than the chunk
        if not lines and tail:
            return [tail], len(tail)
        lines = lines[:max_rows]
        return lines, sum(len(line) + 1 for line in lines)

    @staticmethod
    def remove(segment: Segment) -> None:
        """Delete a segment whose rows are all committed, and release it."""
        if segment.removed:
            return
        segment.removed = True
        try:
            segment.path.unlink(missing_ok=True)
        finally:
            os.close(segment.fd)

    @staticmethod
    def release(segment: Segment) -> None:
        """Close a segment that keeps rows (its lock goes; the next start replays it)."""
        if not segment.removed:
            segment.removed = True
            os.close(segment.fd)

    def reject(self, line: bytes, reason: str) -> None:
        """Keep a row the database refused for good in ``rejected.jsonl``, with the reason."""
        entry = b'{"reason":' + _json_str(reason[:500]) + b',"row":' + _json_str(line.decode(errors="replace")) + b"}\n"
        fd = os.open(self.directory / REJECTED, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, entry)
            os.fsync(fd)
        finally:
            os.close(fd)


def _json_str(value: str) -> bytes:
    return json.dumps(value).encode()


def _age(path: Path) -> tuple[float, str]:
    try:
        return path.stat().st_mtime, path.name
    except FileNotFoundError:
        return 0.0, path.name


def _count_lines(fd: int, size: int) -> int:
    count, offset = 0, 0
    while offset < size:
        data = os.pread(fd, min(READ_CHUNK, size - offset), offset)
        if not data:
            break
        count += data.count(b"\n")
        offset += len(data)
    if size and os.pread(fd, 1, size - 1) != b"\n":
        count += 1  # a torn last line still counts as a row to account for
    return count

"""Integrity and disk safety: expected checksums, digests computed while writing, and the free-space check.

Checksums. A task's expected digest is `TaskOptions.checksum`, "ALGO=HEX" (md5, sha1, sha256, sha512),
given on `get`/`add --checksum`, in the native API's create request, or read once per task from the
server's `URL.sha256` sidecar (`sha256sum` format "HEX  name", or bare hex; a 404 means none).
`Checksum.parse` is the one rule for what a checksum text may be. At the end of a run the digest is
compared (`TaskIntegrity.verify`): a mismatch renames the file to `NAME.corrupt` and fails the task
with both digests (`ChecksumMismatch`); a match is logged with the digest.

How each kind gets its digest:
- direct HTTP (segmented or one stream): `InOrderHasher` hashes while the file is written. Connections
  write pieces at scattered offsets; the hasher follows the contiguous prefix of bytes on disk. A write
  that lands at the prefix is hashed from the buffer just written; bytes written ahead of the prefix are
  read back (from the page cache: they were written moments ago) when the prefix reaches them, at most
  `CATCH_UP_PER_WRITE` bytes per write so no writer stalls, and the rest at the end. It holds one read
  chunk of memory at most, whatever the file size. A resumed download's bytes already on disk are
  hashed once, read back as the prefix reaches them (a hash state cannot be saved across runs).
- HLS, yt-dlp and a file found already complete: the final (merged) file is read once after the run.
- a direct-to-S3 upload (no local file) is not verified; the task log says so.

Disk space. Before a task whose size is known writes its first byte (the HTTP probe gives the size),
`check_space` compares what it still needs with the free space of the target filesystem, less what the
other running tasks on that filesystem still need (their total − downloaded) and the configured
reserve (`[integrity] min_free`). Too little: `WaitForSpace`, and the run goes back to waiting with the
note "waiting for disk space: needs X, Y free" (core/task_run.py, core/scheduler.py retry it when
another task finishes and every `[integrity] disk_retry` seconds). Bigger than the whole filesystem:
`NeverFits`, the task fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

from core.errors import DownloadError, InvalidInput

if TYPE_CHECKING:
    import httpx

ALGORITHMS: dict[str, int] = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}  # name → hex digits
_BY_LENGTH = {length: name for name, length in ALGORITHMS.items()}
_HEX = re.compile(r"[0-9a-fA-F]+")
READ_CHUNK = 1 << 20  # bytes read back per pread
CATCH_UP_PER_WRITE = 4 << 20  # read-back bytes a write may hash before it returns (the rest: later writes, the end)
SIDECAR_SUFFIX = ".sha256"
SIDECAR_MAX = 64 << 10  # a sidecar bigger than this is not a checksum file


# ---- checksums ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checksum:
    """An expected digest: algorithm and lower-case hex."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Checksum:
        """"sha256=HEX" (or "sha256:HEX", or bare HEX whose length names md5/sha1/sha256/sha512);
        InvalidInput says what is wrong."""
        value = text.strip()
        algorithm, sep, digest = value.partition("=")
        if not sep:
            algorithm, sep, digest = value.partition(":")
        if not sep:
            algorithm, digest = _BY_LENGTH.get(len(value), ""), value
            if not algorithm:
                raise InvalidInput(f"bad checksum {text!r}: expected ALGO=HEX with ALGO one of "
                                   f"{', '.join(ALGORITHMS)}")
        algorithm, digest = algorithm.strip().lower(), digest.strip()
        if algorithm not in ALGORITHMS:
            raise InvalidInput(f"bad checksum {text!r}: unknown algorithm {algorithm!r} "
                               f"(known: {', '.join(ALGORITHMS)})")
        if not _HEX.fullmatch(digest) or len(digest) != ALGORITHMS[algorithm]:
            raise InvalidInput(f"bad checksum {text!r}: a {algorithm} digest is {ALGORITHMS[algorithm]} hex digits")
        return cls(algorithm, digest.lower())

    def __str__(self) -> str:
        return f"{self.algorithm}={self.hex}"

    def new(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)


def normalize_checksum(text: str) -> str:
    """The stored form ("sha256=lowerhex") of a checksum text; InvalidInput if it is not one."""
    return str(Checksum.parse(text))


class ChecksumMismatch(DownloadError):
    def __init__(self, expected: Checksum, actual: str, kept: Path) -> None:
        super().__init__(f"checksum mismatch: expected {expected.algorithm} {expected.hex}, got {actual} "
                         f"(the file is kept as {kept.name})")
        self.expected = expected
        self.actual = actual
        self.kept = kept


# ---- the sidecar -------------------------------------------------------------------------------------


def sidecar_url(url: str) -> str:
    """URL + ".sha256", on the path (a query string stays after it)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path + SIDECAR_SUFFIX, fragment=""))


def parse_sidecar(text: str, url: str) -> Checksum | None:
    """The sha256 of a `sha256sum` file ("HEX  name" / "HEX *name" lines, or bare hex): the line naming
    the URL's file, else the only line. None if there is no such digest."""
    wanted = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    found: list[tuple[str, str]] = []
    for line in text.splitlines():
        words = line.strip().split(maxsplit=1)
        if not words or words[0].startswith("#"):
            continue
        digest = words[0]
        if not _HEX.fullmatch(digest) or len(digest) != ALGORITHMS["sha256"]:
            return None  # not a sha256sum file (an HTML page served with 200...)
        name = words[1].lstrip("*").strip() if len(words) > 1 else ""
        found.append((digest.lower(), name))
    named = [d for d, n in found if n and (n == wanted or n.rsplit("/", 1)[-1] == wanted)]
    if named:
        return Checksum("sha256", named[0])
    if len(found) == 1:
        return Checksum("sha256", found[0][0])
    return None


async def fetch_sidecar(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], log: Callable[[str], None]
) -> Checksum | None:
    """GET URL.sha256 once: its checksum, or None (404, any error, or not a checksum file: logged)."""
    where = sidecar_url(url)
    try:
        async with client.stream("GET", where, headers=headers) as resp:
            if resp.status_code != 200:
                return None
            body = b""
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > SIDECAR_MAX:
                    log(f"checksum sidecar {where} is too big for one: ignored")
                    return None
    except Exception as exc:
        log(f"checksum sidecar {where}: {type(exc).__name__}: ignored")
        return None
    found = parse_sidecar(body.decode("utf-8", "replace"), url)
    if found is None:
        log(f"checksum sidecar {where} has no sha256 for this file: ignored")
    return found


# ---- hashing while writing ---------------------------------------------------------------------------


class InOrderHasher:
    """The digest of a file written in pieces at any offsets, hashed in order as the prefix on disk grows.

    `wrote` runs after each write (in the writer threads or the event loop: it takes a lock). It keeps
    the written-ahead ranges (a few per connection) and one read chunk, never the data."""

    def __init__(self, checksum: Checksum, path: Path, on_disk: Iterable[tuple[int, int]] = ()) -> None:
        """path: the file being written (it exists); on_disk: [start, end) ranges already there (a resume)."""
        self.checksum = checksum
        self.pos = 0  # bytes hashed: [0, pos)
        self._hash = checksum.new()
        self._ahead: list[tuple[int, int]] = []  # written, not yet hashed: sorted, disjoint, all above pos
        self._lock = threading.Lock()
        self._fd: int | None = os.open(path, os.O_RDONLY)
        self.inode = os.fstat(self._fd).st_ino
        for start, end in on_disk:
            self._add(start, end)

    def wrote(self, offset: int, buffers: list[bytes | memoryview]) -> None:
        """`buffers` are now on disk at `offset`."""
        total = sum(len(b) for b in buffers)
        with self._lock:
            if self._fd is None:  # closed: a write that was in flight when the run ended
                return
            end = offset + total
            if offset <= self.pos < end:
                skip = self.pos - offset
                for buf in buffers:
                    if skip >= len(buf):
                        skip -= len(buf)
                        continue
                    self._hash.update(memoryview(buf)[skip:] if skip else buf)
                    skip = 0
                self.pos = end
            else:
                self._add(offset, end)
            self._catch_up(CATCH_UP_PER_WRITE)

    def _add(self, start: int, end: int) -> None:
        start = max(start, self.pos)
        if end <= start:
            return
        merged: list[tuple[int, int]] = []
        for a, b in self._ahead:
            if b < start or a > end:
                merged.append((a, b))
            else:
                start, end = min(a, start), max(b, end)
        merged.append((start, end))
        merged.sort()
        self._ahead = merged

    def _catch_up(self, budget: int | None) -> None:
        """Hash the ranges on disk that the prefix reaches (at most `budget` bytes; None: all)."""
        while self._ahead and self._ahead[0][0] <= self.pos:
            end = self._ahead[0][1]
            if end <= self.pos:
                self._ahead.pop(0)
                continue
            todo = end - self.pos if budget is None else min(end - self.pos, budget)
            if todo <= 0:
                return
            self._read_into_hash(self.pos + todo)
            if budget is not None:
                budget -= todo
            if self.pos >= end:
                self._ahead.pop(0)

    def _read_into_hash(self, until: int) -> None:
        assert self._fd is not None
        while self.pos < until:
            chunk = os.pread(self._fd, min(READ_CHUNK, until - self.pos), self.pos)
            if not chunk:
                raise DownloadError(f"checksum: the file ended at byte {self.pos} (expected {until})")
            self._hash.update(chunk)
            self.pos += len(chunk)

    def finish(self, size: int) -> str:
        """The hex digest of the first `size` bytes (whatever is not hashed yet is read now); closes."""
        with self._lock:
            try:
                if self.pos > size:
                    raise DownloadError(f"checksum: hashed {self.pos} bytes of a {size}-byte file")
                self._read_into_hash(size)
                return self._hash.hexdigest()
            finally:
                self._close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def hash_file(path: Path, checksum: Checksum) -> str:
    """The hex digest of a whole file, read once (blocking: run it in a thread)."""
    digest = checksum.new()
    with open(path, "rb") as fh:
        while chunk := fh.read(READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# ---- free space --------------------------------------------------------------------------------------


class WaitForSpace(DownloadError):
    """Not enough free space now; the task goes back to waiting (str() is its note)."""

    def __init__(self, need: int, free: int) -> None:
        super().__init__(f"waiting for disk space: needs {human(need)}, {human(max(0, free))} free")
        self.need = need
        self.free = free


class NeverFits(DownloadError):
    def __init__(self, need: int, total: int, where: Path) -> None:
        super().__init__(f"not enough disk space, ever: the file needs {human(need)} but the filesystem "
                         f"of {where} holds {human(total)} in all")


def human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


@dataclass(frozen=True, slots=True)
class Pending:
    """A running task's claim on disk space: where it writes and the bytes it still has to write."""

    folder: Path
    remaining: int


def check_space(target: Path, need: int, others: Iterable[Pending], min_free: int = 0) -> None:
    """Raise WaitForSpace or NeverFits unless `need` bytes fit in `target`'s filesystem now, next to
    what the `others` on the same filesystem still need and the `min_free` reserve."""
    usage = shutil.disk_usage(target)
    if need + min_free > usage.total:
        raise NeverFits(need, usage.total - min_free, target)
    device = os.stat(target).st_dev
    reserved = 0
    for other in others:
        with contextlib.suppress(OSError):
            if other.remaining > 0 and os.stat(other.folder).st_dev == device:
                reserved += other.remaining
    available = usage.free - reserved - min_free
    if need > available:
        raise WaitForSpace(need, available)


# ---- one run's integrity -----------------------------------------------------------------------------

SpaceCheck = Callable[[Path, int], None]


class TaskIntegrity:
    """What a run checks: its expected checksum (with the hasher of the file being written) and the
    free-space check. A downloader calls `reserve` before it writes and `track` when it opens the file it
    writes; the runner calls `verify` on the result and `close` at the end. The default checks nothing."""

    def __init__(self, checksum: Checksum | None = None, space: SpaceCheck | None = None) -> None:
        self.checksum = checksum
        self._space = space
        self.hasher: InOrderHasher | None = None

    def reserve(self, folder: Path, need: int) -> None:
        """Raise WaitForSpace/NeverFits unless `need` more bytes fit under `folder` (no-op without a check)."""
        if self._space is not None and need > 0:
            self._space(folder, need)

    def track(self, path: Path, on_disk: Iterable[tuple[int, int]] = ()) -> InOrderHasher | None:
        """Start hashing `path` (being written; `on_disk` ranges already there); None without a checksum."""
        self.close()
        if self.checksum is not None:
            self.hasher = InOrderHasher(self.checksum, path, on_disk)
        return self.hasher

    async def verify(self, path: Path, log: Callable[[str], None]) -> None:
        """Compare `path`'s digest with the expected one: log it, or rename to NAME.corrupt and raise."""
        checksum = self.checksum
        if checksum is None:
            return
        hasher, self.hasher = self.hasher, None
        if not path.is_file():  # e.g. an HLS task kept as segments (no_merge)
            if hasher is not None:
                hasher.close()
            log(f"checksum not verified: the result is not one file ({path.name})")
            return
        stat = path.stat()
        if hasher is not None and hasher.inode == stat.st_ino:
            actual = await asyncio.to_thread(hasher.finish, stat.st_size)
        else:
            if hasher is not None:
                hasher.close()
            actual = await asyncio.to_thread(hash_file, path, checksum)
        if actual != checksum.hex:
            kept = path.with_name(path.name + ".corrupt")
            os.replace(path, kept)
            raise ChecksumMismatch(checksum, actual, kept)
        log(f"checksum ok: {checksum.algorithm} {actual}")

    def close(self) -> None:
        if self.hasher is not None:
            self.hasher.close()
            self.hasher = None

"""Where finished segments wait for the merge: one pack file per stream plus an index.

    <work>/<role>/segments.pack   segment bytes (decrypted), appended as segments finish
    <work>/<role>/segments.idx    one line "seq offset size" per segment, written *after* its bytes

Why not one file per segment: creating a file costs ~1 ms of kernel CPU on
the ext4 these downloads were measured on, a third of the whole CPU budget
for a 600-segment stream; appending to one open file costs two writes.

Crash safety is the same as temp-file-plus-rename: a segment counts as done
only once its index line exists, and that line is written after its bytes.
On resume the index is read, each entry checked against the pack's size
(so a torn tail is ignored), and the pack is cut back to the end of the
last good entry; a kill -9 mid-segment just means that segment is fetched
again. A VOD going into one .ts file is stored in playlist order (pool.InOrder),
so its pack *is* the output: merge renames it instead of copying it. Init
sections (EXT-X-MAP, few and small) are separate files written via a temp name
and a rename.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from pathlib import Path

from core.downloaders.hls.playlist import InitSection
from core.errors import NoSpaceLeft


def _nospace(exc: OSError, path: Path) -> Exception:
    return NoSpaceLeft(str(path)) if exc.errno == errno.ENOSPC else exc


def write_file(path: Path, data: bytes | memoryview) -> None:
    """Write via a temp name and rename: the final name only ever holds whole files."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _nospace(exc, path) from exc


def _write_all(fd: int, data: bytes | memoryview, offset: int | None = None) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view) if offset is None else os.pwrite(fd, view, offset)
        if offset is not None:
            offset += n
        view = view[n:]


def init_key(init: InitSection) -> str:
    return hashlib.sha1(init.ident.encode()).hexdigest()[:12]


class SegmentStore:
    """One stream's finished segments (by media sequence number) and init sections."""

    def __init__(self, folder: Path, ext: str) -> None:
        self.folder = folder
        self.ext = ext  # of exported segment files: .ts or .m4s
        self.done: dict[int, int] = {}  # seq -> size
        self._offsets: dict[int, int] = {}
        self._end = 0
        self._pack: int | None = None
        self._index: int | None = None
        self.inits: dict[str, int] = {}  # init key -> size

    @property
    def pack_path(self) -> Path:
        return self.folder / "segments.pack"

    @property
    def index_path(self) -> Path:
        return self.folder / "segments.idx"

    # ---- open / resume ----------------------------------------------------
    def scan(self) -> None:
        """Open (creating) the pack and index; keep every entry the pack really holds."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.close()
        self.done.clear()
        self._offsets.clear()
        self._pack = os.open(self.pack_path, os.O_RDWR | os.O_CREAT, 0o644)
        size = os.fstat(self._pack).st_size
        good: list[str] = []
        end = 0
        try:
            text = self.index_path.read_text("ascii", errors="replace")
        except FileNotFoundError:
            text = ""
        for line in text.splitlines(keepends=True):
            parts = line.split()
            if not line.endswith("\n") or len(parts) != 3 or not all(p.isdigit() for p in parts):
                break  # a torn last line
            seq, offset, length = (int(p) for p in parts)
            if offset + length > size:
                break
            self.done[seq], self._offsets[seq] = length, offset
            end = max(end, offset + length)
            good.append(line)
        if len(good) != len(text.splitlines()) or end != size:
            os.ftruncate(self._pack, end)
            write_file(self.index_path, "".join(good).encode("ascii"))
        self._end = end
        self._index = os.open(self.index_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._scan_inits()

    def _scan_inits(self) -> None:
        self.inits.clear()
        for entry in os.scandir(self.folder):
            name = entry.name
            if name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            elif name.startswith("init-") and name.endswith(".mp4"):
                key, _, size = name[5:-4].partition("-")
                if size.isdigit() and entry.stat().st_size == int(size):
                    self.inits[key] = int(size)

    def close(self) -> None:
        for fd in (self._pack, self._index):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._pack = self._index = None

    # ---- segments -----------------------------------------------------------
    def save(self, seq: int, data: bytes | memoryview) -> None:
        """Append the bytes, then the index line: only then does the segment count."""
        assert self._pack is not None and self._index is not None, "scan() first"
        offset, size = self._end, len(data)
        try:
            _write_all(self._pack, data, offset)
            self._end = offset + size
            os.write(self._index, f"{seq} {offset} {size}\n".encode("ascii"))
        except OSError as exc:
            raise _nospace(exc, self.pack_path) from exc
        self.done[seq], self._offsets[seq] = size, offset

    def span(self, seq: int) -> tuple[int, int]:
        """(offset, size) of a segment in the pack."""
        return self._offsets[seq], self.done[seq]

    def read(self, seq: int) -> bytes:
        assert self._pack is not None
        return os.pread(self._pack, self.done[seq], self._offsets[seq])

    def copy_into(self, out_fd: int, seq: int) -> None:
        """Append one segment to out_fd, copied inside the kernel where possible."""
        assert self._pack is not None
        offset, left = self._offsets[seq], self.done[seq]
        try:
            while left > 0:
                n = os.copy_file_range(self._pack, out_fd, left, offset)
                if n == 0:
                    raise OSError(errno.EIO, "short copy")
                offset += n
                left -= n
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise
            os.write(out_fd, os.pread(self._pack, left, offset))

    def holds_in_order(self, seqs: list[int]) -> bool:
        """Whether the pack is exactly these segments back to back, in this order: their concatenation."""
        end = 0
        for seq in seqs:
            if self._offsets.get(seq) != end:
                return False
            end += self.done[seq]
        return end == self._end

    def take_pack(self, target: Path) -> None:
        """Rename the pack to `target` (a concatenation: see holds_in_order); the store is empty after."""
        self.close()
        os.replace(self.pack_path, target)
        self.index_path.unlink(missing_ok=True)
        self.done.clear()
        self._offsets.clear()
        self._end = 0

    def export(self, seq: int, path: Path) -> None:
        """The segment as a file of its own (kept segments, no-merge output)."""
        write_file(path, self.read(seq))

    def forget(self, seq: int) -> None:
        """Live: the segment is in the recording now; empty the pack once nothing is pending."""
        self.done.pop(seq, None)
        self._offsets.pop(seq, None)
        if not self.done and self._end and self._pack is not None and self._index is not None:
            os.ftruncate(self._pack, 0)
            os.ftruncate(self._index, 0)
            self._end = 0

    def remove_pack(self) -> None:
        self.close()
        self.pack_path.unlink(missing_ok=True)
        self.index_path.unlink(missing_ok=True)

    # ---- init sections ------------------------------------------------------
    def init_path(self, init: InitSection) -> Path | None:
        key = init_key(init)
        size = self.inits.get(key)
        return None if size is None else self.folder / f"init-{key}-{size}.mp4"

    def save_init(self, init: InitSection, data: bytes) -> None:
        key = init_key(init)
        write_file(self.folder / f"init-{key}-{len(data)}.mp4", data)
        self.inits[key] = len(data)

"""Resume state of a segmented HTTP download, kept beside the .part file.

The state lists segments as [start, pos, end): bytes start..pos are on disk.
It is written atomically (temp file + rename) every quarter second while bytes
reach the disk and when the download stops, and always *after* the data it describes was written, so a
kill -9 at any moment leaves a state that under-claims, never over-claims.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(slots=True)
class Segment:
    start: int
    pos: int
    end: int  # exclusive
    owned: bool = False
    last_progress: float = 0.0  # monotonic time the owner last received bytes
    received: int = 0  # the owner's receive cursor: bytes up to here are on disk or in memory

    @property
    def remaining(self) -> int:
        """Bytes not yet on disk."""
        return max(0, self.end - self.pos)

    @property
    def unclaimed(self) -> int:
        """Bytes nobody has received yet (what work stealing may split)."""
        return max(0, self.end - max(self.pos, self.received))

    def mark_received(self, cursor: int) -> None:
        self.received = cursor
        self.last_progress = time.monotonic()


@dataclass(slots=True)
class RemoteIdentity:
    """What identifies the remote file: a resume continues only if it matches."""

    url: str
    size: int
    etag: str | None
    last_modified: str | None

    def matches(self, other: RemoteIdentity) -> bool:
        if self.size != other.size:
            return False
        if self.etag and other.etag:
            return self.etag == other.etag
        if self.last_modified and other.last_modified:
            return self.last_modified == other.last_modified
        return not (self.etag or other.etag or self.last_modified or other.last_modified)

    @property
    def if_range(self) -> str | None:
        """A strong validator for If-Range (weak ETags are not allowed there)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified


@dataclass(slots=True)
class SegmentPlan:
    """The segments of one download and the work-stealing policy over them."""

    size: int
    segments: list[Segment] = field(default_factory=list)
    min_split: int = 1 << 20
    stall_after: float = 4.0  # seconds without a byte before a free connection takes over

    @classmethod
    def fresh(cls, size: int, parts: int, min_split: int = 1 << 20) -> SegmentPlan:
        parts = max(1, min(parts, size // min_split or 1))
        step = size // parts
        bounds = [i * step for i in range(parts)] + [size]
        segments = [Segment(bounds[i], bounds[i], bounds[i + 1]) for i in range(parts)]
        return cls(size=size, segments=segments, min_split=min_split)

    @property
    def done_bytes(self) -> int:
        return sum(s.pos - s.start for s in self.segments)

    @property
    def complete(self) -> bool:
        return all(s.remaining == 0 for s in self.segments)

    def take(self, now: float | None = None) -> Segment | None:
        """Work for a free connection, or None if there is none right now.

        In order: an unowned segment with work left; the whole remainder of a
        stalled segment (its owner gets nothing more to write); half of the
        busiest segment (work stealing, so no connection is left with a long tail).
        """
        now = time.monotonic() if now is None else now
        for seg in self.segments:
            if not seg.owned and seg.remaining > 0:
                seg.owned = True
                seg.last_progress = now
                seg.received = seg.pos
                return seg
        busy = [s for s in self.segments if s.owned and s.remaining > 0]
        stalled = [s for s in busy if now - s.last_progress > self.stall_after]
        if stalled:
            # Take everything not on disk: the stalled owner's unwritten bytes are dropped.
            stuck = max(stalled, key=lambda s: s.remaining)
            return self._split(stuck, stuck.pos, now)
        victim = max(busy, key=lambda s: s.unclaimed, default=None)
        if victim is None or victim.unclaimed < 2 * self.min_split:
            return None
        first_free = max(victim.pos, victim.received)
        mid = first_free + victim.unclaimed // 2
        mid -= mid % (64 * 1024)
        return self._split(victim, max(mid, first_free), now)

    def _split(self, victim: Segment, at: int, now: float) -> Segment:
        stolen = Segment(at, at, victim.end, owned=True, last_progress=now, received=at)
        victim.end = at
        self.segments.append(stolen)
        return stolen

    def release(self, seg: Segment) -> None:
        seg.owned = False

    def compact(self) -> None:
        """Merge finished neighbours so the state file stays small."""
        ordered = sorted(self.segments, key=lambda s: s.start)
        merged: list[Segment] = []
        for seg in ordered:
            prev = merged[-1] if merged else None
            if prev and prev.remaining == 0 and not prev.owned and not seg.owned and prev.end == seg.start:
                prev.pos = seg.pos
                prev.end = seg.end
            else:
                merged.append(seg)
        self.segments = merged


def state_snapshot(identity: RemoteIdentity, plan: SegmentPlan) -> bytes:
    """The resume state as of now (take it on the event loop, where the plan changes)."""
    data = {
        "version": 1,
        "url": identity.url,
        "size": identity.size,
        "etag": identity.etag,
        "last_modified": identity.last_modified,
        "segments": [[s.start, s.pos, s.end] for s in sorted(plan.segments, key=lambda s: s.start)],
    }
    return json.dumps(data).encode("utf-8")


def write_state(path: Path, snapshot: bytes) -> None:
    """Replace the state file atomically (blocking: run it in a thread from the event loop)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(snapshot)
    os.replace(tmp, path)


def save_state(path: Path, identity: RemoteIdentity, plan: SegmentPlan) -> None:
    write_state(path, state_snapshot(identity, plan))


def load_state(path: Path) -> tuple[RemoteIdentity, SegmentPlan] | None:
    """The saved state, or None if missing or unreadable (then the download starts over)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        identity = RemoteIdentity(
            url=str(data["url"]), size=int(data["size"]), etag=data.get("etag"),
            last_modified=data.get("last_modified"),
        )
        segments = [Segment(int(a), int(b), int(c)) for a, b, c in data["segments"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    covered = sorted(segments, key=lambda s: s.start)
    cursor = 0
    for seg in covered:  # segments must tile [0, size) exactly
        if seg.start != cursor or not seg.start <= seg.pos <= seg.end:
            return None
        cursor = seg.end
    if cursor != identity.size:
        return None
    return identity, SegmentPlan(size=identity.size, segments=covered)


def discard_state(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

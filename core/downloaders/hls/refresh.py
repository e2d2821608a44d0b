"""Expired segment and key URLs of a VOD download, renewed from the task's playlist URL.

The rules (what counts as expired, how often a task may refresh) are
core/downloaders/refresh.py's; this module applies them to a running HLS job: the task's
URL (master or media playlist) is fetched again, the new playlist's segments
are mapped onto the old ones by position (media sequence, count, durations,
byte ranges and encryption must agree), and the segment pool carries on with
the new segment and key URLs. Finished segments stay in the segment store;
init sections (fetched before any segment) are not fetched again.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from core.downloaders.hls.playlist import MediaPlaylist, MediaSegment
from core.downloaders.refresh import RefreshBudget, is_expired, limit_reason
from core.errors import DownloadError, HttpStatusError

DURATION_TOLERANCE = 0.05  # seconds two EXTINF values of the same segment may differ by (rounding)
T = TypeVar("T")


class PlaylistMismatch(DownloadError):
    """The re-fetched playlist is not the stream being downloaded."""


def renew_segments(old: MediaPlaylist, new: MediaPlaylist) -> dict[int, MediaSegment]:
    """Old segment's seq → the same segment with the new playlist's URLs (its key's too).

    Segments are matched by position; the media sequence, the count, each
    duration and byte range must agree, or PlaylistMismatch says what differs.
    The init section (fetched before any segment) and the media sequence stay
    the old ones: they are what the segment store and the merge know.
    """
    if new.media_sequence != old.media_sequence:
        raise PlaylistMismatch(f"its media sequence starts at {new.media_sequence}, not {old.media_sequence}")
    if len(new.segments) != len(old.segments):
        raise PlaylistMismatch(f"it lists {len(new.segments)} segments, not {len(old.segments)}")
    out: dict[int, MediaSegment] = {}
    for position, (was, now) in enumerate(zip(old.segments, new.segments, strict=True), 1):
        if abs(was.duration - now.duration) > DURATION_TOLERANCE:
            raise PlaylistMismatch(f"segment {position} lasts {now.duration:g} s, not {was.duration:g} s")
        if was.byterange != now.byterange:
            raise PlaylistMismatch(f"segment {position} has another byte range")
        if (was.key is None) != (now.key is None) or (was.key and now.key and was.key.iv != now.key.iv):
            raise PlaylistMismatch(f"segment {position} is encrypted differently")
        out[was.seq] = dataclasses.replace(was, url=now.url, key=now.key)
    return out


Reload = Callable[[], Awaitable[Sequence[tuple[str, str, MediaPlaylist]]]]


class PlaylistRefresher:
    """One VOD run's expired-link refresh: re-fetch the playlist(s), renew segment and key URLs.

    Workers call `fetch(role, seg, get)`: `get(segment)` fetches (and
    decrypts) with the segment's current URLs; a 403/410 from it re-fetches
    the playlist once (workers failing at the same time wait for that one
    refresh) and tries again with the renewed URLs.
    """

    def __init__(
        self, task_id: int, playlists: dict[str, MediaPlaylist], reload: Reload, log: Callable[[str], None],
        limit: int, window: float, budget: RefreshBudget,
    ) -> None:
        self.task_id = task_id
        self.playlists = playlists
        self.reload = reload
        self.log = log
        self.limit = limit
        self.window = window
        self.budget = budget
        self.generation = 0
        self.renewed: dict[tuple[str, int], MediaSegment] = {}
        self._lock = asyncio.Lock()

    def current(self, role: str, seg: MediaSegment) -> MediaSegment:
        return self.renewed.get((role, seg.seq), seg)

    def _url_now(self, role: str, seq: int) -> str | None:
        seg = self.renewed.get((role, seq))
        if seg is not None:
            return seg.url
        return next((s.url for s in self.playlists[role].segments if s.seq == seq), None)

    async def fetch(self, role: str, seg: MediaSegment, get: Callable[[MediaSegment], Awaitable[T]]) -> T:
        while True:
            seen = self.generation
            try:
                return await get(self.current(role, seg))
            except HttpStatusError as exc:
                if not is_expired(exc):
                    raise
                await self.refresh(exc, seen)

    async def refresh(self, exc: HttpStatusError, seen: int) -> None:
        """Renew every URL (unless another worker did since `seen`); raise `exc`, explained, if it cannot."""
        async with self._lock:
            if self.generation != seen:
                return  # renewed meanwhile: try the new URLs
            what = str(exc).split(": HTTP ", 1)[0]
            if self.limit <= 0:
                raise exc
            if not self.budget.take(self.task_id, self.limit, self.window):
                raise _explained(exc, limit_reason(self.limit, self.window)) from exc
            try:
                sources = await self.reload()
            except DownloadError as reload_error:
                raise _explained(exc, f"re-fetching the playlist failed: {reload_error}") from exc
            fresh = {role: pl for role, _url, pl in sources}
            renewed: dict[tuple[str, int], MediaSegment] = {}
            for role, old in self.playlists.items():
                new = fresh.get(role)
                if new is None:
                    raise _explained(exc, f"the re-fetched playlist has no {role} stream") from exc
                try:
                    renewed.update(((role, seq), seg) for seq, seg in renew_segments(old, new).items())
                except PlaylistMismatch as mismatch:
                    raise _explained(exc, f"the re-fetched playlist is another stream: {mismatch}") from exc
            changed = sum(1 for (role, seq), seg in renewed.items() if seg.url != self._url_now(role, seq))
            fresh_urls = {seg.url for seg in renewed.values()} | {seg.key.url for seg in renewed.values() if seg.key}
            if exc.url and exc.url in fresh_urls:  # not an expired token: the same URL is refused
                self.log(f"{what} answered {exc.status}: the playlist fetched again gives the same URL")
                raise exc
            self.renewed = renewed
            self.generation += 1
            self.log(f"{what} answered {exc.status}: playlist re-fetched, {changed} segment URLs renewed")


def _explained(exc: HttpStatusError, reason: str) -> HttpStatusError:
    """The same HTTP failure (class, status, URL), its message saying why no refresh could help."""
    same = HttpStatusError(exc.status, exc.reason, exc.url)
    same.args = (f"{exc}; {reason}",)
    return same

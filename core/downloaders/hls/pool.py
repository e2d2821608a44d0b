"""Concurrent segment fetching: the worker pool, progress tally, in-order hand-off.

N workers (the task's segment_threads; each request also waits for a slot to its host, fewer while the
host backs off from a 429/503: core/policy.py) pull (stream, ordinal, segment) items
from one queue, fetch, decrypt and store each segment, then announce it in
`Arrivals`, where an assembler picks segments up strictly in order. Recent
segments stay in memory (bounded) so the assembler rarely re-reads a file.
`InOrder` stores one stream's segments in playlist order, so that its pack is
already the concatenation (a single .ts output is then a rename, not a copy).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from core.downloaders.base import ProgressSink
from core.downloaders.hls.crypto import KeyStore
from core.downloaders.hls.fetch import Fetcher, short_name
from core.downloaders.hls.merge import Stream
from core.downloaders.hls.playlist import MediaSegment
from core.downloaders.hls.refresh import PlaylistRefresher

MEMORY_BUDGET = 32 * 1024 * 1024  # finished segments held for the in-order consumer; beyond, re-read
HOLD_BUDGET = 64 * 1024 * 1024  # early segments held until their predecessors are stored (a ~0.1 s stall at speed)


@dataclass(slots=True)
class Tally:
    """Bytes and segments done, with a total-bytes estimate for the ETA."""

    progress: ProgressSink
    total_segments: int = 0
    done_segments: int = 0
    done_bytes: int = 0
    live: bool = False

    def start(self, total: int, done: int, done_bytes: int) -> None:
        self.total_segments, self.done_segments, self.done_bytes = total, done, done_bytes
        self.progress.set_downloaded(done_bytes)
        self.report()

    def add_expected(self, n: int) -> None:
        self.total_segments += n
        self.report()

    def segment_done(self, size: int) -> None:
        self.done_segments += 1
        self.done_bytes += size
        self.report()

    def report(self) -> None:
        self.progress.set_segments(self.done_segments, self.total_segments)
        if self.live or not self.done_segments:
            self.progress.set_total(None)
        else:
            self.progress.set_total(self.done_bytes * self.total_segments // self.done_segments)


class Arrivals:
    """Finished segments, announced to one in-order consumer."""

    def __init__(self, budget: int = MEMORY_BUDGET) -> None:
        self._mem: dict[tuple[str, int], bytes] = {}
        self._mem_bytes = 0
        self._budget = budget
        self._changed = asyncio.Event()
        self.keep_in_memory = True
        self.failed: set[tuple[str, int]] = set()  # live: segments given up on (gaps)

    def put(self, role: str, seq: int, data: bytes) -> None:
        if self.keep_in_memory and self._mem_bytes + len(data) <= self._budget:
            self._mem[(role, seq)] = data
            self._mem_bytes += len(data)
        self._changed.set()

    def announce(self) -> None:
        self._changed.set()

    async def take(self, stream: Stream, seq: int) -> bytes | None:
        """The segment's bytes once stored (from memory, else its file); None for a gap."""
        while seq not in stream.store.done:
            if (stream.role, seq) in self.failed:
                return None
            self._changed.clear()
            await self._changed.wait()
        data = self._mem.pop((stream.role, seq), None)
        if data is None:
            return stream.store.read(seq)  # a pread from the page cache: cheaper than a thread hop
        self._mem_bytes -= len(data)
        return data

    def drop(self, role: str, seq: int) -> None:
        data = self._mem.pop((role, seq), None)
        if data is not None:
            self._mem_bytes -= len(data)


class InOrder:
    """Stores one stream's segments in playlist order, so its pack is their concatenation.

    A segment that comes before its predecessors waits in memory; once more than
    `budget` bytes wait (a slow or retrying segment), the order is given up: what
    waits is stored, later segments as they come, and the merge copies as before.
    `flush()` stores whatever waits, so a stop or a failure loses nothing fetched.
    """

    def __init__(self, stream: Stream, budget: int = HOLD_BUDGET) -> None:
        self.store = stream.store
        self._order = [seg.seq for _, seg in stream.segments if seg.seq not in stream.store.done]
        self._next = 0
        self._held: dict[int, bytes] = {}
        self._held_bytes = 0
        self._budget = budget
        self.ordered = True

    def save(self, seq: int, data: bytes) -> list[tuple[int, bytes]]:
        """Store `data` now or once its predecessors are; the segments stored by this call, in order."""
        order = self._order
        if self.ordered and self._next < len(order) and seq != order[self._next]:
            if self._held_bytes + len(data) <= self._budget:
                self._held[seq] = data
                self._held_bytes += len(data)
                return []
            self.ordered = False
        if not self.ordered:
            return [*self.flush(), self._store(seq, data)]
        stored = [self._store(seq, data)]
        self._next += 1
        while self._next < len(order) and (early := self._held.pop(order[self._next], None)) is not None:
            self._held_bytes -= len(early)
            stored.append(self._store(order[self._next], early))
            self._next += 1
        return stored

    def flush(self) -> list[tuple[int, bytes]]:
        """Store every waiting segment (out of order)."""
        held, self._held, self._held_bytes = self._held, {}, 0
        return [self._store(seq, data) for seq, data in held.items()]

    def _store(self, seq: int, data: bytes) -> tuple[int, bytes]:
        self.store.save(seq, data)
        return seq, data


Item = tuple[Stream, int, MediaSegment]


class SegmentPool:
    """Workers that turn queued segment items into complete files."""

    def __init__(self, fetcher: Fetcher, keys: KeyStore, tally: Tally, arrivals: Arrivals, threads: int) -> None:
        self.fetcher = fetcher
        self.keys = keys
        self.tally = tally
        self.arrivals = arrivals
        self.threads = max(1, threads)
        self.queue: asyncio.Queue[Item | None] = asyncio.Queue()
        self.tasks: list[asyncio.Task[None]] = []
        self.tolerate_failures = False  # live: a lost segment is a gap, not a failed task
        self.in_order: InOrder | None = None  # set for a stream whose pack should be its concatenation
        self.refresher: PlaylistRefresher | None = None  # VOD: renews expired (403/410) URLs (hls/refresh.py)

    def start(self, n: int | None = None) -> list[asyncio.Task[None]]:
        count = self.threads if n is None else max(1, min(self.threads, n))
        self.tasks = [asyncio.create_task(self._loop(), name=f"hls-segment-{i}") for i in range(count)]
        return self.tasks

    def put_all(self, items: Iterable[Item]) -> None:
        for item in items:
            self.queue.put_nowait(item)

    def close(self) -> None:
        for _ in self.tasks:
            self.queue.put_nowait(None)

    async def _loop(self) -> None:
        while (item := await self.queue.get()) is not None:
            await self.fetch(*item)

    async def fetch(self, stream: Stream, ordinal: int, seg: MediaSegment) -> None:
        what = f"{'audio ' if stream.role == 'audio' else ''}segment {ordinal} ({short_name(seg.url, seg.byterange)})"
        if self.refresher is not None:  # expired links: re-fetch the playlist, retry with the new URLs
            data = await self.refresher.fetch(stream.role, seg, lambda current: self._fetch_plain(current, what))
        else:
            try:
                data = await self.fetcher.get_segment(seg.url, seg.byterange, what)
            except Exception as exc:
                if not self.tolerate_failures:
                    raise
                self.fetcher.ctx.log(f"{exc}; recording continues without it")
                self.arrivals.failed.add((stream.role, seg.seq))
                self.arrivals.announce()
                return
            data = await self._decrypted(data, seg, what)
        if self.in_order is not None and self.in_order.store is stream.store:
            stored = self.in_order.save(seg.seq, data)
        else:
            stream.store.save(seg.seq, data)
            stored = [(seg.seq, data)]
        for seq, piece in stored:
            self.tally.segment_done(len(piece))
            self.arrivals.put(stream.role, seq, piece)

    async def _fetch_plain(self, seg: MediaSegment, what: str) -> bytes:
        data = await self.fetcher.get_segment(seg.url, seg.byterange, what)
        try:
            return await self._decrypted(data, seg, what)
        except BaseException:
            self.fetcher.ctx.progress.add(-len(data))  # fetched again (e.g. after its key URL expired)
            raise

    async def _decrypted(self, data: bytes, seg: MediaSegment, what: str) -> bytes:
        if seg.key is None:
            return data
        fetched = len(data)
        data = await self.keys.decrypt(data, seg.key, seg.seq, what)
        self.fetcher.ctx.progress.add(len(data) - fetched)  # count what is stored
        return data


async def cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
    tasks = list(tasks)
    for task in tasks:
        if not task.done():
            task.cancel()
    if tasks:
        await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warnings


async def supervise(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for all; on the first failure cancel the rest and raise it; cancelled: cancel all."""
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        await cancel_all(tasks)
        raise
    for task in done:
        if not task.cancelled() and (exc := task.exception()) is not None:
            await cancel_all(tasks)
            raise exc
    if pending:  # unreachable with FIRST_EXCEPTION and no failure, kept for safety
        await supervise(list(pending))

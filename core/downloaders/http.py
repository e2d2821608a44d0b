"""Direct HTTP downloads: Range-segmented over N connections, resumable.

Flow: probe with `Range: bytes=0-0` → (206) size, validators, name; (200) the
server has no ranges, so that very response becomes a single stream. A
segmented download pre-sizes `<file>.part`, writes with pwrite at each
segment's offset, steals half of the busiest segment when a connection runs
out of work, and renames the .part into place once every byte is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import mimetypes
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from core.detect import is_dash_content_type, is_hls_content_type
from core.downloaders.base import DownloadContext
from core.downloaders.http_state import (
    RemoteIdentity,
    Segment,
    SegmentPlan,
    discard_state,
    load_state,
    save_state,
    state_snapshot,
    write_state,
)
from core.downloaders.memory import tune_malloc_for_streaming
from core.downloaders.net import raise_for_status, retry_after_seconds
from core.downloaders.paths import part_path, state_path
from core.errors import DownloadError, HttpStatusError, NoSpaceLeft, RemoteChanged, WrongKind
from core.integrity import InOrderHasher
from core.models import Task, TaskKind
from core.naming import name_from_content_disposition, name_from_url, sanitize_name
from core.policy import Slot, SlotTaken
from core.ratelimit import paced

# What a kill -9 can lose: bytes on disk but not yet in the state file (≤ STATE_SAVE_INTERVAL of
# transfer) plus each connection's batch in memory (≤ BATCH_MAX_AGE of its transfer, ≤ WRITE_BATCH).
STATE_SAVE_INTERVAL = 0.25
WRITE_BATCH = 1 << 20  # bytes received per connection before one pwritev...
BATCH_MAX_AGE = 0.1  # ...or seconds since the batch's first byte, whichever comes first
MAX_IOVECS = 512
IDLE_POLL = 0.5  # a connection without work checks this often for a stalled range to take over
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,8}$")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


class ShortBody(DownloadError):
    retryable = True


@dataclass(slots=True)
class Probe:
    identity: RemoteIdentity | None  # None: size unknown
    ranges: bool
    content_type: str | None
    filename: str | None
    final_url: str


def preferred_filename(task: Task, suggested: str | None, content_type: str | None = None) -> str:
    """The user's name if they gave one (keeping the server's extension), else the server's."""
    server_name = sanitize_name(suggested) if suggested else name_from_url(task.url)
    if "." not in server_name and content_type:
        ext = mimetypes.guess_extension(content_type.split(";")[0].strip())
        if ext:
            server_name += ext
    if task.options.auto_name:
        return server_name
    name = task.name
    server_ext = _EXTENSION.search(server_name)
    if server_ext and not _EXTENSION.search(name):
        name += server_ext.group(0)
    return name


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        return None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), int(match.group(2)), total


def identity_of(response: httpx.Response, url: str, size: int) -> RemoteIdentity:
    return RemoteIdentity(
        url=url, size=size, etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
    )


def read_probe(task: Task, resp: httpx.Response) -> Probe:
    """What the `Range: bytes=0-0` probe's response says (also core/downloaders/http_s3.py's probe)."""
    if resp.status_code >= 400 and resp.status_code != 416:
        raise HttpStatusError(resp.status_code, resp.reason_phrase, task.url, retry_after_seconds(resp))
    content_type = resp.headers.get("content-type")
    if task.options.auto_kind and task.kind == TaskKind.HTTP and is_hls_content_type(content_type):
        raise WrongKind(TaskKind.HLS, f"the server sent an HLS playlist ({content_type})")
    if task.options.auto_kind and task.kind == TaskKind.HTTP and is_dash_content_type(content_type):
        raise WrongKind(TaskKind.DASH, f"the server sent a DASH manifest ({content_type})")
    filename = name_from_content_disposition(resp.headers.get("content-disposition"))
    if not filename:
        path_name = name_from_url(str(resp.url), fallback="")
        filename = name_from_url(task.url, fallback="") or path_name or None
    final_url = str(resp.url)
    if resp.status_code == 206:
        parsed = parse_content_range(resp.headers.get("content-range"))
        if parsed and parsed[2] is not None:
            return Probe(identity_of(resp, final_url, parsed[2]), True, content_type, filename, final_url)
    length = resp.headers.get("content-length")
    size = int(length) if length and length.isdigit() and resp.status_code == 200 else None
    identity = identity_of(resp, final_url, size) if size is not None else None
    return Probe(identity, False, content_type, filename, final_url)


def _write_all(
    fd: int, buffers: list[bytes | memoryview], offset: int, path: Path, hasher: InOrderHasher | None = None
) -> None:
    """pwritev every buffer at offset (retrying partial writes); ENOSPC → NoSpaceLeft. Then the
    expected checksum's hasher (core/integrity.py), if any, is told what is on disk."""
    try:
        total = sum(len(b) for b in buffers)
        written = os.pwritev(fd, buffers, offset)
        if written < total:  # rare: finish byte by byte of what is left
            rest = b"".join(bytes(b) for b in buffers)[written:]
            while rest:
                n = os.pwrite(fd, rest, offset + written)
                written += n
                rest = rest[n:]
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise NoSpaceLeft(str(path)) from exc
        raise
    if hasher is not None:
        hasher.wrote(offset, buffers)


# Disk writes run here so receiving (event loop) and page-cache copies overlap.
_WRITER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fetchdeck-write")


class HttpDownloader:
    async def run(self, task: Task, ctx: DownloadContext) -> Path:
        changed_restarts = 0
        while True:
            try:
                return await self._run_once(task, ctx)
            except RemoteChanged as exc:
                changed_restarts += 1
                if changed_restarts > 2:
                    raise
                ctx.log(f"{exc}; starting over")
                if task.file:
                    discard_state(state_path(Path(task.file)))
                    with contextlib.suppress(FileNotFoundError):
                        part_path(Path(task.file)).unlink()
                ctx.progress.set_downloaded(0)

    async def _run_once(self, task: Task, ctx: DownloadContext) -> Path:
        client = ctx.client()
        headers = ctx.request_headers({"Accept-Encoding": "identity"})
        retry = ctx.retry("probe failed")
        while True:
            try:
                async with ctx.hosts.slot(task.url), \
                        client.stream("GET", task.url, headers={**headers, "Range": "bytes=0-0"}) as resp:
                    probe = read_probe(task, resp)
                    final = await ctx.claim_output(preferred_filename(task, probe.filename, probe.content_type))
                    if resp.status_code == 200:
                        ctx.log("server sends no ranges or no length: single stream, no resume")
                        return await self._single_stream(resp, final, probe, ctx)
                    await resp.aread()
                if probe.identity is None:
                    # 416 to bytes=0-0 (an empty file) or a 206 without a total: plain GET.
                    ctx.log("size unknown from the range probe: single stream, no resume")
                    return await self._single_stream(None, final, probe, ctx)
                retry.succeeded()
                break
            except Exception as exc:
                await retry.failed(exc)

        identity = probe.identity
        if final.exists() and not part_path(final).exists() and final.stat().st_size == identity.size:
            ctx.log("already complete on disk")  # e.g. killed between rename and store update
            discard_state(state_path(final))  # the kill may have come before the state file went
            ctx.progress.set_total(identity.size)
            ctx.progress.set_downloaded(identity.size)
            return final
        return await self._segmented(task, ctx, final, identity)

    # ---- single stream ---------------------------------------------------
    async def _single_stream(
        self, resp: httpx.Response | None, final: Path, probe: Probe, ctx: DownloadContext
    ) -> Path:
        """No ranges: one stream into .part from byte 0 (a retry starts over).

        `resp` is the probe's open 200 response to read, or None to start with a fresh GET.
        """
        part = part_path(final)
        discard_state(state_path(final))
        size = probe.identity.size if probe.identity else None
        if size is not None:
            ctx.integrity.reserve(final.parent, size)  # WaitForSpace/NeverFits before a byte is written
        ctx.progress.set_total(size)
        retry = ctx.retry("single stream (restarts from byte 0)")
        response: httpx.Response | None = resp
        while True:
            ctx.progress.set_downloaded(0)
            try:
                if response is None:
                    async with ctx.hosts.slot(probe.final_url), ctx.client().stream(
                        "GET", probe.final_url, headers=ctx.request_headers({"Accept-Encoding": "identity"})
                    ) as fresh:
                        raise_for_status(fresh)
                        written = await self._stream_to(fresh, part, ctx)
                else:
                    written = await self._stream_to(response, part, ctx)
                if size is not None and written != size:
                    raise ShortBody(f"short body: got {written} of {size} bytes")
                break
            except Exception as exc:
                response = None
                await retry.failed(exc)
        ctx.progress.set_total(written)
        os.replace(part, final)
        return final

    async def _stream_to(self, resp: httpx.Response, part: Path, ctx: DownloadContext) -> int:
        written = 0
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        hasher = ctx.integrity.track(part)
        try:
            async with contextlib.aclosing(paced(resp.aiter_raw(), ctx.limiter)) as chunks:
                async for chunk in chunks:
                    _write_all(fd, [chunk], written, part, hasher)
                    written += len(chunk)
                    ctx.progress.add(len(chunk))
        finally:
            os.close(fd)
        return written

    # ---- segmented -------------------------------------------------------
    async def _segmented(self, task: Task, ctx: DownloadContext, final: Path, identity: RemoteIdentity) -> Path:
        part, state_file = part_path(final), state_path(final)
        plan = self._resume_plan(ctx, part, state_file, identity)
        # WaitForSpace/NeverFits before a byte is written (the .part is sparse: what is left is what it needs)
        ctx.integrity.reserve(final.parent, identity.size - (plan.done_bytes if plan else 0))
        if plan is None:
            plan = SegmentPlan.fresh(identity.size, ctx.settings.connections)
            with open(part, "wb") as fh:
                fh.truncate(identity.size)
            save_state(state_file, identity, plan)
        ctx.integrity.track(part, [(s.start, s.pos) for s in plan.segments])
        ctx.progress.set_total(identity.size)
        ctx.progress.set_downloaded(plan.done_bytes)
        connections = max(1, min(ctx.settings.connections, 64))
        fd = os.open(part, os.O_WRONLY)
        saver = asyncio.create_task(self._save_periodically(state_file, identity, plan))
        try:
            workers = {
                asyncio.create_task(self._worker(task, ctx, identity, plan, fd, part))
                for _ in range(connections)
            }
            try:
                pending = workers
                while pending and not plan.complete:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for finished in done:
                        finished.result()  # a worker that gave up fails the download
            finally:
                # Done, failed or cancelled: a connection still blocked on a stalled
                # read (its range already taken over) must not hold us up.
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
        finally:
            saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await saver
            os.close(fd)
            if part.exists():
                plan.compact()
                save_state(state_file, identity, plan)
        if not plan.complete or part.stat().st_size != identity.size:
            raise DownloadError(f"incomplete download: {plan.done_bytes} of {identity.size} bytes")
        os.replace(part, final)
        discard_state(state_file)
        return final

    def _resume_plan(
        self, ctx: DownloadContext, part: Path, state_file: Path, identity: RemoteIdentity
    ) -> SegmentPlan | None:
        if not part.exists():
            discard_state(state_file)
            return None
        saved = load_state(state_file)
        if saved is None:
            ctx.log("found a .part without resume state: starting over")
            return None
        saved_identity, plan = saved
        if not saved_identity.matches(identity):
            ctx.log("the remote file changed since the last run (size/ETag/Last-Modified): starting over")
            return None
        if part.stat().st_size != identity.size:
            ctx.log("the .part file has the wrong size: starting over")
            return None
        ctx.log(f"resuming: {plan.done_bytes} of {identity.size} bytes already on disk")
        return plan

    async def _save_periodically(self, state_file: Path, identity: RemoteIdentity, plan: SegmentPlan) -> None:
        saved = plan.done_bytes
        while True:
            await asyncio.sleep(STATE_SAVE_INTERVAL)
            if plan.done_bytes == saved:
                continue  # nothing new on disk (a stalled or throttled-to-nothing download)
            saved = plan.done_bytes
            # Written in a thread (50 downloads used to spend 5 % of the loop here), but a write
            # in flight always lands before the caller's final save or discard, never after.
            write = asyncio.ensure_future(asyncio.to_thread(write_state, state_file, state_snapshot(identity, plan)))
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                await write
                raise

    async def _worker(
        self, task: Task, ctx: DownloadContext, identity: RemoteIdentity, plan: SegmentPlan, fd: int, part: Path
    ) -> None:
        """One connection: a slot to the host (core/policy.py: fewer while it backs off), a range, repeat.
        Waiting for a slot or for a retry, it holds no connection."""
        retry = ctx.retry("range")
        while not plan.complete:
            slot = await ctx.hosts.acquire(identity.url)
            seg = plan.take() if not plan.complete else None
            if seg is None:
                slot.release()
                await asyncio.sleep(IDLE_POLL)
                continue
            try:
                while seg.remaining > 0:
                    before = seg.pos
                    if not slot.held:
                        slot = await ctx.hosts.acquire(identity.url)
                    try:
                        await self._fetch_segment(task, ctx, identity, seg, fd, part, slot)
                    except SlotTaken:
                        break  # the host backs off: the rest of the range goes back to the plan
                    except Exception as exc:
                        slot.observe(exc)
                        slot.release()
                        if seg.pos > before:
                            retry.succeeded()  # it made progress: only count consecutive failures
                        retry.doing = f"bytes {seg.pos}-{seg.end - 1}"
                        await retry.failed(exc)
                    else:
                        retry.succeeded()
            finally:
                plan.release(seg)
                slot.release()

    async def _fetch_segment(
        self, task: Task, ctx: DownloadContext, identity: RemoteIdentity, seg: Segment, fd: int, part: Path,
        slot: Slot,
    ) -> None:
        headers = ctx.request_headers({"Accept-Encoding": "identity", "Range": f"bytes={seg.pos}-{seg.end - 1}"})
        if identity.if_range:
            headers["If-Range"] = identity.if_range
        async with ctx.client().stream("GET", identity.url, headers=headers) as resp:
            if resp.status_code == 200:
                raise RemoteChanged("the server answered a range request with the whole file (it changed?)")
            if resp.status_code != 206:
                raise HttpStatusError(resp.status_code, resp.reason_phrase, identity.url, retry_after_seconds(resp))
            parsed = parse_content_range(resp.headers.get("content-range"))
            if parsed is None or parsed[0] != seg.pos or (parsed[2] is not None and parsed[2] != identity.size):
                raise RemoteChanged(f"unexpected Content-Range {resp.headers.get('content-range')!r}")
            await self._receive(resp, ctx, seg, fd, part, slot)
        if seg.remaining > 0:
            raise ShortBody(f"short body at byte {seg.pos} (wanted up to {seg.end - 1})")

    async def _receive(
        self, resp: httpx.Response, ctx: DownloadContext, seg: Segment, fd: int, part: Path, slot: Slot
    ) -> None:
        """Read the body into batches and write each with one pwritev in the writer thread.

        `seg.pos` moves only after bytes are on disk (the resume state never
        over-claims); `seg.received` is the receive cursor work stealing splits at.
        SlotTaken: the host's back-off took this connection's slot back (what was received is kept).
        """
        limiter, progress, hasher = ctx.limiter, ctx.progress, ctx.integrity.hasher
        loop = asyncio.get_running_loop()
        batch: list[bytes | memoryview] = []
        batch_len = 0
        batch_due = 0.0  # monotonic time by which the batch is written
        cursor = seg.pos
        clock = time.monotonic

        try:
            async with contextlib.aclosing(paced(resp.aiter_raw(), limiter)) as chunks:
                async for chunk in chunks:
                    room = seg.end - cursor  # may have shrunk: another connection stole our tail
                    if room <= 0:
                        break
                    data: bytes | memoryview = chunk if len(chunk) <= room else memoryview(chunk)[:room]
                    now = clock()
                    if not batch:
                        batch_due = now + BATCH_MAX_AGE
                    batch.append(data)
                    batch_len += len(data)
                    cursor += len(data)
                    seg.received = cursor
                    seg.last_progress = now
                    progress.add(len(data))
                    if batch_len >= WRITE_BATCH or now >= batch_due or cursor >= seg.end or len(batch) >= MAX_IOVECS:
                        offset, todo = seg.pos, batch
                        batch, batch_len = [], 0
                        write = loop.run_in_executor(_WRITER, _write_all, fd, todo, offset, part, hasher)
                        try:
                            await asyncio.shield(write)
                        except asyncio.CancelledError:
                            # Stopped (stop, schedule pause, shutdown) while the thread writes: it writes anyway, so
                            # wait for it and count what is on disk, or the resume would fetch the batch again.
                            await _settled(write)
                            if write.exception() is None:
                                seg.pos = max(seg.pos, min(cursor, seg.end))
                            raise
                        seg.pos = max(seg.pos, min(cursor, seg.end))
                    if cursor >= seg.end:
                        break
                    if slot.taken_back():
                        raise SlotTaken(f"{ctx.task.url}: connection given back")
        finally:
            # Leaving (done, error or cancel): write what we hold if the range is still ours,
            # then un-count whatever did not reach the disk (someone else fetches it).
            if batch and seg.end > seg.pos and seg.received == seg.pos + batch_len:
                keep = _trim(batch, seg.end - seg.pos)
                _write_all(fd, keep, seg.pos, part, hasher)
                seg.pos += sum(len(b) for b in keep)
            dropped = seg.received - seg.pos
            if dropped > 0:
                progress.add(-dropped)
            seg.received = seg.pos


async def _settled(future: asyncio.Future[None]) -> None:
    """Wait until `future` is done, whatever else cancels the waiting task meanwhile (the caller re-raises)."""
    while not future.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([future])


def _trim(buffers: list[bytes | memoryview], limit: int) -> list[bytes | memoryview]:
    out: list[bytes | memoryview] = []
    for buf in buffers:
        if limit <= 0:
            break
        out.append(buf if len(buf) <= limit else memoryview(buf)[:limit])
        limit -= len(out[-1])
    return out


tune_malloc_for_streaming()
DOWNLOADER = HttpDownloader()

__all__ = [
    "DOWNLOADER", "HttpDownloader", "Probe", "ShortBody", "parse_content_range", "preferred_filename", "read_probe",
]

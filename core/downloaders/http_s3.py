"""Direct HTTP → S3: each Range of the remote file becomes one part of a multipart upload, resumable by upload id.

Used instead of core/downloaders/http.py when the run's destination is s3:// (`ctx.remote`). Flow: the same
`Range: bytes=0-0` probe (http.read_probe) → the object's key (`ctx.remote.claim`) → a multipart upload created
with the object metadata `source-url` / `source-etag` → parts of `part_size_for(size)` bytes (≥ 8 MiB, ≤ 10,000
parts); at most `ctx.settings.connections` workers each fetch one part's range into memory and upload it as that
part number (memory: connections × part size). After every part the upload's record
`{upload_id, bucket, key, identity, part_size, parts: {n: etag}}` is saved in `ctx.state` under "s3-upload"
(the task store: it outlives this node). A later run of the task, on any node, continues the same upload and
fetches only the parts not recorded; if the remote file changed (size / ETag / Last-Modified) or the upload is
gone, the old upload is aborted and a new one starts. A server without ranges, or an unknown size: the one
stream is cut into sequential parts (not resumable: a retry starts from byte 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from core.downloaders.base import DownloadContext
from core.downloaders.http import Probe, ShortBody, parse_content_range, preferred_filename, read_probe
from core.downloaders.http_state import RemoteIdentity
from core.downloaders.net import raise_for_status, retry_after_seconds, retrying
from core.errors import DownloadError, HttpStatusError, RemoteChanged, UploadGone
from core.models import Task
from core.storage import S3Client, S3Location, S3Target, part_size_for, source_metadata

T = TypeVar("T")
STATE_KEY = "s3-upload"


@dataclass(slots=True)
class UploadRecord:
    """One multipart upload in progress, as kept in the task's durable state."""

    upload_id: str
    bucket: str
    key: str
    identity: RemoteIdentity
    part_size: int
    parts: dict[int, str] = field(default_factory=dict)  # part number → ETag
    stored: bool = False  # not kept: the upload was completed already (the run stopped before forgetting it)

    @property
    def location(self) -> S3Location:
        return S3Location(self.bucket, self.key)

    def encode(self) -> bytes:
        i = self.identity
        return json.dumps({
            "upload_id": self.upload_id, "bucket": self.bucket, "key": self.key, "part_size": self.part_size,
            "identity": {"url": i.url, "size": i.size, "etag": i.etag, "last_modified": i.last_modified},
            "parts": {str(n): etag for n, etag in sorted(self.parts.items())},
        }).encode()

    @classmethod
    def decode(cls, blob: bytes | None) -> UploadRecord | None:
        """The record, or None for no blob or one this version cannot read (a new upload starts)."""
        if not blob:
            return None
        try:
            data = json.loads(blob)
            i = data["identity"]
            return cls(
                upload_id=str(data["upload_id"]), bucket=str(data["bucket"]), key=str(data["key"]),
                identity=RemoteIdentity(str(i["url"]), int(i["size"]), i.get("etag"), i.get("last_modified")),
                part_size=int(data["part_size"]), parts={int(n): str(e) for n, e in data["parts"].items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


class _TaskAttempts:
    """core.storage's Attempts as the task's retry rule (ctx.retry): logged, shown as the task's note."""

    def __init__(self, ctx: DownloadContext) -> None:
        self._ctx = ctx

    async def __call__(self, doing: str, op: Callable[[], Awaitable[T]]) -> T:
        return await retrying(op, self._ctx.retry(doing))


def task_attempts(ctx: DownloadContext) -> _TaskAttempts:
    return _TaskAttempts(ctx)


class HttpToS3Downloader:
    async def run(self, task: Task, ctx: DownloadContext) -> Path:
        target = ctx.remote
        if target is None:
            raise DownloadError("no S3 destination for this download")
        restarts = 0
        while True:
            try:
                return await self._run_once(task, ctx, target)
            except RemoteChanged as exc:
                restarts += 1
                if restarts > 2:
                    raise
                ctx.log(f"{exc}; starting over")
                await forget_upload(ctx, target.client)
                ctx.progress.set_downloaded(0)

    async def _run_once(self, task: Task, ctx: DownloadContext, target: S3Target) -> Path:
        headers = ctx.request_headers({"Accept-Encoding": "identity"})
        retry = ctx.retry("probe failed")
        while True:
            try:
                async with ctx.hosts.slot(task.url), \
                        ctx.client().stream("GET", task.url, headers={**headers, "Range": "bytes=0-0"}) as resp:
                    probe = read_probe(task, resp)
                    location = await target.claim(preferred_filename(task, probe.filename, probe.content_type))
                    if resp.status_code == 200:
                        ctx.log("server sends no ranges or no length: one stream cut into parts, no resume")
                        return await self._single_stream(resp, task, ctx, target, location, probe)
                    await resp.aread()
                if probe.identity is None:
                    ctx.log("size unknown from the range probe: one stream cut into parts, no resume")
                    return await self._single_stream(None, task, ctx, target, location, probe)
                retry.succeeded()
                break
            except Exception as exc:
                await retry.failed(exc)
        await self._multipart(task, ctx, target.client, location, probe.identity)
        return ctx.folder / location.name

    # ---- ranges → parts ------------------------------------------------------------
    async def _multipart(
        self, task: Task, ctx: DownloadContext, client: S3Client, location: S3Location, identity: RemoteIdentity
    ) -> None:
        attempts = task_attempts(ctx)
        record = await self._resumable(task, ctx, client, location, identity)
        if record is not None and record.stored:
            ctx.log(f"{location.url} was already complete (the last run stopped after completing the upload)")
            await ctx.state.save(STATE_KEY, None)
            ctx.progress.set_total(identity.size)
            ctx.progress.set_downloaded(identity.size)
            return
        if record is None:
            part_size = part_size_for(identity.size)
            metadata = source_metadata(task.url, identity.etag)
            upload_id = await attempts(f"starting the upload of {location.url}",
                                       lambda: client.create_multipart(location, metadata))
            record = UploadRecord(upload_id, location.bucket, location.key, identity, part_size)
            await ctx.state.save(STATE_KEY, record.encode())
        size, part_size, upload_id = identity.size, record.part_size, record.upload_id
        count = max(1, -(-size // part_size))

        def span(n: int) -> tuple[int, int]:
            return (n - 1) * part_size, min(n * part_size, size)

        todo = deque(n for n in range(1, count + 1) if n not in record.parts)
        ctx.progress.set_total(size)
        ctx.progress.set_downloaded(sum(span(n)[1] - span(n)[0] for n in record.parts))
        ctx.progress.set_segments(len(record.parts), count)
        saving = asyncio.Lock()

        async def worker() -> None:
            while todo:
                number = todo.popleft()
                start, end = span(number)
                body = await self._fetch_part(ctx, identity, start, end)

                def send(n: int = number, b: bytes = body) -> Awaitable[str]:
                    return client.upload_part(location, upload_id, n, b)

                etag = await attempts(f"uploading part {number}/{count} of {location.url}", send)
                del body, send
                record.parts[number] = etag
                async with saving:
                    await ctx.state.save(STATE_KEY, record.encode())
                ctx.progress.set_segments(len(record.parts), count)

        workers = [asyncio.create_task(worker()) for _ in range(max(1, min(ctx.settings.connections, len(todo))))]
        try:
            pending: set[asyncio.Task[None]] = set(workers)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    finished.result()  # a worker that gave up fails the download
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        if len(record.parts) != count:
            raise DownloadError(f"incomplete upload: {len(record.parts)} of {count} parts")
        await attempts(f"completing the upload of {location.url}",
                       lambda: client.complete(location, record.upload_id, record.parts))
        await ctx.state.save(STATE_KEY, None)
        ctx.log(f"uploaded {size} bytes in {count} part(s) to {location.url}")

    async def _resumable(
        self, task: Task, ctx: DownloadContext, client: S3Client, location: S3Location, identity: RemoteIdentity
    ) -> UploadRecord | None:
        """The recorded upload to continue, if it is of this object and of the same remote file (`stored`:
        it was completed already: the object is there with this size and source metadata)."""
        record = UploadRecord.decode(await ctx.state.load(STATE_KEY))
        if record is None:
            return None
        if record.location != location or not record.identity.matches(identity):
            ctx.log("the remote file changed since the upload began (size/ETag/Last-Modified): starting over")
            await forget_upload(ctx, client)
            return None
        try:
            held = await task_attempts(ctx)(f"listing the parts of {location.url}",
                                            lambda: client.list_parts(location, record.upload_id))
        except UploadGone:
            stored = await client.head(location)
            if stored is not None and stored.size == identity.size \
                    and stored.metadata == source_metadata(task.url, identity.etag):
                record.stored = True
                return record
            ctx.log(f"the upload {record.upload_id} is gone from the store: starting over")
            await ctx.state.save(STATE_KEY, None)
            return None
        record.parts = {n: etag for n, etag in record.parts.items() if held.get(n) == etag}
        done = sum(min(record.part_size, identity.size - (n - 1) * record.part_size) for n in record.parts)
        ctx.log(f"resuming upload {record.upload_id}: {len(record.parts)} part(s), {done} bytes already stored")
        return record

    async def _fetch_part(self, ctx: DownloadContext, identity: RemoteIdentity, start: int, end: int) -> bytes:
        retry = ctx.retry(f"bytes {start}-{end - 1}")
        while True:
            try:
                async with ctx.hosts.slot(identity.url):  # fewer at once while the host backs off (core/policy.py)
                    body = await self._fetch_range(ctx, identity, start, end)
            except RemoteChanged:
                raise
            except Exception as exc:
                await retry.failed(exc)
            else:
                retry.succeeded()
                return body

    async def _fetch_range(self, ctx: DownloadContext, identity: RemoteIdentity, start: int, end: int) -> bytes:
        headers = ctx.request_headers({"Accept-Encoding": "identity", "Range": f"bytes={start}-{end - 1}"})
        if identity.if_range:
            headers["If-Range"] = identity.if_range
        want, got = end - start, 0
        chunks: list[bytes] = []
        limiter, progress = ctx.limiter, ctx.progress
        try:
            async with ctx.client().stream("GET", identity.url, headers=headers) as resp:
                if resp.status_code == 200:
                    raise RemoteChanged("the server answered a range request with the whole file (it changed?)")
                if resp.status_code != 206:
                    raise HttpStatusError(resp.status_code, resp.reason_phrase, identity.url,
                                          retry_after_seconds(resp))
                parsed = parse_content_range(resp.headers.get("content-range"))
                if parsed is None or parsed[0] != start or (parsed[2] is not None and parsed[2] != identity.size):
                    raise RemoteChanged(f"unexpected Content-Range {resp.headers.get('content-range')!r}")
                async for chunk in resp.aiter_raw():
                    if limiter.rate is not None:
                        await limiter.acquire(len(chunk))
                    if len(chunk) > want - got:
                        chunk = chunk[: want - got]
                    chunks.append(chunk)
                    got += len(chunk)
                    progress.add(len(chunk))
                    if got >= want:
                        break
            if got < want:
                raise ShortBody(f"short body at byte {start + got} (wanted up to {end - 1})")
            return b"".join(chunks)
        except BaseException:
            progress.add(-got)  # these bytes are fetched again
            raise

    # ---- one stream → sequential parts ------------------------------------------------
    async def _single_stream(
        self, resp: httpx.Response | None, task: Task, ctx: DownloadContext, target: S3Target,
        location: S3Location, probe: Probe,
    ) -> Path:
        await forget_upload(ctx, target.client)
        size = probe.identity.size if probe.identity else None
        etag = probe.identity.etag if probe.identity else None
        retry = ctx.retry("single stream (restarts from byte 0)")
        response = resp
        while True:
            ctx.progress.set_total(size)
            ctx.progress.set_downloaded(0)
            try:
                if response is None:
                    async with ctx.client().stream(
                        "GET", probe.final_url, headers=ctx.request_headers({"Accept-Encoding": "identity"})
                    ) as fresh:
                        raise_for_status(fresh)
                        written = await self._stream_parts(fresh, task, ctx, target.client, location, size, etag)
                else:
                    written = await self._stream_parts(response, task, ctx, target.client, location, size, etag)
                break
            except Exception as exc:
                response = None
                await retry.failed(exc)
        ctx.progress.set_total(written)
        ctx.log(f"uploaded {written} bytes to {location.url}")
        return ctx.folder / location.name

    async def _stream_parts(
        self, resp: httpx.Response, task: Task, ctx: DownloadContext, client: S3Client, location: S3Location,
        size: int | None, etag: str | None,
    ) -> int:
        attempts = task_attempts(ctx)
        part_size = part_size_for(size)
        metadata = source_metadata(task.url, etag or resp.headers.get("etag"))
        upload_id: str | None = None
        parts: dict[int, str] = {}
        buffer: list[bytes] = []
        buffered = written = 0

        async def flush(body: bytes) -> None:
            nonlocal upload_id
            if upload_id is None:
                upload_id = await attempts(f"starting the upload of {location.url}",
                                           lambda: client.create_multipart(location, metadata))
            number = len(parts) + 1
            uid = upload_id
            parts[number] = await attempts(f"uploading part {number} of {location.url}",
                                           lambda: client.upload_part(location, uid, number, body))

        try:
            async for chunk in resp.aiter_raw():
                await ctx.limiter.acquire(len(chunk))
                buffer.append(chunk)
                buffered += len(chunk)
                written += len(chunk)
                ctx.progress.add(len(chunk))
                if buffered >= part_size:
                    joined = b"".join(buffer)
                    buffer, buffered = [joined[part_size:]] if len(joined) > part_size else [], len(joined) - part_size
                    await flush(joined[:part_size])
            if size is not None and written != size:
                raise ShortBody(f"short body: got {written} of {size} bytes")
            rest = b"".join(buffer)
            if upload_id is None:
                await attempts(f"uploading {location.url}", lambda: client.put(location, rest, metadata))
                return written
            if rest:
                await flush(rest)
            uid = upload_id
            await attempts(f"completing the upload of {location.url}", lambda: client.complete(location, uid, parts))
            return written
        except BaseException:
            if upload_id is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(client.abort(location, upload_id))
            raise


async def forget_upload(ctx: DownloadContext, client: S3Client) -> None:
    """Abort the upload recorded in the task's state (if any) and drop the record."""
    record = UploadRecord.decode(await ctx.state.load(STATE_KEY))
    if record is not None:
        with contextlib.suppress(DownloadError):
            await client.abort(record.location, record.upload_id)
    await ctx.state.save(STATE_KEY, None)


DOWNLOADER = HttpToS3Downloader()

__all__ = ["DOWNLOADER", "STATE_KEY", "HttpToS3Downloader", "UploadRecord", "forget_upload", "task_attempts"]

"""The S3 client one engine opens (once, at its first s3:// destination) and closes with itself.

It owns every request fetchdeck makes to an S3-compatible store: multipart uploads step by step (create,
upload a numbered part, list parts, complete with the recorded ETags, abort), head/exists, a small put, and
`upload_file` (a finished file streamed from disk as a multipart upload, never read whole into memory). Every
failure leaves here as a DownloadError: StorageUnreachable ("S3 store unreachable at http://…: connection
refused"), StorageError ("S3 bucket 'x' does not exist", refused credentials, a 5xx marked retryable) or
UploadGone (the upload id being resumed is no longer there). Retries are the caller's: pass `attempts`
(the task's `ctx.retry` rule) where a retry makes sense; botocore's own retries are off.

The library: aiobotocore, chosen by measurement (tests/bench/bench_s3_clients.py --mib 1024; SeaweedFS 4.48
on 127.0.0.1, 2 shared cores, 1 GiB from disk, parts of 16 MiB, 8 in flight; 4 uploads each, two runs;
docs/benchmarks.md "Issue 13"):

    obstore 0.12.1      import 0.003 s   upload  8.4–11.3 s (95–127 MB/s)   peak RSS 240–272 MiB
    aiobotocore 3.10.0  import 0.52–0.62 s   upload 10.3–12.4 s (87–104 MB/s)   peak RSS 467–482 MiB

obstore is ~10–20 % faster and lighter, but its Python API has only `put`/`put_async` (multipart done inside
Rust): the upload id and the part ETags never reach Python, so an upload cannot be continued by its id on
another node, which issue 13 requires (parts already uploaded are not fetched again after a node dies).
aiobotocore exposes CreateMultipartUpload / UploadPart (explicit part number) / ListParts /
CompleteMultipartUpload (explicit ETags) / AbortMultipartUpload; its import cost (~0.5 s) is paid only by a
process that writes to S3 (imported lazily, here), and the transfer gap is small beside the origin's.
Checksums are "when_required" (no CRC32 of every part: SigV4 already signs each payload's hash).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from core.errors import DownloadError, StorageError, StorageUnreachable, UploadGone
from core.storage.location import S3Location
from core.storage.settings import S3Settings

T = TypeVar("T")
MiB = 1 << 20
MIN_PART = 5 * MiB  # S3's minimum for every part but the last
MAX_PARTS = 10_000
DEFAULT_PART = 8 * MiB
UPLOAD_CONCURRENCY = 4  # parts of a finished file in flight at once (memory: this × the part size)


def part_size_for(size: int | None) -> int:
    """The part size for an object of `size` bytes: at least 8 MiB, and ≤ 10,000 parts (whole MiB)."""
    if size is None or size <= DEFAULT_PART * MAX_PARTS:
        return DEFAULT_PART
    per_part = -(-size // MAX_PARTS)
    return -(-per_part // MiB) * MiB


class Attempts(Protocol):
    """Runs one S3 operation, retrying its failures as the caller's rule decides (e.g. a task's ctx.retry)."""

    def __call__(self, doing: str, op: Callable[[], Awaitable[T]]) -> Awaitable[T]: ...


async def once(doing: str, op: Callable[[], Awaitable[T]]) -> T:
    """Attempts without retries."""
    return await op()


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    size: int
    etag: str
    metadata: dict[str, str] = field(default_factory=dict)


class NoSuchObject(StorageError):
    """A read of a key that holds no object (head() answers None for it)."""


class S3Client:
    """One aiobotocore client on the store `settings` names; `open()` before use, `close()` after."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        self._opening: asyncio.Lock | None = None

    async def open(self) -> S3Client:
        if self._client is not None:
            return self
        # The heavy import (~0.5 s): only a process that writes to S3 pays it.
        from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
        from aiobotocore.session import get_session  # type: ignore[import-untyped]

        s = self.settings
        config = AioConfig(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},  # the caller's retry rule decides
            connect_timeout=5, read_timeout=60, max_pool_connections=64,
            request_checksum_calculation="when_required", response_checksum_validation="when_required",
        )
        stack = contextlib.AsyncExitStack()
        self._client = await stack.enter_async_context(get_session().create_client(
            "s3", endpoint_url=s.endpoint_url or None, region_name=s.region,
            aws_access_key_id=s.access_key_id or None, aws_secret_access_key=s.secret_access_key or None,
            config=config,
        ))
        self._stack = stack
        return self

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def _call(self, method: str, doing: str, location: S3Location, **params: Any) -> Any:
        if self._client is None:
            await self.open()
        try:
            return await getattr(self._client, method)(**params)
        except DownloadError:
            raise
        except Exception as exc:
            raise self.translate(exc, doing, location) from exc

    # ---- multipart, step by step ---------------------------------------------
    async def create_multipart(self, location: S3Location, metadata: Mapping[str, str]) -> str:
        """Start a multipart upload of `location` with this object metadata (x-amz-meta-*); its upload id."""
        answer = await self._call(
            "create_multipart_upload", "starting an upload to", location,
            Bucket=location.bucket, Key=location.key, Metadata=dict(metadata),
        )
        return str(answer["UploadId"])

    async def upload_part(self, location: S3Location, upload_id: str, number: int, body: bytes) -> str:
        """Upload part `number` (1-based) of the upload; its ETag (kept to complete the upload)."""
        answer = await self._call(
            "upload_part", f"uploading part {number} of", location,
            Bucket=location.bucket, Key=location.key, UploadId=upload_id, PartNumber=number, Body=body,
        )
        return str(answer["ETag"])

    async def list_parts(self, location: S3Location, upload_id: str) -> dict[int, str]:
        """The parts the store holds for the upload, number → ETag (UploadGone if the upload is not there)."""
        parts: dict[int, str] = {}
        marker = 0
        while True:
            answer = await self._call(
                "list_parts", "listing the parts of", location,
                Bucket=location.bucket, Key=location.key, UploadId=upload_id, PartNumberMarker=marker,
            )
            for part in answer.get("Parts", []):
                parts[int(part["PartNumber"])] = str(part["ETag"])
            if not answer.get("IsTruncated"):
                return parts
            marker = int(answer["NextPartNumberMarker"])

    async def complete(self, location: S3Location, upload_id: str, parts: Mapping[int, str]) -> None:
        await self._call(
            "complete_multipart_upload", "completing the upload of", location,
            Bucket=location.bucket, Key=location.key, UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": parts[n]} for n in sorted(parts)]},
        )

    async def abort(self, location: S3Location, upload_id: str) -> None:
        """Drop the upload and its parts; one already gone is fine."""
        with contextlib.suppress(UploadGone):
            await self._call("abort_multipart_upload", "aborting the upload of", location,
                             Bucket=location.bucket, Key=location.key, UploadId=upload_id)

    # ---- objects ----------------------------------------------------------------
    async def put(self, location: S3Location, body: bytes, metadata: Mapping[str, str]) -> None:
        """A small object in one request (an empty or single-part file)."""
        await self._call("put_object", "writing", location,
                         Bucket=location.bucket, Key=location.key, Body=body, Metadata=dict(metadata))

    async def head(self, location: S3Location) -> ObjectInfo | None:
        """The object's size, ETag and metadata; None if there is no such object."""
        try:
            answer = await self._call("head_object", "reading", location, Bucket=location.bucket, Key=location.key)
        except NoSuchObject:
            return None
        return ObjectInfo(int(answer["ContentLength"]), str(answer.get("ETag", "")), dict(answer.get("Metadata", {})))

    async def exists(self, location: S3Location) -> bool:
        return await self.head(location) is not None

    async def delete(self, location: S3Location) -> None:
        await self._call("delete_object", "deleting", location, Bucket=location.bucket, Key=location.key)

    async def upload_file(
        self, path: Path, location: S3Location, metadata: Mapping[str, str], *,
        attempts: Attempts = once, progress: Callable[[int], None] | None = None,
        concurrency: int = UPLOAD_CONCURRENCY,
    ) -> ObjectInfo:
        """Upload the file at `path` to `location`, streamed from disk: one request if it fits in one part,
        else a multipart upload with `concurrency` parts in flight (memory: concurrency × part size).
        A failure aborts the upload (a new call uploads everything again). `progress(n)`: n more bytes sent."""
        size = path.stat().st_size
        part = part_size_for(size)
        report = progress or (lambda _n: None)
        if size <= part:
            body = await asyncio.to_thread(path.read_bytes)
            await attempts(f"uploading {location.url}", lambda: self.put(location, body, metadata))
            report(size)
            return ObjectInfo(size, "", dict(metadata))
        upload_id = await attempts(f"starting the upload of {location.url}",
                                   lambda: self.create_multipart(location, metadata))
        count = -(-size // part)
        numbers = iter(range(1, count + 1))
        etags: dict[int, str] = {}
        fd = os.open(path, os.O_RDONLY)

        async def worker() -> None:
            for number in numbers:
                offset = (number - 1) * part
                body = await asyncio.to_thread(os.pread, fd, part, offset)

                def send(body: bytes = body, number: int = number) -> Awaitable[str]:
                    return self.upload_part(location, upload_id, number, body)

                etags[number] = await attempts(f"uploading part {number}/{count} of {location.url}", send)
                report(len(body))

        try:
            workers = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, count)))]
            try:
                await asyncio.gather(*workers)
            finally:
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
            await attempts(f"completing the upload of {location.url}",
                           lambda: self.complete(location, upload_id, etags))
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.abort(location, upload_id))
            raise
        finally:
            os.close(fd)
        return ObjectInfo(size, "", dict(metadata))

    # ---- errors ------------------------------------------------------------------
    def translate(self, exc: BaseException, doing: str, location: S3Location) -> DownloadError:
        """The DownloadError a botocore/aiohttp failure stands for, with a reason a person can read."""
        from botocore.exceptions import (  # type: ignore[import-untyped]
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        where = self.settings.where
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            message = str(error.get("Message", "")) or code
            if code == "NoSuchBucket":
                return StorageError(f"S3 bucket {location.bucket!r} does not exist at {where}")
            if code == "NoSuchUpload":
                return UploadGone(f"the multipart upload of {location.url} no longer exists at {where}")
            if code in ("NoSuchKey", "404", "NotFound"):
                return NoSuchObject(f"no object {location.url} at {where}")
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"):
                return StorageError(f"the S3 store at {where} refused {doing} {location.url}: {message} "
                                    "(check the access key and secret)")
            retryable = status >= 500 or code in ("SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable")
            return StorageError(f"S3 store at {where}: {doing} {location.url} failed: {code or status} {message}"
                                .rstrip(), retryable=retryable)
        if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
            return StorageUnreachable(f"S3 store unreachable at {where}: {_network_reason(exc)}")
        if isinstance(exc, ReadTimeoutError):
            return StorageError(f"S3 store at {where} did not answer in time ({doing} {location.url})", retryable=True)
        reason = _network_reason(exc)
        return StorageError(f"S3 store at {where}: {doing} {location.url} failed: {reason}", retryable=True)


def _network_reason(exc: BaseException) -> str:
    """'connection refused', 'timed out'… from the exception chain (botocore wraps aiohttp's errors)."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, ConnectionRefusedError):
            return "connection refused"
        if isinstance(link, TimeoutError):
            return "timed out"
        if isinstance(link, ConnectionResetError):
            return "connection reset"
        nested = getattr(link, "kwargs", {}).get("error") if hasattr(link, "kwargs") else None
        link = nested if isinstance(nested, BaseException) else (link.__cause__ or link.__context__)
    text = str(exc)
    if "refused" in text.lower() or "Connect call failed" in text:
        return "connection refused"
    return text or type(exc).__name__

"""Direct HTTP → S3 (core/downloaders/http_s3.py) on its own: a real origin (tests/support/fileserver.py) and a
real S3 server (SeaweedFS), a DownloadContext built by hand with an in-memory durable state standing in for
the task store's (the engine-level tests use the store's)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.config import S3Config
from core.downloaders.base import DownloadContext, DownloadSettings, MemoryState
from core.downloaders.http_s3 import DOWNLOADER, STATE_KEY, UploadRecord
from core.downloaders.net import HttpClients
from core.models import Task, TaskKind, TaskOptions, TaskStatus
from core.ratelimit import RateLimiter
from core.storage import S3Client, S3Location, S3Settings, S3Target
from tests.support.fileserver import FileServer, random_bytes
from tests.support.s3server import S3Server

MiB = 1 << 20


class Sink:
    def __init__(self) -> None:
        self.total: int | None = None
        self.downloaded = 0
        self.notes: list[str | None] = []

    def set_total(self, total: int | None) -> None:
        self.total = total

    def add(self, nbytes: int) -> None:
        self.downloaded += nbytes

    def set_downloaded(self, nbytes: int) -> None:
        self.downloaded = nbytes

    def set_segments(self, done: int, total: int) -> None:
        pass

    def set_note(self, note: str | None) -> None:
        self.notes.append(note)


@pytest.fixture
async def client(s3: S3Server) -> AsyncIterator[S3Client]:
    c = await S3Client(S3Settings.from_config(S3Config(), s3.env())).open()
    yield c
    await c.close()


@pytest.fixture
async def clients() -> AsyncIterator[HttpClients]:
    c = HttpClients()
    yield c
    await c.aclose()


def make_ctx(
    url: str, client: S3Client, clients: HttpClients, prefix: S3Location, tmp_path: Path,
    state: MemoryState, connections: int = 4,
) -> tuple[DownloadContext, Sink, list[S3Location]]:
    task = Task(id=1, kind=TaskKind.HTTP, url=url, name="", folder="", headers=[], status=TaskStatus.DOWNLOADING,
                options=TaskOptions(auto_name=True))
    claimed: list[S3Location] = []

    async def claim(filename: str) -> S3Location:
        if not claimed:
            claimed.append(prefix.join(filename))
        return claimed[0]

    async def claim_output(filename: str) -> Path:
        return tmp_path / (await claim(filename)).name

    sink = Sink()
    ctx = DownloadContext(
        task=task, folder=tmp_path, clients=clients, progress=sink, log=lambda _t: None, limiter=RateLimiter(None),
        settings=DownloadSettings(retries=2, connections=connections, backoff_base=0.05, backoff_max=0.2),
        claim_output=claim_output, state=state, remote=S3Target(client, claim),
    )
    return ctx, sink, claimed


def range_starts(srv: FileServer, path: str) -> list[int]:
    return sorted(int(h.split("=")[1].split("-")[0]) for h in srv.stats[path].range_headers)


async def test_ranges_become_parts_byte_identical_with_metadata(
    s3: S3Server, bucket: str, client: S3Client, clients: HttpClients, file_server: FileServer, tmp_path: Path,
) -> None:
    data = random_bytes(37 * MiB + 123, seed=11)
    url = file_server.add("/media/big.bin", data)
    state = MemoryState()
    ctx, sink, claimed = make_ctx(url, client, clients, S3Location(bucket, "in/here"), tmp_path, state)
    await DOWNLOADER.run(ctx.task, ctx)
    assert claimed == [S3Location(bucket, "in/here/big.bin")]
    got = s3.get(bucket, "in/here/big.bin")
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    head = s3.head(bucket, "in/here/big.bin")
    assert head["ETag"].endswith('-5"')  # 37 MiB in parts of 8 MiB
    origin_etag = (await clients.get().head(url)).headers["etag"]
    assert head["Metadata"] == {"source-url": url, "source-etag": origin_etag}
    assert sink.downloaded == sink.total == len(data)
    assert await state.load(STATE_KEY) is None  # the record goes once the object is complete
    assert range_starts(file_server, "/media/big.bin") == [0, 0, 8 * MiB, 16 * MiB, 24 * MiB, 32 * MiB]
    assert file_server.stats["/media/big.bin"].max_active <= 4
    assert s3.uploads(bucket) == []


async def test_a_cancelled_upload_resumes_by_its_id_without_fetching_recorded_parts(
    s3: S3Server, bucket: str, client: S3Client, clients: HttpClients, file_server: FileServer, tmp_path: Path,
) -> None:
    data = random_bytes(48 * MiB, seed=12)
    url = file_server.add("/r.bin", data)
    file_server.faults.throttle("/r.bin", 24 * MiB)
    state = MemoryState()
    ctx, _sink, _ = make_ctx(url, client, clients, S3Location(bucket, ""), tmp_path, state, connections=2)
    run = asyncio.create_task(DOWNLOADER.run(ctx.task, ctx))

    def recorded() -> UploadRecord | None:
        return UploadRecord.decode(state._blobs.get(STATE_KEY))

    async with asyncio.timeout(60):
        while (rec := recorded()) is None or len(rec.parts) < 2:
            assert not run.done(), run
            await asyncio.sleep(0.05)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    first = recorded()
    assert first is not None and 2 <= len(first.parts) < 6
    assert [u["UploadId"] for u in s3.uploads(bucket)] == [first.upload_id]
    file_server.faults.throttle("/r.bin", None)
    file_server.reset_stats()

    ctx2, sink2, _ = make_ctx(url, client, clients, S3Location(bucket, ""), tmp_path, state, connections=2)
    await DOWNLOADER.run(ctx2.task, ctx2)
    done_starts = {(n - 1) * first.part_size for n in first.parts}
    fetched = range_starts(file_server, "/r.bin")
    assert fetched[0] == 0  # the probe (bytes=0-0)
    assert not done_starts & set(fetched[1:])  # no recorded part was fetched again
    assert len(fetched) - 1 == 6 - len(first.parts)
    assert hashlib.sha256(s3.get(bucket, "r.bin")).digest() == hashlib.sha256(data).digest()
    assert s3.uploads(bucket) == []
    assert sink2.downloaded == len(data)


async def test_a_changed_remote_file_aborts_the_old_upload_and_starts_over(
    s3: S3Server, bucket: str, client: S3Client, clients: HttpClients, file_server: FileServer, tmp_path: Path,
) -> None:
    data = random_bytes(24 * MiB, seed=13)
    url = file_server.add("/c.bin", data)
    file_server.faults.throttle("/c.bin", 16 * MiB)
    state = MemoryState()
    ctx, _, _ = make_ctx(url, client, clients, S3Location(bucket, "x"), tmp_path, state, connections=1)
    run = asyncio.create_task(DOWNLOADER.run(ctx.task, ctx))
    async with asyncio.timeout(60):
        while (rec := UploadRecord.decode(state._blobs.get(STATE_KEY))) is None or not rec.parts:
            await asyncio.sleep(0.05)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    old = json.loads(state._blobs[STATE_KEY])["upload_id"]
    new = random_bytes(24 * MiB, seed=14)
    file_server.replace("/c.bin", new)
    file_server.faults.throttle("/c.bin", None)
    ctx2, _, _ = make_ctx(url, client, clients, S3Location(bucket, "x"), tmp_path, state, connections=3)
    await DOWNLOADER.run(ctx2.task, ctx2)
    assert s3.get(bucket, "x/c.bin") == new
    assert old not in [u["UploadId"] for u in s3.uploads(bucket)]
    assert s3.uploads(bucket) == []


@pytest.mark.parametrize("kind", ["no-ranges", "no-length", "empty"])
async def test_a_server_without_ranges_streams_into_sequential_parts(
    kind: str, s3: S3Server, bucket: str, client: S3Client, clients: HttpClients, file_server: FileServer,
    tmp_path: Path,
) -> None:
    data = b"" if kind == "empty" else random_bytes(19 * MiB + 7, seed=15)
    url = file_server.add("/s.bin", data, ranges=kind != "no-ranges", send_length=kind != "no-length")
    ctx, _, _ = make_ctx(url, client, clients, S3Location(bucket, ""), tmp_path, MemoryState())
    await DOWNLOADER.run(ctx.task, ctx)
    assert s3.get(bucket, "s.bin") == data
    assert s3.metadata(bucket, "s.bin")["source-url"] == url
    assert s3.uploads(bucket) == []


class RememberingState(MemoryState):
    """MemoryState that keeps the last record saved, to play a run stopped between complete and forget."""

    def __init__(self) -> None:
        super().__init__()
        self.last: bytes | None = None

    async def save(self, key: str, value: bytes | None) -> None:
        if value is not None:
            self.last = value
        await super().save(key, value)


async def test_a_run_stopped_after_completing_does_not_upload_again(
    s3: S3Server, bucket: str, client: S3Client, clients: HttpClients, file_server: FileServer, tmp_path: Path,
) -> None:
    data = random_bytes(17 * MiB, seed=16)
    url = file_server.add("/k.bin", data)
    state = RememberingState()
    ctx, _, _ = make_ctx(url, client, clients, S3Location(bucket, ""), tmp_path, state)
    await DOWNLOADER.run(ctx.task, ctx)
    assert state.last is not None and await state.load(STATE_KEY) is None
    await state.save(STATE_KEY, state.last)  # as if the node died before forgetting the completed upload
    file_server.reset_stats()
    ctx2, sink, _ = make_ctx(url, client, clients, S3Location(bucket, ""), tmp_path, state)
    await DOWNLOADER.run(ctx2.task, ctx2)
    assert range_starts(file_server, "/k.bin") == [0]  # the probe only
    assert await state.load(STATE_KEY) is None and sink.downloaded == len(data)
    assert s3.get(bucket, "k.bin") == data

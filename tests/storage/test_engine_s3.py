"""s3:// destinations through the engine, against a real SeaweedFS S3 server and a real origin: direct HTTP →
multipart, resume after a stopped run, key de-duplication, an HLS stream staged and uploaded (checked with
ffmpeg), SaveAny's s3 storage, and an S3 outage that fails a task with a clear reason until `start` resumes it."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from core.config import Config, S3Config
from core.downloaders.http_s3 import STATE_KEY, UploadRecord
from core.engine import Engine
from core.models import Task, TaskSpec, TaskStatus
from tests.support.engine import engine_config
from tests.support.fileserver import FileServer, random_bytes
from tests.support.hls_fixtures import decode_errors, make_vod, probe, segments_of
from tests.support.s3server import S3Server

MiB = 1 << 20


def s3_config(tmp_path: Path, s3: S3Server, **download: object) -> Config:
    config = engine_config(tmp_path, **download)
    config.storage.s3 = S3Config(endpoint_url=s3.endpoint, region=s3.region, access_key_id=s3.access_key,
                                 secret_access_key=s3.secret_key)
    return config


@pytest.fixture
async def make_engine(tmp_path: Path) -> AsyncIterator[Callable[[Config], Any]]:
    engines: list[Engine] = []

    async def make(config: Config) -> Engine:
        engine = Engine(tmp_path / f"data{len(engines)}" / "fetchdeck.db", config)
        (tmp_path / f"data{len(engines)}").mkdir(exist_ok=True)
        engines.append(engine)
        return await engine.open()

    yield make
    for engine in engines:
        await engine.close()


async def finished(engine: Engine, task_id: int, timeout: float = 60) -> Task:
    async with asyncio.timeout(timeout):
        [task] = await engine.wait_finished([task_id])
    return task


async def upload_record(engine: Engine, task_id: int) -> UploadRecord | None:
    return UploadRecord.decode(await engine.store.get_state(task_id, STATE_KEY))


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


async def test_http_to_an_s3_download_dir_is_byte_identical(
    s3: S3Server, bucket: str, file_server: FileServer, tmp_path: Path, make_engine: Any,
) -> None:
    data = random_bytes(21 * MiB + 5, seed=21)
    url = file_server.add("/files/movie.bin", data)
    engine = await make_engine(s3_config(tmp_path, s3, dir=f"s3://{bucket}/downloads", connections=3))
    [task] = await engine.create([TaskSpec(url=url)])
    done = await finished(engine, task.id)
    assert done.status is TaskStatus.SUCCESS, done.error
    assert done.file == f"s3://{bucket}/downloads/movie.bin" and done.name == "movie.bin"
    assert done.downloaded == done.total == len(data)
    assert digest(s3.get(bucket, "downloads/movie.bin")) == digest(data)
    assert s3.metadata(bucket, "downloads/movie.bin")["source-url"] == url
    assert "source-etag" in s3.metadata(bucket, "downloads/movie.bin")
    assert await engine.store.get_state(task.id, STATE_KEY) is None
    assert not (tmp_path / "data0" / "staging" / str(task.id)).exists()

    # A relative task folder under an s3:// download dir joins its prefix; an s3:// folder is used as it is;
    # a name already taken (another task's key, an object in the bucket) gets a counter.
    s3.client().put_object(Bucket=bucket, Key="elsewhere/movie.bin", Body=b"already here")
    tasks = await engine.create([TaskSpec(url=url, folder="shows/2024"), TaskSpec(url=url, folder="shows/2024"),
                                 TaskSpec(url=url, folder=f"s3://{bucket}/elsewhere")])
    results = [await finished(engine, t.id) for t in tasks]
    assert all(t.status is TaskStatus.SUCCESS for t in results), [t.error for t in results]
    files = sorted(t.file or "" for t in results)
    assert files == sorted([
        f"s3://{bucket}/downloads/shows/2024/movie.bin",
        f"s3://{bucket}/downloads/shows/2024/movie (1).bin",
        f"s3://{bucket}/elsewhere/movie (1).bin",
    ]), files
    assert s3.get(bucket, "elsewhere/movie.bin") == b"already here"
    assert digest(s3.get(bucket, "elsewhere/movie (1).bin")) == digest(data)


async def test_malformed_s3_folders_are_refused(s3: S3Server, tmp_path: Path, make_engine: Any) -> None:
    from core.errors import InvalidField

    engine = await make_engine(s3_config(tmp_path, s3))
    with pytest.raises(InvalidField, match="invalid S3 location") as refused:
        await engine.create([TaskSpec(url="http://127.0.0.1:1/x", folder="s3://Not_A_Bucket/x")])
    assert refused.value.field == "folder"


async def test_a_stopped_run_resumes_its_upload_without_refetching_recorded_parts(
    s3: S3Server, bucket: str, file_server: FileServer, tmp_path: Path, make_engine: Any,
) -> None:
    data = random_bytes(40 * MiB, seed=22)
    url = file_server.add("/big.bin", data)
    file_server.faults.throttle("/big.bin", 16 * MiB)
    engine = await make_engine(s3_config(tmp_path, s3, connections=2))
    [task] = await engine.create([TaskSpec(url=url, folder=f"s3://{bucket}/r")])
    async with asyncio.timeout(60):
        while (record := await upload_record(engine, task.id)) is None or len(record.parts) < 2:
            await asyncio.sleep(0.05)
    await engine.stop(task.id)
    record = await upload_record(engine, task.id)
    assert record is not None and 2 <= len(record.parts) < 5
    assert [u["UploadId"] for u in s3.uploads(bucket)] == [record.upload_id]
    file_server.faults.throttle("/big.bin", None)
    file_server.reset_stats()
    await engine.start(task.id)
    done = await finished(engine, task.id)
    assert done.status is TaskStatus.SUCCESS, done.error
    recorded = {(n - 1) * record.part_size for n in record.parts}
    starts = [int(h.split("=")[1].split("-")[0]) for h in file_server.stats["/big.bin"].range_headers]
    assert starts[0] == 0 and not recorded & set(starts[1:])
    assert len(starts) - 1 == 5 - len(record.parts)  # only the parts not recorded were fetched
    assert digest(s3.get(bucket, "r/big.bin")) == digest(data)
    assert s3.uploads(bucket) == []


async def test_an_hls_stream_is_staged_then_uploaded(
    s3: S3Server, bucket: str, file_server: FileServer, tmp_path: Path, make_engine: Any,
) -> None:
    playlist = make_vod(tmp_path / "media", seconds=4)
    base = file_server.add_dir("/hls", playlist.parent)
    engine = await make_engine(s3_config(tmp_path, s3, dir=f"s3://{bucket}/video"))
    [task] = await engine.create([TaskSpec(url=base + "index.m3u8", name="clip")])
    done = await finished(engine, task.id, timeout=90)
    assert done.status is TaskStatus.SUCCESS, done.error
    assert done.file is not None and done.file.startswith(f"s3://{bucket}/video/clip")
    key = done.file.removeprefix(f"s3://{bucket}/")
    local = tmp_path / "back" / Path(key).name
    local.parent.mkdir()
    local.write_bytes(s3.get(bucket, key))
    info = probe(local)
    assert info.video and info.audio and info.duration == pytest.approx(sum(d for d, _ in segments_of(playlist)),
                                                                        abs=0.5)
    assert decode_errors(local) == ""
    assert s3.metadata(bucket, key)["source-url"] == base + "index.m3u8"
    assert not (tmp_path / "data0" / "staging" / str(task.id)).exists()
    assert s3.uploads(bucket) == []


async def test_an_s3_outage_fails_the_task_clearly_and_start_resumes_it(
    s3: S3Server, bucket: str, file_server: FileServer, tmp_path: Path, make_engine: Any,
) -> None:
    data = random_bytes(40 * MiB, seed=23)
    url = file_server.add("/o.bin", data)
    file_server.faults.throttle("/o.bin", 16 * MiB)
    engine = await make_engine(s3_config(tmp_path, s3, connections=2, retries=1))
    [task] = await engine.create([TaskSpec(url=url, folder=f"s3://{bucket}/o")])
    async with asyncio.timeout(60):
        while (record := await upload_record(engine, task.id)) is None or not record.parts:
            await asyncio.sleep(0.05)
    await asyncio.to_thread(s3.kill)
    failed = await finished(engine, task.id)
    assert failed.status is TaskStatus.FAILED
    assert failed.error == f"S3 store unreachable at {s3.endpoint}: connection refused"
    record = await upload_record(engine, task.id)
    assert record is not None and record.parts

    await asyncio.to_thread(s3.start)
    file_server.faults.throttle("/o.bin", None)
    file_server.reset_stats()
    await engine.start(task.id)
    done = await finished(engine, task.id)
    assert done.status is TaskStatus.SUCCESS, done.error
    recorded = {(n - 1) * record.part_size for n in record.parts}
    starts = [int(h.split("=")[1].split("-")[0]) for h in file_server.stats["/o.bin"].range_headers]
    assert not recorded & set(starts[1:])  # the upload went on from its recorded parts
    assert digest(s3.get(bucket, "o/o.bin")) == digest(data)


async def test_an_unreachable_store_fails_a_staged_upload_with_the_reason(
    s3: S3Server, file_server: FileServer, tmp_path: Path, make_engine: Any,
) -> None:
    from tests.support.s3server import _free_ports

    playlist = make_vod(tmp_path / "media", seconds=2)
    base = file_server.add_dir("/hls", playlist.parent)
    config = s3_config(tmp_path, s3, retries=0)
    port = _free_ports(1)[0]
    config.storage.s3 = S3Config(endpoint_url=f"http://127.0.0.1:{port}", access_key_id="k", secret_access_key="s")
    engine = await make_engine(config)
    [task] = await engine.create([TaskSpec(url=base + "index.m3u8", folder="s3://some-bucket/x")])
    failed = await finished(engine, task.id, timeout=90)
    assert failed.status is TaskStatus.FAILED
    assert failed.error == f"S3 store unreachable at http://127.0.0.1:{port}: connection refused"


async def test_a_failed_staged_upload_fails_the_task_and_a_retry_uploads_it(
    s3: S3Server, file_server: FileServer, tmp_path: Path, make_engine: Any,
) -> None:
    playlist = make_vod(tmp_path / "media", seconds=2)
    base = file_server.add_dir("/hls", playlist.parent)
    engine = await make_engine(s3_config(tmp_path, s3, retries=0))
    bucket = f"later-{tmp_path.name[-20:].lower().replace('_', '-')}".rstrip("-")
    [task] = await engine.create([TaskSpec(url=base + "index.m3u8", name="late", folder=f"s3://{bucket}/x")])
    failed = await finished(engine, task.id, timeout=90)
    assert failed.status is TaskStatus.FAILED
    assert failed.error == f"S3 bucket {bucket!r} does not exist at {s3.endpoint}"
    s3.client().create_bucket(Bucket=bucket)
    await engine.start(task.id)
    done = await finished(engine, task.id, timeout=90)
    assert done.status is TaskStatus.SUCCESS, done.error
    assert done.file is not None
    key = done.file.removeprefix(f"s3://{bucket}/")
    assert key.startswith("x/late")
    local = tmp_path / "back" / Path(key).name
    local.parent.mkdir()
    local.write_bytes(s3.get(bucket, key))
    assert probe(local).video and decode_errors(local) == ""
    assert not (tmp_path / "data0" / "staging" / str(task.id)).exists()


async def test_deleting_a_task_aborts_its_upload_and_with_files_deletes_its_object(
    s3: S3Server, bucket: str, file_server: FileServer, tmp_path: Path, make_engine: Any,
) -> None:
    data = random_bytes(24 * MiB, seed=24)
    url = file_server.add("/d.bin", data)
    file_server.faults.throttle("/d.bin", 8 * MiB)
    engine = await make_engine(s3_config(tmp_path, s3, connections=1))
    [partial] = await engine.create([TaskSpec(url=url, folder=f"s3://{bucket}/p")])
    async with asyncio.timeout(60):
        while (record := await upload_record(engine, partial.id)) is None or not record.parts:
            await asyncio.sleep(0.05)
    await engine.stop(partial.id)
    assert len(s3.uploads(bucket)) == 1
    await engine.delete(partial.id)
    assert s3.uploads(bucket) == []

    file_server.faults.throttle("/d.bin", None)
    [whole] = await engine.create([TaskSpec(url=url, folder=f"s3://{bucket}/w")])
    assert (await finished(engine, whole.id)).status is TaskStatus.SUCCESS
    assert s3.keys(bucket, "w/") == ["w/d.bin"]
    await engine.delete(whole.id, files=True)
    assert s3.keys(bucket, "w/") == []


async def test_a_ytdlp_download_is_staged_then_uploaded(
    s3: S3Server, bucket: str, tmp_path: Path, make_engine: Any,
) -> None:
    from core.models import TaskKind
    from tests.support.media_fixtures import get_media

    media = get_media()
    with FileServer() as server:
        server.add_dir("/m", media.dir)
        url = server.url("/m/v360.mp4")
        engine = await make_engine(s3_config(tmp_path, s3, dir=f"s3://{bucket}/yt", retries=2))
        [task] = await engine.create([TaskSpec(url=url, kind=TaskKind.YTDLP)])
        done = await finished(engine, task.id, timeout=90)
    assert done.status is TaskStatus.SUCCESS, done.error
    assert done.file == f"s3://{bucket}/yt/v360.mp4"
    assert s3.get(bucket, "yt/v360.mp4") == media.bytes("v360.mp4")
    assert s3.metadata(bucket, "yt/v360.mp4") == {"source-url": url}
    assert not (tmp_path / "data0" / "staging" / str(task.id)).exists()


async def test_an_engine_closed_mid_upload_leaves_it_for_the_next_engine_to_resume(
    s3: S3Server, bucket: str, file_server: FileServer, tmp_path: Path,
) -> None:
    data = random_bytes(32 * MiB, seed=25)
    url = file_server.add("/n.bin", data)
    file_server.faults.throttle("/n.bin", 12 * MiB)
    database = tmp_path / "shared" / "fetchdeck.db"
    database.parent.mkdir()
    first = await Engine(database, s3_config(tmp_path, s3, connections=2)).open()
    try:
        [task] = await first.create([TaskSpec(url=url, folder=f"s3://{bucket}/n")])
        async with asyncio.timeout(60):
            while (record := await upload_record(first, task.id)) is None or len(record.parts) < 2:
                await asyncio.sleep(0.05)
    finally:
        await first.close()  # like a node going away: the task is queued again, its upload recorded
    file_server.faults.throttle("/n.bin", None)
    file_server.reset_stats()
    second = await Engine(database, s3_config(tmp_path, s3, connections=2)).open()
    try:
        done = await finished(second, task.id)
        record = await upload_record(second, task.id)
    finally:
        await second.close()
    assert done.status is TaskStatus.SUCCESS, done.error
    assert record is None
    starts = [int(h.split("=")[1].split("-")[0]) for h in file_server.stats["/n.bin"].range_headers]
    assert len(starts) - 1 <= 4 - 2  # at most the parts the first engine had not recorded
    assert digest(s3.get(bucket, "n/n.bin")) == digest(data)
    assert s3.uploads(bucket) == []

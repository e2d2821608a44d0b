"""Expired links refreshed, bytes kept (core/relink.py, core/downloaders/hls/refresh.py), on real local servers.

- HLS: segment and key URLs carry a token that expires after a few segments
  (and whenever the playlist is fetched again); the task re-fetches its
  playlist, goes on with the new URLs and ends byte-identical to the source.
- Direct: a task stopped half-way is relinked to another host serving the
  same file and continues with a Range request; a relink to another file is
  refused with the reason.
- yt-dlp: the media URL a page points at expires after N bytes; the task
  re-extracts the page and resumes its .part.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from core.engine import Engine
from core.errors import IllegalTransition
from core.models import Task, TaskKind, TaskOptions, TaskSpec, TaskStatus
from core.relink import RelinkRefused
from tests.support.engine import engine_config
from tests.support.fileserver import FileServer, random_bytes
from tests.support.hls_fixtures import AES_FIRST_SEQ, AES_IV, ENC_V, KEY, KEY2, ffmpeg, make_aes, segments_of
from tests.support.token_server import TokenServer


def _decrypt(data: bytes, key: bytes, iv: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(decryptor.update(data) + decryptor.finalize()) + unpadder.finalize()


@pytest.fixture(scope="module")
def aes_stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """An AES-128 VOD (6 segments, two keys) and the concatenation of its decrypted segments."""
    folder = tmp_path_factory.mktemp("relink-hls")
    playlist = make_aes(folder, seconds=6)
    segs = segments_of(playlist)
    half = len(segs) // 2
    plain = b"".join(
        _decrypt((folder / uri).read_bytes(), KEY, (AES_FIRST_SEQ + i).to_bytes(16, "big")) if i < half
        else _decrypt((folder / uri).read_bytes(), KEY2, AES_IV)
        for i, (_d, uri) in enumerate(segs)
    )
    return playlist, plain


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    config = engine_config(tmp_path, retries=1)
    config.relink.refreshes = 5
    async with Engine(tmp_path / "db.sqlite", config) as eng:
        yield eng


async def _until(check: object, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


async def _run_hls(engine: Engine, url: str) -> tuple[Task, list[str]]:
    """One HLS task, one segment at a time (so the order of requests, and of expiries, is fixed), to its end."""
    spec = TaskSpec(url=url, kind=TaskKind.HLS, name="out.ts", options=TaskOptions(segment_threads=1))
    (task,) = await engine.create([spec])
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id], poll=0.05), 20)
    return done, [line.text for line in await engine.logs(task.id)]


async def test_hls_expired_segment_and_key_urls_are_renewed(engine: Engine, aes_stream: tuple[Path, bytes]) -> None:
    playlist, plain = aes_stream
    with TokenServer(playlist.parent, per_token=2) as srv:
        done, log = await _run_hls(engine, srv.url(playlist.name))
        assert done.status is TaskStatus.SUCCESS, (done.error, log)
        assert done.file is not None
        assert Path(done.file).read_bytes() == plain  # every segment once, in order, decrypted
        # One segment at a time, two segments per token: segment 3 (403), key 2 (403), segment 6 (403).
        refreshes = [t for t in log if "playlist re-fetched" in t]
        assert len(refreshes) == 3, log
        assert srv.log.pages == 4
        assert srv.log.forbidden["k2.key"] == 1 and sum(srv.log.forbidden.values()) == 3, srv.log.forbidden
        assert any(t.startswith("segment 3 (seg_002.ts) answered 403: playlist re-fetched, 6 segment URLs renewed")
                   for t in refreshes), refreshes
        assert any(t.startswith("key k2.key answered 403") for t in refreshes), refreshes


async def test_hls_refresh_limit_fails_with_the_reason(tmp_path: Path, aes_stream: tuple[Path, bytes]) -> None:
    playlist, _plain = aes_stream
    config = engine_config(tmp_path, retries=1)
    config.relink.refreshes = 1
    with TokenServer(playlist.parent, per_token=2) as srv:
        async with Engine(tmp_path / "db.sqlite", config) as engine:
            done, log = await _run_hls(engine, srv.url(playlist.name))
        assert done.status is TaskStatus.FAILED
        assert sum("playlist re-fetched" in t for t in log) == 1, log
        assert done.error is not None and done.error.startswith("key k2.key: HTTP 403"), done.error
        assert "link refresh limit reached (1 in 10 min" in done.error, done.error


async def test_direct_relink_to_another_host_continues(engine: Engine) -> None:
    data = random_bytes(6 << 20, seed=14)
    other = random_bytes(6 << 20, seed=15)
    with FileServer() as one, FileServer(host="127.0.0.3") as two:
        one.add("/file.bin", data)
        one.faults.throttle("/file.bin", 4 << 20)
        two.add("/file.bin", data)
        two.add("/other.bin", other)
        spec = TaskSpec(url=one.url("/file.bin"), kind=TaskKind.HTTP, options=TaskOptions(connections=2))
        (task,) = await engine.create([spec])
        await _until(lambda: engine.scheduler.running(task.id) is not None
                     and (engine.scheduler.running(task.id).task.downloaded or 0) > (1 << 20))  # type: ignore[union-attr]

        with pytest.raises(RelinkRefused, match="ETag"):  # the same size, other bytes: refused, task untouched
            await engine.relink(task.id, two.url("/other.bin"))
        assert (await engine.get(task.id)).url == one.url("/file.bin")

        relinked = await engine.relink(task.id, two.url("/file.bin"))  # running: stopped, swapped, resumed
        assert relinked.url == two.url("/file.bin")
        (done,) = await asyncio.wait_for(engine.wait_finished([task.id], poll=0.05), 20)
        assert done.status is TaskStatus.SUCCESS, done.error
        assert done.file is not None and Path(done.file).read_bytes() == data
        starts = [int(h.split("=")[1].split("-")[0]) for h in two.stats["/file.bin"].range_headers if h != "bytes=0-0"]
        assert starts and min(starts) > 0, starts  # server 2 sent only what was missing
        assert sum(two.stats["/file.bin"].status_counts.values()) >= 2
        log = [line.text for line in await engine.logs(task.id)]
        assert any("relinked to" in t and "continuing from byte" in t for t in log), log

        with pytest.raises(IllegalTransition, match="finished"):
            await engine.relink(task.id, two.url("/file.bin"))


async def test_direct_relink_with_restart_starts_over_from_another_file(engine: Engine) -> None:
    data = random_bytes(4 << 20, seed=16)
    other = random_bytes(3 << 20, seed=17)
    with FileServer() as one, FileServer(host="127.0.0.3") as two:
        one.add("/file.bin", data)
        one.faults.throttle("/file.bin", 2 << 20)
        two.add("/other.bin", other)
        (task,) = await engine.create([TaskSpec(url=one.url("/file.bin"), kind=TaskKind.HTTP)])
        await _until(lambda: engine.scheduler.running(task.id) is not None
                     and (engine.scheduler.running(task.id).task.downloaded or 0) > (256 << 10))  # type: ignore[union-attr]
        stopped = await engine.stop(task.id)
        assert stopped.status is TaskStatus.STOPPED and stopped.file is not None

        with pytest.raises(RelinkRefused, match="3145728 bytes, the download has 4194304"):
            await engine.relink(task.id, two.url("/other.bin"))
        assert (await engine.get(task.id)).status is TaskStatus.STOPPED  # refused: nothing changed

        await engine.relink(task.id, two.url("/other.bin"), restart=True)
        (done,) = await asyncio.wait_for(engine.wait_finished([task.id], poll=0.05), 20)
        assert done.status is TaskStatus.SUCCESS, done.error
        assert done.file == stopped.file and Path(done.file).read_bytes() == other


async def test_ytdlp_expired_media_url_is_re_extracted_and_the_part_resumed(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=10:duration=3", *ENC_V, str(folder / "v720.mp4"))
    data = (folder / "v720.mp4").read_bytes()
    with TokenServer(folder, bytes_per_token=len(data) * 3 // 4, media="v720.mp4") as srv:
        spec = TaskSpec(url=srv.url("clip.html"), kind=TaskKind.YTDLP)
        (task,) = await engine.create([spec])
        (done,) = await asyncio.wait_for(engine.wait_finished([task.id], poll=0.05), 30)
        log = [line.text for line in await engine.logs(task.id)]
        assert done.status is TaskStatus.SUCCESS, (done.error, log)
        assert done.file is not None and Path(done.file).read_bytes() == data
        # Each page fetch renewed the token (yt-dlp may lose its last unwritten block, hence maybe twice);
        # each new token's first request asks for the rest only: the .part was kept.
        assert srv.log.pages >= 2 and srv.log.forbidden["v720.mp4"] == srv.log.pages - 1, srv.log
        for token in range(2, srv.log.pages + 1):
            first = next(rng for t, rng in srv.log.ranges if t == token)
            assert first is not None and int(first[6:-1]) > 0, srv.log.ranges
        assert any("HTTP Error 403" in t and "page re-extracted" in t for t in log), log

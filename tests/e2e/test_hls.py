"""HLS downloads through the real engine, from fixtures made with the bundled ffmpeg.

Every success is checked with ffmpeg itself: duration, streams, and (for the
encrypted fixture) a full decode.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from core.config import Config
from core.engine import Engine
from core.models import Task, TaskKind, TaskOptions, TaskSpec, TaskStatus
from tests.support.fileserver import FileServer
from tests.support.hls_fixtures import (
    HlsMedia,
    LiveWindow,
    build_media,
    decode_errors,
    probe,
    segments_of,
    video_frames,
)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> HlsMedia:
    return build_media(tmp_path_factory.mktemp("hls-media"))


@pytest.fixture
def server(media: HlsMedia) -> Iterator[FileServer]:
    with FileServer() as srv:
        srv.add_dir("/media", media.root)
        yield srv


def media_url(server: FileServer, media: HlsMedia, playlist: Path) -> str:
    return server.url("/media/" + media.rel(playlist))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    config = Config()
    config.download.dir = str(tmp_path / "dl")
    config.download.retries = 2
    async with Engine(tmp_path / "db.sqlite", config) as eng:
        yield eng


async def create(engine: Engine, url: str, name: str | None = None, is_live: bool = False, **options: object) -> Task:
    spec = TaskSpec(url=url, kind=TaskKind.HLS, name=name, is_live=is_live,
                    options=TaskOptions(**options))  # type: ignore[arg-type]
    (task,) = await engine.create([spec])
    return task


async def download(engine: Engine, url: str, timeout: float = 60, **kwargs: object) -> Task:
    task = await create(engine, url, **kwargs)  # type: ignore[arg-type]
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id], poll=0.05), timeout)
    return done


def check(task: Task, duration: float, *, width: int | None = 160, audio: bool = True, tol: float = 0.4) -> Path:
    assert task.status == TaskStatus.SUCCESS, task.error
    assert task.file is not None
    path = Path(task.file)
    info = probe(path)
    assert abs(info.duration - duration) <= tol, info.text
    if width is not None:
        assert len(info.video) == 1 and f" {width}x" in info.video[0], info.video
    assert len(info.audio) == (1 if audio else 0), info.audio
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert leftovers == [], f"left behind: {leftovers}"
    return path


async def log_text(engine: Engine, task: Task) -> str:
    return "\n".join(line.text for line in await engine.logs(task.id))


# ---- VOD flavours --------------------------------------------------------------

async def test_vod_mpegts(engine: Engine, server: FileServer, media: HlsMedia) -> None:
    task = await download(engine, media_url(server, media, media.vod), name="My clip")
    path = check(task, 4.0)
    assert path.name == "My clip.mp4" and video_frames(path) == 40
    sizes = sum((media.vod.parent / uri).stat().st_size for _, uri in segments_of(media.vod))
    assert task.downloaded == sizes and task.total == sizes
    assert (task.segments_done, task.segments_total) == (4, 4)
    assert decode_errors(path) == ""


async def test_aes128_decodes_and_each_key_is_fetched_once(engine: Engine, server: FileServer, media: HlsMedia) -> None:
    task = await download(engine, media_url(server, media, media.aes), segment_threads=4)
    path = check(task, 4.0)
    assert decode_errors(path) == ""
    assert server.stats["/media/aes/k1.key"].requests == 1
    assert server.stats["/media/aes/k2.key"].requests == 1


async def test_fmp4_with_ext_x_map(engine: Engine, server: FileServer, media: HlsMedia) -> None:
    task = await download(engine, media_url(server, media, media.fmp4))
    path = check(task, 4.0)
    assert decode_errors(path) == ""
    assert server.stats["/media/fmp4/init.mp4"].requests == 1


async def test_byte_range_segments(engine: Engine, server: FileServer, media: HlsMedia) -> None:
    task = await download(engine, media_url(server, media, media.byterange), name="ranged.ts")
    path = check(task, 4.0)
    assert path.name == "ranged.ts"  # a .ts name: plain concatenation, no remux
    assert path.read_bytes() == (media.byterange.parent / "all.ts").read_bytes()
    stats = server.stats["/media/range/all.ts"]
    assert stats.range_requests == 4 == stats.requests


async def test_master_best_variant_with_separate_audio(engine: Engine, server: FileServer, media: HlsMedia) -> None:
    task = await download(engine, media_url(server, media, media.master))
    check(task, 3.0, width=320)
    assert server.stats["/media/master/low/index.m3u8"].requests == 0
    assert "chose 240p" in await log_text(engine, task)


async def test_master_quality_picks_the_smaller_variant(engine: Engine, server: FileServer, media: HlsMedia) -> None:
    task = await download(engine, media_url(server, media, media.master), quality="200p")
    check(task, 3.0, width=160)
    assert server.stats["/media/master/high/index.m3u8"].requests == 0


# ---- failures and the skip rule ----------------------------------------------

@pytest.mark.parametrize("status", [404, 403])
async def test_missing_segment_fails_naming_it(
    engine: Engine, server: FileServer, media: HlsMedia, status: int
) -> None:
    server.faults.fail_status("/media/vod/seg_002.ts", status=status, times=None)
    task = await download(engine, media_url(server, media, media.vod), name="broken")
    assert task.status == TaskStatus.FAILED
    assert task.error is not None and f"segment 3 (seg_002.ts): HTTP {status}" in task.error
    assert server.stats["/media/vod/seg_002.ts"].requests == 1  # 4xx is not retried


async def test_skip_rule_covers_the_missing_segment(engine: Engine, server: FileServer, media: HlsMedia) -> None:
    server.faults.fail_status("/media/vod/seg_002.ts", status=404, times=None)
    task = await download(engine, media_url(server, media, media.vod), skip="3", log_skipped=True)
    path = check(task, 4.0)  # the timeline keeps the hole: segment 3's second has no frames
    assert video_frames(path) == 30
    assert server.stats["/media/vod/seg_002.ts"].requests == 0
    assert "skipped 1 segment(s) by the skip rule: 3 (seg_002.ts)" in await log_text(engine, task)


async def test_server_errors_are_retried(engine: Engine, server: FileServer, media: HlsMedia) -> None:
    server.faults.fail_status("/media/vod/seg_001.ts", status=503, times=2)
    server.faults.truncate("/media/vod/seg_003.ts", nbytes=1000, times=1)
    task = await download(engine, media_url(server, media, media.vod))
    check(task, 4.0)
    assert server.stats["/media/vod/seg_001.ts"].requests == 3
    assert server.stats["/media/vod/seg_003.ts"].requests == 2


async def test_sample_aes_fails_with_a_clear_message(
    engine: Engine, server: FileServer, media: HlsMedia, tmp_path: Path
) -> None:
    folder = tmp_path / "sa"
    folder.mkdir()
    (folder / "index.m3u8").write_text(media.vod.read_text().replace(
        "#EXTINF", '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="k.key"\n#EXTINF', 1))
    server.add_dir("/sa", folder)
    task = await download(engine, server.url("/sa/index.m3u8"))
    assert task.status == TaskStatus.FAILED
    assert task.error is not None and "SAMPLE-AES is not supported" in task.error


async def test_a_url_that_is_no_playlist_fails_without_reading_it_all(
    engine: Engine, server: FileServer, media: HlsMedia
) -> None:
    task = await download(engine, server.url("/media/vod/seg_000.ts"))
    assert task.status == TaskStatus.FAILED
    assert task.error == "playlist: not an HLS playlist (no #EXTM3U header)"


async def test_a_guessed_hls_type_that_is_wrong_switches_to_http(
    engine: Engine, server: FileServer, media: HlsMedia
) -> None:
    data = (media.vod.parent / "seg_000.ts").read_bytes()
    url = server.add("/not-really.m3u8", data)
    (task,) = await engine.create([TaskSpec(url=url)])  # no kind: guessed from the name
    assert task.kind == TaskKind.HLS
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id], poll=0.05), 30)
    assert done.status == TaskStatus.SUCCESS, done.error
    assert done.kind == TaskKind.HTTP and Path(done.file or "").read_bytes() == data


# ---- resume --------------------------------------------------------------------

async def test_resume_after_stop_refetches_no_finished_segment(
    engine: Engine, server: FileServer, media: HlsMedia
) -> None:
    segs = [uri for _, uri in segments_of(media.vod)]
    for uri in segs:
        server.faults.throttle(f"/media/vod/{uri}", 40_000)  # ~0.4 s per segment
    task = await create(engine, media_url(server, media, media.vod), segment_threads=1)
    deadline = time.monotonic() + 20
    while (await engine.get(task.id)).segments_done < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    stopped = await engine.stop(task.id)
    assert stopped.status == TaskStatus.STOPPED
    done_before = stopped.segments_done
    assert done_before >= 2
    for uri in segs:
        server.faults.throttle(f"/media/vod/{uri}", None)
    await engine.start(task.id)
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id], poll=0.05), 30)
    check(done, 4.0)
    for uri in segs[:done_before]:
        assert server.stats[f"/media/vod/{uri}"].requests == 1, uri
    assert "resuming: " in await log_text(engine, done)


async def test_a_stop_keeps_segments_that_came_before_a_slow_first_one(
    engine: Engine, server: FileServer, media: HlsMedia
) -> None:
    """A .ts output stores segments in playlist order (pool.InOrder), holding early ones in
    memory: a stop must store them, so the next run fetches none of them again."""
    segs = [uri for _, uri in segments_of(media.vod)]
    assert len(segs) >= 3
    folder = media.vod.parent
    server.faults.throttle(f"/media/vod/{segs[0]}", 2_000)  # the first segment crawls
    task = await create(engine, media_url(server, media, media.vod), name="held.ts", segment_threads=len(segs))
    rest = sum((folder / uri).stat().st_size for uri in segs[1:])
    deadline = time.monotonic() + 20
    while True:  # until all but the first are received: what the client has counted, less what it can have of it
        downloaded = (await engine.get(task.id)).downloaded
        if downloaded >= rest + server.stats[f"/media/vod/{segs[0]}"].bytes_sent:
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert (await engine.get(task.id)).segments_done == 0  # they wait in memory for the first
    stopped = await engine.stop(task.id)
    assert stopped.status == TaskStatus.STOPPED
    server.faults.throttle(f"/media/vod/{segs[0]}", None)
    await engine.start(task.id)
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id], poll=0.05), 30)
    assert done.file is not None and done.file.endswith("held.ts")
    check(done, 4.0)
    for uri in segs[1:]:
        assert server.stats[f"/media/vod/{uri}"].requests == 1, uri
    assert server.stats[f"/media/vod/{segs[0]}"].requests == 2


# ---- options -------------------------------------------------------------------

async def test_no_merge_gives_a_folder_of_playable_segments(
    engine: Engine, server: FileServer, media: HlsMedia
) -> None:
    task = await download(engine, media_url(server, media, media.aes), name="parts", no_merge=True)
    assert task.status == TaskStatus.SUCCESS, task.error
    folder = Path(task.file or "")
    assert folder.is_dir() and folder.name == "parts"
    assert sorted(p.name for p in folder.iterdir()) == ["00001.ts", "00002.ts", "00003.ts", "00004.ts", "index.m3u8"]
    assert "#EXT-X-KEY" not in (folder / "index.m3u8").read_text()  # segments are stored decrypted
    assert abs(probe(folder / "index.m3u8").duration - 4.0) < 0.4
    assert [p.name for p in folder.parent.iterdir()] == ["parts"]


async def test_keep_segments_keeps_them_beside_a_playlist(engine: Engine, server: FileServer, media: HlsMedia) -> None:
    task = await download(engine, media_url(server, media, media.fmp4), name="kept", keep_segments=True)
    assert task.status == TaskStatus.SUCCESS, task.error
    kept = Path(task.file + ".parts") / "video"  # type: ignore[operator]
    names = sorted(p.name for p in kept.iterdir())
    assert names[:4] == ["00001.m4s", "00002.m4s", "00003.m4s", "00004.m4s"] and "index.m3u8" in names
    assert abs(probe(kept / "index.m3u8").duration - 4.0) < 0.4
    assert abs(probe(Path(task.file or "")).duration - 4.0) < 0.4


async def test_server_file_time(engine: Engine, server: FileServer, media: HlsMedia, tmp_path: Path) -> None:
    folder = tmp_path / "old"
    shutil.copytree(media.vod.parent, folder)
    stamp = 978_307_200  # 2001-01-01
    for path in folder.iterdir():
        os.utime(path, (stamp, stamp))
    server.add_dir("/old", folder)
    task = await download(engine, server.url("/old/index.m3u8"), use_server_file_time=True)
    path = check(task, 4.0)
    assert int(path.stat().st_mtime) == stamp


# ---- live ----------------------------------------------------------------------

@pytest.fixture
def live(server: FileServer, media: HlsMedia, tmp_path: Path) -> Iterator[LiveWindow]:
    window = LiveWindow(source=media.live, folder=tmp_path / "live", segment_base="/media/live/", interval=0.7)
    server.add_dir("/live", window.folder)
    yield window
    window.stop()


async def test_live_sliding_window_survives_an_outage_and_ends(
    engine: Engine, server: FileServer, live: LiveWindow
) -> None:
    live.start()
    task = await create(engine, server.url("/live/live.m3u8"))
    await asyncio.sleep(1.0)
    server.faults.fail_status("/live/live.m3u8", status=503, times=2)
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id], poll=0.05), 30)
    check(done, 6.0, tol=0.5)
    text = await log_text(engine, done)
    assert "HTTP 503" in text and "is back" in text and "EXT-X-ENDLIST" in text
    assert done.segments_done == 6


async def test_stopped_live_recording_keeps_what_it_got_and_continues(
    engine: Engine, server: FileServer, live: LiveWindow
) -> None:
    live.start()
    task = await create(engine, server.url("/live/live.m3u8"), name="rec")
    deadline = time.monotonic() + 20
    while (await engine.get(task.id)).segments_done < 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    stopped = await engine.stop(task.id)
    assert stopped.status == TaskStatus.STOPPED and stopped.file is not None
    at_stop = probe(Path(stopped.file)).duration
    assert at_stop >= 2.5
    await engine.start(task.id)
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id], poll=0.05), 30)
    path = check(done, 6.0, tol=1.1)  # a segment that left the window while stopped may be missing
    assert probe(path).duration >= at_stop

"""DASH downloads through the real engine, from manifests made with the bundled ffmpeg's `-f dash`.

Every success is checked with ffmpeg itself: the duration, one video and one audio
stream, and a full decode without errors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from core.config import Config
from core.downloaders.dash.mpd import SegmentBase, SegmentList, parse_mpd
from core.downloaders.dash.sidx import parse_sidx
from core.engine import Engine
from core.models import Task, TaskKind, TaskOptions, TaskSpec, TaskStatus
from tests.support.dash_fixtures import SECONDS, DashMedia, LiveMpd, build_dash
from tests.support.fileserver import FileServer
from tests.support.hls_fixtures import decode_errors, probe


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> DashMedia:
    return build_dash(tmp_path_factory.mktemp("dash-media"))


@pytest.fixture
def server(media: DashMedia) -> Iterator[FileServer]:
    with FileServer() as srv:
        srv.add_dir("/media", media.root)
        yield srv


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    config = Config()
    config.download.dir = str(tmp_path / "dl")
    config.download.retries = 2
    async with Engine(tmp_path / "db.sqlite", config) as eng:
        yield eng


async def create(engine: Engine, url: str, kind: TaskKind | None = None, **options: object) -> Task:
    (task,) = await engine.create([TaskSpec(url=url, kind=kind, options=TaskOptions(**options))])  # type: ignore[arg-type]
    return task


async def finish(engine: Engine, task: Task, timeout: float = 30) -> Task:
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id], poll=0.05), timeout)
    return done


def check(task: Task, *, width: int = 160, duration: float = SECONDS, tol: float = 0.3) -> Path:
    """A finished task's output: plays for `duration`, one video of `width` and one audio, decodes clean."""
    assert task.status == TaskStatus.SUCCESS, task.error
    assert task.file is not None
    path = Path(task.file)
    assert path.suffix == ".mp4"
    info = probe(path)
    assert abs(info.duration - duration) <= tol, info.text
    assert len(info.video) == 1 and f" {width}x" in info.video[0], info.video
    assert len(info.audio) == 1, info.audio
    assert decode_errors(path) == ""
    assert [p.name for p in path.parent.iterdir() if p != path] == []  # no work folder left
    return path


async def log_text(engine: Engine, task: Task) -> str:
    return "\n".join(line.text for line in await engine.logs(task.id))


# ---- VOD: the three ways to address segments ----------------------------------------

async def test_an_mpd_url_is_a_dash_task_with_the_best_video_and_audio(
    engine: Engine, server: FileServer, media: DashMedia
) -> None:
    task = await create(engine, server.url("/media/timeline/manifest.mpd"))  # kind guessed from .mpd
    assert task.kind == TaskKind.DASH
    done = await finish(engine, task)
    path = check(done)
    assert path.name == "manifest.mp4"
    assert (done.segments_done, done.segments_total) == (2 * SECONDS, 2 * SECONDS)
    fetched = [f"/media/timeline/{name}" for s in (0, 2) for name in media.segments("timeline", s)]
    assert all(server.stats[p].requests == 1 for p in fetched)
    assert sum(server.stats[p].bytes_sent for p in fetched) == done.downloaded == done.total
    assert all(name not in server.stats for name in map("/media/timeline/{}".format, media.segments("timeline", 1)))


async def test_quality_picks_the_smaller_video(engine: Engine, server: FileServer) -> None:
    task = await create(engine, server.url("/media/timeline/manifest.mpd"), quality="worst")
    check(await finish(engine, task), width=96)
    assert "chose 72p" in await log_text(engine, task)


async def test_segment_list(engine: Engine, server: FileServer) -> None:
    check(await finish(engine, await create(engine, server.url("/media/list/manifest.mpd"))))


async def test_segment_base_reads_the_sidx_and_fetches_byte_ranges(engine: Engine, server: FileServer) -> None:
    done = await finish(engine, await create(engine, server.url("/media/base/manifest.mpd")))
    check(done)
    for stream in ("manifest-stream0.mp4", "manifest-stream1.mp4"):
        stats = server.stats[f"/media/base/{stream}"]
        assert stats.requests == stats.range_requests == 1 + 1 + SECONDS  # index, init, segments


def test_the_sidx_of_an_ffmpeg_file_gives_ffmpegs_own_segment_ranges(media: DashMedia) -> None:
    """base/ranges.mpd is ffmpeg's SegmentList (mediaRange per segment) for the same files."""
    ranges = parse_mpd(media.root.joinpath("base", "ranges.mpd").read_text(), "http://h/base/ranges.mpd")
    based = parse_mpd(media.manifest("base").read_text(), "http://h/base/manifest.mpd")
    for listed, indexed in zip(ranges.periods[0].representations, based.periods[0].representations, strict=True):
        assert isinstance(listed.addressing, SegmentList) and isinstance(indexed.addressing, SegmentBase)
        index = indexed.addressing.index_range
        assert index is not None
        data = media.root.joinpath("base", indexed.base_url.rsplit("/", 1)[1]).read_bytes()
        segments = parse_sidx(data[index.offset : index.offset + index.length], index.offset)
        assert [s.byterange for s in segments] == [u.byterange for u in listed.addressing.urls]
        assert abs(sum(s.duration for s in segments) - SECONDS) < 0.1


# ---- resume, DRM, m3u8-typed tasks ------------------------------------------------------

async def test_resume_after_stop_refetches_no_finished_segment(
    engine: Engine, server: FileServer, media: DashMedia
) -> None:
    paths = [f"/media/timeline/{name}" for s in (0, 2) for name in media.segments("timeline", s)]
    for p in paths:
        server.faults.throttle(p, 30_000)  # about 0.3 s a video segment
    task = await create(engine, server.url("/media/timeline/manifest.mpd"), segment_threads=1)
    deadline = time.monotonic() + 20
    while (await engine.get(task.id)).segments_done < 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    stopped = await engine.stop(task.id)
    assert stopped.status == TaskStatus.STOPPED
    done_before = stopped.segments_done
    assert 3 <= done_before < len(paths)
    for p in paths:
        server.faults.throttle(p, None)
    await engine.start(task.id)
    done = await finish(engine, task)
    check(done)
    assert f"resuming: {done_before} of {len(paths)} segments already downloaded" in await log_text(engine, done)
    # One worker takes the segments in order (video, then audio): the first done_before were finished.
    for p in paths[:done_before]:
        assert server.stats[p].requests == 1, p
    for p in paths[done_before:]:
        assert server.stats[p].requests <= 2, p  # the one cut off by the stop is fetched again


async def test_a_drm_protected_stream_is_refused_before_any_segment(engine: Engine, server: FileServer) -> None:
    done = await finish(engine, await create(engine, server.url("/media/drm/manifest.mpd")))
    assert done.status == TaskStatus.FAILED
    assert done.error == "DRM-protected stream (Widevine): fetchdeck does not decrypt DRM"
    assert [p for p in server.stats.paths() if p.endswith(".m4s")] == []


async def test_an_m3u8_typed_task_whose_url_serves_a_manifest_runs_as_dash(
    engine: Engine, server: FileServer, media: DashMedia
) -> None:
    # No .mpd in the URL: only the body says what it is (as a MediaGo "m3u8" task that is really DASH).
    server.add("/media/timeline/play", media.manifest("timeline").read_bytes(), content_type="text/plain")
    task = await create(engine, server.url("/media/timeline/play"), kind=TaskKind.HLS)
    done = await finish(engine, task)
    assert done.kind == TaskKind.DASH
    check(done)
    assert "switching to dash" in await log_text(engine, done)


async def test_a_guessed_http_url_served_as_dash_xml_switches_to_dash(
    engine: Engine, server: FileServer, media: DashMedia
) -> None:
    server.add("/media/list/watch", media.manifest("list").read_bytes(), content_type="application/dash+xml")
    task = await create(engine, server.url("/media/list/watch"))
    assert task.kind == TaskKind.HTTP
    done = await finish(engine, task)
    assert done.kind == TaskKind.DASH
    check(done)


# ---- live ---------------------------------------------------------------------------------

@pytest.fixture
def live(server: FileServer, media: DashMedia, tmp_path: Path) -> Iterator[LiveMpd]:
    window = LiveMpd(media, tmp_path / "live", segment_base="/media/timeline/")
    server.add_dir("/live", window.folder)
    yield window
    window.stop()


async def test_a_live_manifest_is_recorded_until_it_turns_static(
    engine: Engine, server: FileServer, media: DashMedia, live: LiveMpd
) -> None:
    live.start()
    task = await create(engine, server.url("/live/live.mpd"))
    done = await finish(engine, task)
    check(done)
    assert done.segments_done == 2 * SECONDS
    text = await log_text(engine, done)
    assert "DASH manifest (live)" in text and 'stream ended (MPD type="static")' in text
    assert "left the live window" not in text
    assert server.stats["/live/live.mpd"].requests >= 3
    assert all(server.stats[f"/media/timeline/{n}"].requests == 1 for n in media.segments("timeline", 0))


async def test_a_stopped_live_recording_keeps_what_it_got_and_continues(
    engine: Engine, server: FileServer, media: DashMedia, live: LiveMpd
) -> None:
    live.start()
    task = await create(engine, server.url("/live/live.mpd"))
    deadline = time.monotonic() + 20
    while (await engine.get(task.id)).segments_done < 4:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    stopped = await engine.stop(task.id)
    assert stopped.status == TaskStatus.STOPPED and stopped.file is not None
    at_stop = probe(Path(stopped.file)).duration
    assert at_stop >= 1.5  # the recording so far is written out at the stop
    await engine.start(task.id)
    done = await finish(engine, task)
    check(done)  # the whole stream: the manifest keeps every segment, so nothing left the window meanwhile
    assert "resuming the live recording" in await log_text(engine, done)

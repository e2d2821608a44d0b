"""yt-dlp tasks through the real engine, offline: yt-dlp's generic extractor against 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path

import pytest

from core.downloaders.paths import work_dir
from core.engine import Engine
from core.errors import DownloadError, InvalidInput, UnsupportedUrl
from core.models import ACTIVE_STATUSES, Task, TaskKind, TaskOptions, TaskSpec, TaskStatus
from tests.support.engine import engine_config
from tests.support.fileserver import FileServer, random_bytes
from tests.support.media_fixtures import MediaSet, get_media, probe


@pytest.fixture(scope="module")
def media() -> MediaSet:
    return get_media()


@pytest.fixture
def server(media: MediaSet) -> Iterator[FileServer]:
    with FileServer() as srv:
        srv.add_dir("/m", media.dir)
        yield srv


make_config = partial(engine_config, retries=2)

@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with Engine(tmp_path / "db.sqlite", make_config(tmp_path)) as eng:
        yield eng


async def fetch(engine: Engine, url: str, timeout: float = 60, name: str | None = None,
                headers: tuple[tuple[str, str], ...] = (), **options: object) -> Task:
    spec = TaskSpec(url=url, kind=TaskKind.YTDLP, name=name, headers=headers,
                    options=TaskOptions(**options))  # type: ignore[arg-type]
    (task,) = await engine.create([spec])
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id]), timeout)
    return done


def finished(task: Task) -> Path:
    assert task.status == TaskStatus.SUCCESS, task.error
    assert task.file is not None
    path = Path(task.file)
    assert path.exists()
    leftovers = sorted(p.name for p in path.parent.iterdir() if p.name != path.name)
    assert leftovers == [], f"left behind: {leftovers}"
    return path


def segment_paths(server: FileServer, variant: str) -> list[str]:
    return [p for p in server.stats.paths() if p.startswith(f"/m/{variant}/seg")]


async def test_direct_mp4_is_identical_and_named_after_the_title(
    engine: Engine, server: FileServer, media: MediaSet
) -> None:
    task = await fetch(engine, server.url("/m/v360.mp4"))
    path = finished(task)
    assert path.name == "v360.mp4" and task.name == "v360.mp4"
    assert path.read_bytes() == media.bytes("v360.mp4")
    assert task.downloaded == task.total == path.stat().st_size
    logs = [line.text for line in await engine.logs(task.id)]
    assert any(line.startswith("[generic]") for line in logs)


@pytest.mark.parametrize(("quality", "height"), [("360p", 360), ("best", 720), ("worst", 360)])
async def test_hls_quality_picks_the_rendition(engine: Engine, server: FileServer, quality: str, height: int) -> None:
    task = await fetch(engine, server.url("/m/master.m3u8"), quality=quality)
    path = finished(task)
    assert path.suffix == ".mp4"
    other = 720 if height == 360 else 360
    assert len(segment_paths(server, f"hls{height}")) == 3
    assert segment_paths(server, f"hls{other}") == []
    assert (task.segments_done, task.segments_total) == (3, 3)
    video = [s for s in probe(path) if s.kind == "Video"]
    assert video and video[0].height == height


async def test_separate_video_and_audio_are_merged(engine: Engine, server: FileServer) -> None:
    task = await fetch(engine, server.url("/m/split.m3u8"), quality="720p")
    path = finished(task)
    assert path.name == "split.mp4"
    assert [(s.kind, s.height) for s in probe(path)] == [("Video", 720), ("Audio", None)]
    assert segment_paths(server, "hlsv360") == [] and len(segment_paths(server, "hlsa")) >= 3
    logs = [line.text for line in await engine.logs(task.id)]
    assert "post-processing: Merger started" in logs
    assert task.downloaded == task.total and task.downloaded > path.stat().st_size // 2


@pytest.mark.parametrize(("quality", "expected"), [("480p", "v360.mp4"), ("1080p", "v720.mp4")])
async def test_html_video_sources_quality(
    engine: Engine, server: FileServer, media: MediaSet, quality: str, expected: str
) -> None:
    task = await fetch(engine, server.url("/m/page.html"), quality=quality)
    path = finished(task)
    assert path.read_bytes() == media.bytes(expected)
    assert path.name.startswith("Sample Clip")


async def test_audio_extraction_gives_an_audio_only_file(engine: Engine, server: FileServer) -> None:
    task = await fetch(engine, server.url("/m/page.html"), postprocess="audio", name="clip.mp4")
    path = finished(task)
    assert path.name == "clip.m4a"  # the user's name, with the real extension
    streams = probe(path)
    assert [s.kind for s in streams] == ["Audio"] and streams[0].codec == "aac"
    logs = [line.text for line in await engine.logs(task.id)]
    assert "post-processing: ExtractAudio started" in logs


async def test_audio_flags_convert_to_mp3(engine: Engine, server: FileServer) -> None:
    task = await fetch(engine, server.url("/m/v360.mp4"), ytdlp_flags=["-x", "--audio-format", "mp3"])
    path = finished(task)
    assert path.suffix == ".mp3"
    assert [(s.kind, s.codec) for s in probe(path)] == [("Audio", "mp3")]


async def test_mp4_postprocessing_remuxes_matroska(engine: Engine, server: FileServer) -> None:
    task = await fetch(engine, server.url("/m/v360.mkv"), postprocess="mp4")
    path = finished(task)
    assert path.name == "v360.mp4"
    assert [(s.kind, s.codec) for s in probe(path)] == [("Video", "h264"), ("Audio", "aac")]
    logs = [line.text for line in await engine.logs(task.id)]
    assert "post-processing: ToMp4 started" in logs and any("Remuxing" in line for line in logs)


@pytest.mark.parametrize(
    ("flags", "entries"), [([], [1, 2]), (["--playlist-reverse", "-I", "2:"], [2])]
)
async def test_playlist_page_is_one_task_with_per_entry_progress(
    engine: Engine, server: FileServer, media: MediaSet, flags: list[str], entries: list[int]
) -> None:
    task = await fetch(engine, server.url("/m/two.html"), ytdlp_flags=flags)
    assert task.status == TaskStatus.SUCCESS, task.error
    folder = Path(task.file or "")
    assert folder.is_dir() and folder.name == "Two Clips" == task.name
    files = sorted(folder.iterdir())
    assert [p.name[:6] for p in files] == [f"{n:03d} - " for n in entries]
    sources = {1: "v360.mp4", 2: "v720.mp4"}
    assert [p.read_bytes() for p in files] == [media.bytes(sources[n]) for n in entries]
    assert (task.segments_done, task.segments_total) == (len(entries), len(entries))
    assert not work_dir(folder).exists()


async def test_stop_during_a_throttled_download_then_resume(tmp_path: Path, server: FileServer) -> None:
    data = random_bytes(1_200_000, seed=7)
    url = server.add("/big.mp4", data, content_type="video/mp4")
    server.faults.throttle("/big.mp4", 200_000)
    async with Engine(tmp_path / "db.sqlite", make_config(tmp_path)) as engine:
        spec = TaskSpec(url=url, kind=TaskKind.YTDLP)
        (task,) = await engine.create([spec])
        deadline = time.monotonic() + 30
        while (await engine.get(task.id)).downloaded < 150_000:
            assert time.monotonic() < deadline, "no progress"
            await asyncio.sleep(0.05)
        started = time.monotonic()
        stopped = await engine.stop(task.id)
        assert time.monotonic() - started < 2.0
        assert stopped.status == TaskStatus.STOPPED
        final = Path(stopped.file or "")
        part = work_dir(final) / "media.mp4.part"
        assert not final.exists()
        await asyncio.sleep(0.3)  # the thread has unwound: the .part stays as it is
        kept = part.stat().st_size
        assert 0 < kept < len(data)

        server.faults.throttle("/big.mp4", None)
        await engine.start(task.id)
        (done,) = await asyncio.wait_for(engine.wait_finished([task.id]), 30)
        path = finished(done)
        assert path == final and path.read_bytes() == data
        resumed = [h for h in server.stats["/big.mp4"].range_headers if h.startswith("bytes=")]
        assert resumed and int(resumed[-1][6:].split("-")[0]) >= kept > 0


def ffmpeg_children() -> list[int]:
    """Pids of ffmpeg processes this test process started (Linux /proc)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me and b"ffmpeg" in cmd:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_stop_during_post_processing_kills_ffmpeg(engine: Engine, server: FileServer) -> None:
    spec = TaskSpec(url=server.url("/m/long.mp4"), kind=TaskKind.YTDLP,
                    options=TaskOptions(ytdlp_flags=["--recode-video", "mkv"]))  # a 60 s re-encode
    (task,) = await engine.create([spec])
    deadline = time.monotonic() + 30
    while "post-processing: VideoConvertor started" not in [line.text for line in await engine.logs(task.id)]:
        assert time.monotonic() < deadline and (await engine.get(task.id)).status in ACTIVE_STATUSES
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    assert ffmpeg_children(), "ffmpeg should be converting now"
    started = time.monotonic()
    stopped = await engine.stop(task.id)
    assert time.monotonic() - started < 2.0
    assert stopped.status == TaskStatus.STOPPED
    await asyncio.sleep(0.2)
    assert ffmpeg_children() == []
    final = Path(stopped.file or "")
    assert not final.exists() and (work_dir(final) / "media.mp4").exists()  # the download is kept


async def test_global_speed_limit_throttles_ytdlp(tmp_path: Path, server: FileServer) -> None:
    data = random_bytes(400_000, seed=8)
    url = server.add("/limited.mp4", data, content_type="video/mp4")
    async with Engine(tmp_path / "db.sqlite", make_config(tmp_path, speed_limit="200K")) as engine:
        started = time.monotonic()
        task = await fetch(engine, url)
        elapsed = time.monotonic() - started
    assert finished(task).read_bytes() == data
    assert elapsed >= 1.2  # (400 kB - 64 KiB burst) at 200 KiB/s


async def test_http_404_fails_with_ytdlp_message(engine: Engine, server: FileServer) -> None:
    task = await fetch(engine, server.url("/m/missing.mp4"))
    assert task.status == TaskStatus.FAILED
    assert task.error and "HTTP Error 404" in task.error and "Unable to download webpage" in task.error
    assert not task.error.startswith("ERROR")
    logs = [line.text for line in await engine.logs(task.id)]
    assert f"failed: {task.error}" in logs


async def test_page_without_media_fails_as_unsupported(engine: Engine, server: FileServer) -> None:
    task = await fetch(engine, server.url("/m/empty.html"))
    assert task.status == TaskStatus.FAILED
    assert task.error and "Unsupported URL" in task.error


async def test_disallowed_flag_is_rejected_before_anything_runs(engine: Engine, server: FileServer) -> None:
    for flags in (["--exec", "touch /tmp/pwned"], ["-o", "/tmp/x.%(ext)s"], ["--paths", "/tmp"],
                  ["--config-locations", "/etc/yt-dlp.conf"], ["-x", "--ffmpeg-location", "/bin"]):
        spec = TaskSpec(url=server.url("/m/v360.mp4"), kind=TaskKind.YTDLP, options=TaskOptions(ytdlp_flags=flags))
        with pytest.raises(InvalidInput, match="not allowed"):
            await engine.create([spec])
    assert (await engine.list_tasks()).total == 0
    assert server.stats.paths() == []


async def test_cookies_and_headers_reach_the_site(engine: Engine, server: FileServer) -> None:
    task = await fetch(engine, server.url("/m/v360.mp4"), cookies="sid=abc123; lang=en",
                       headers=(("X-Token", "t0k"), ("Cookie", "extra=1")))
    finished(task)
    sent = server.stats["/m/v360.mp4"].headers
    assert sent, "no request reached the media"
    for request in sent:
        assert request.get("X-Token") == "t0k"
        cookie = request.get("Cookie", "")
        assert "sid=abc123" in cookie and "lang=en" in cookie and "extra=1" in cookie


async def test_netscape_cookie_text_is_accepted(engine: Engine, server: FileServer) -> None:
    text = "# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\ttoken\tnet5cape\n"
    task = await fetch(engine, server.url("/m/v360.mp4"), cookies=text)
    finished(task)
    assert all("token=net5cape" in h.get("Cookie", "") for h in server.stats["/m/v360.mp4"].headers)


async def test_extract_returns_info_and_formats(engine: Engine, server: FileServer) -> None:
    info = await engine.extract(server.url("/m/master.m3u8"), quality="360p")
    assert info.title == "master" and info.extractor == "Generic" and not info.is_playlist
    assert info.duration == pytest.approx(3, abs=0.5)
    heights = sorted(f.height for f in info.formats if f.height)
    assert heights == [360, 720]
    assert {f.quality for f in info.formats} == {"360p", "720p"}
    chosen = next(f for f in info.formats if f.format_id == info.selected_format)
    assert chosen.height == 360 and info.ext == "mp4"
    assert all(f.url and f.protocol == "m3u8_native" for f in info.formats)
    assert server.stats.paths() and segment_paths(server, "hls360") == []  # nothing downloaded

    page = await engine.extract(server.url("/m/page.html"), quality="720p")
    assert (page.title or "").startswith("Sample Clip") and page.ext == "mp4"
    assert next(f for f in page.formats if f.format_id == page.selected_format).height == 720

    playlist = await engine.extract(server.url("/m/two.html"))
    assert playlist.is_playlist and playlist.playlist_count == 2 and len(playlist.entries) == 2
    assert playlist.to_dict()["title"] == "Two Clips"


async def test_extract_errors(engine: Engine, server: FileServer) -> None:
    with pytest.raises(DownloadError, match="HTTP Error 404"):
        await engine.extract(server.url("/m/nothing-here"))
    with pytest.raises(UnsupportedUrl, match="Unsupported URL"):
        await engine.extract(server.url("/m/empty.html"))
    with pytest.raises(InvalidInput):
        await engine.extract(server.url("/m/v360.mp4"), flags=["--exec", "id"])
    with pytest.raises(InvalidInput):
        await engine.extract(server.url("/m/v360.mp4"), quality="ultra")


async def test_supported_sites(engine: Engine) -> None:
    sites = await engine.supported_sites()
    assert len(sites) > 1000
    assert "youtube" in sites and "BiliBili" in sites and "generic" not in sites

"""yt-dlp tasks: 1000+ sites through yt-dlp's Python API, in a worker thread.

Flow (all in one thread per task, the event loop never blocks):
  1. extract the info (playlist entries stay flat), format chosen from the
     quality word; 2. claim the final name on the loop (title, or the
     user's name, + the extension the post-processing will give);
  3. `process_ie_result(info, download=True)` into the work folder
     `<final>.parts/` (yt-dlp's own `.part`/`.ytdl` files live there, so a
     stopped download resumes where it was); 4. move the result into place
     atomically and remove the work folder.

Progress hooks feed the engine (bytes, total or estimate, fragment or entry
counts) and take bytes from the shared rate limiter; post-processor hooks
log merge/convert steps. Stopping sets a flag that the progress hook, the
post-processor hook and the logger check: they raise inside yt-dlp, which
unwinds and leaves the `.part` files resumable. The coroutine waits up to
STOP_GRACE seconds for that, then kills any ffmpeg the thread started
(`procs`: merges, conversions, live recordings wait on ffmpeg without
hooks); a thread still busy finishes in the background, and a restart of the
same task waits for it.

Playlists: one task per playlist URL, entries downloaded in order into one
folder named after the playlist (`<title>/001 - <entry> [id].ext`), with
per-entry progress in the task's segment counts. Entries that fail are
logged and skipped; the task fails only if none could be downloaded.
(One URL, one task: it keeps the downloader contract and the API's
one-id-per-add answers simple.) A video URL that also names a playlist
(`watch?v=..&list=..`) downloads the video only, unless `--yes-playlist`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yt_dlp  # type: ignore[import-untyped]
from yt_dlp.utils import DownloadCancelled, MaxDownloadsReached, YoutubeDLError  # type: ignore[import-untyped]

from core.cookies import merge as merge_cookies
from core.cookies import netscape_for
from core.downloaders.base import DownloadContext
from core.downloaders.paths import work_dir
from core.downloaders.refresh import limit_reason, ytdlp_expired
from core.downloaders.ytdlp import procs as ytdlp_procs
from core.downloaders.ytdlp.info import raise_ytdlp_error
from core.downloaders.ytdlp.options import predict_ext, proposed_name, validate_ytdlp_options
from core.downloaders.ytdlp.params import Plan, YtdlpLogger, YtdlpRequest, build_plan, clean_message
from core.errors import DownloadError, InvalidInput
from core.models import Task
from core.naming import sanitize_name, unique_path

STOP_GRACE = 1.2  # seconds a stop waits for the thread to unwind before killing its ffmpeg
KILL_GRACE = 0.5  # and then, after killing it
PREVIOUS_RUN_WAIT = 30.0  # a restart waits this long for a stopped run's thread
PLAYLIST_TEMPLATE = "%(playlist_index)03d - %(title).150B [%(id)s].%(ext)s"
_TEMP_SUFFIXES = (".part", ".ytdl", ".temp", ".tmp")

# Final path → the thread still writing its work folder (after a stop).
_RUNNING: dict[str, threading.Thread] = {}
_RUNNING_LOCK = threading.Lock()


class _Cancelled(DownloadCancelled):  # type: ignore[misc]  # yt-dlp is untyped
    def __init__(self) -> None:
        super().__init__("stopped")


def _is_temp(path: Path) -> bool:
    name = path.name
    return name.endswith(_TEMP_SUFFIXES) or ".part-Frag" in name or ".temp." in name or name.endswith(".ytdl")


class _Progress:
    """yt-dlp's per-file progress → task totals. Thread side, guarded by a lock."""

    def __init__(self, entries: int = 1, playlist: bool = False) -> None:
        self.entries = entries
        self.playlist = playlist or entries > 1
        self.entries_done = 0
        self.done_bytes = 0
        self.current: dict[str, tuple[int, int | None]] = {}
        self.expected: list[int | None] = []  # sizes of the formats of the current entry
        self.fragments: tuple[int, int] | None = None

    def expect(self, info: dict[str, Any]) -> None:
        parts = info.get("requested_formats") or [info]
        self.expected = [p.get("filesize") or p.get("filesize_approx") for p in parts]

    def update(self, d: dict[str, Any]) -> None:
        name = str(d.get("filename") or d.get("tmpfilename") or "")
        downloaded = int(d.get("downloaded_bytes") or 0)
        total = d.get("total_bytes") or d.get("total_bytes_estimate")
        if d.get("status") == "finished":
            size = int(d.get("total_bytes") or downloaded or 0)
            downloaded, total = size, size
        self.current[name] = (downloaded, int(total) if total else None)
        index, count = d.get("fragment_index"), d.get("fragment_count")
        if not self.playlist and isinstance(count, int) and count > 0:
            self.fragments = (min(int(index or 0), count), count)

    def entry_done(self) -> None:
        self.done_bytes += sum(dl for dl, _ in self.current.values())
        self.current.clear()
        self.entries_done = min(self.entries, self.entries_done + 1)
        self.fragments = None

    @property
    def downloaded(self) -> int:
        return self.done_bytes + sum(dl for dl, _ in self.current.values())

    @property
    def total(self) -> int | None:
        known = [t for _, t in self.current.values()]
        if any(t is None for t in known):
            return None
        current = sum(t for t in known if t)
        pending = [s for s in self.expected[len(self.current):] if s]
        current += sum(int(s) for s in pending)
        if self.playlist:
            remaining = self.entries - self.entries_done - (1 if self.current else 0)
            if remaining > 0:
                if not self.entries_done:
                    return None
                current += int(self.done_bytes / self.entries_done * remaining)
        total = self.done_bytes + current
        return total or None

    @property
    def segments(self) -> tuple[int, int] | None:
        if self.playlist:
            return self.entries_done, self.entries
        return self.fragments


class _Job:
    """One yt-dlp run in its own thread, talking to the loop only through thread-safe calls."""

    def __init__(self, task: Task, ctx: DownloadContext, req: YtdlpRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.task = task
        self.ctx = ctx
        self.req = req
        self.loop = loop
        self.cancel = threading.Event()
        self.result: asyncio.Future[Path] = loop.create_future()
        self.result.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.progress = _Progress()
        self.files: list[Path] = []
        self._lock = threading.Lock()
        self._push_pending = False
        self._counted = 0
        self._last_pp: tuple[str, str] | None = None
        self._final_key: str | None = None
        self.thread = threading.Thread(target=self._main, name=f"fetchdeck-ytdlp-{task.id}", daemon=True)

    # ---- loop side -----------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def _settle(self, value: Path | None, exc: BaseException | None) -> None:
        if self.result.done():
            return
        if exc is not None:
            self.result.set_exception(exc)
        else:
            self.result.set_result(value)  # type: ignore[arg-type]

    def _apply_progress(self) -> None:
        with self._lock:
            self._push_pending = False
            downloaded, total, segments = self.progress.downloaded, self.progress.total, self.progress.segments
        sink = self.ctx.progress
        if total is not None:
            sink.set_total(max(total, downloaded))
        sink.set_downloaded(downloaded)
        if segments is not None:
            sink.set_segments(*segments)

    # ---- thread side: talking to the loop -------------------------------------------
    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
            self.loop.call_soon_threadsafe(fn, *args)

    def _log(self, text: str) -> None:
        self._call(self.ctx.log, text)

    def _push(self) -> None:
        with self._lock:
            if self._push_pending:
                return
            self._push_pending = True
        self._call(self._apply_progress)

    def _await(self, coro: Any) -> Any:
        """Run a coroutine on the loop and wait for it, giving up promptly on stop."""
        try:
            fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError:
            coro.close()
            raise _Cancelled() from None
        while True:
            try:
                return fut.result(timeout=0.2)
            except concurrent.futures.TimeoutError:
                if self.cancel.is_set():
                    fut.cancel()
                    raise _Cancelled() from None

    def check(self) -> None:
        if self.cancel.is_set():
            raise _Cancelled()

    # ---- yt-dlp hooks ------------------------------------------------------------
    def _on_progress(self, d: dict[str, Any]) -> None:
        self.check()
        if d.get("status") not in ("downloading", "finished"):
            return
        with self._lock:
            self.progress.update(d)
            downloaded = self.progress.downloaded
            delta = downloaded - self._counted
            self._counted = max(self._counted, downloaded)
        self._push()
        if delta > 0 and d.get("status") == "downloading" and self.ctx.limiter.rate is not None:
            self._await(self.ctx.limiter.acquire(delta))

    def _on_postprocessor(self, d: dict[str, Any]) -> None:
        status, name = str(d.get("status")), str(d.get("postprocessor"))
        if status == "started":
            self.check()
        if (status, name) == self._last_pp or status == "processing":
            return  # yt-dlp calls each hook twice for some post-processors
        self._last_pp = (status, name)
        if name != "MoveFiles":
            self._log(f"post-processing: {name} {status}")

    def _on_file(self, filename: str) -> None:
        with self._lock:
            self.files.append(Path(filename))
            self.progress.entry_done()
        self._push()

    # ---- thread side: the run ------------------------------------------------------
    def _main(self) -> None:
        ytdlp_procs.track()
        try:
            path = self._run()
        except BaseException as exc:  # handed to the coroutine, which re-raises it
            self._call(self._settle, None, exc)
        else:
            self._call(self._settle, path, None)
        finally:
            ytdlp_procs.untrack(threading.get_ident())
            with _RUNNING_LOCK:
                if self._final_key and _RUNNING.get(self._final_key) is self.thread:
                    del _RUNNING[self._final_key]

    def _claim(self, name: str) -> Path:
        final = Path(self._await(self.ctx.claim_output(name)))
        key = str(final)
        with _RUNNING_LOCK:
            _RUNNING[key] = self.thread
        self._final_key = key
        return final

    def _run(self) -> Path:
        logger = YtdlpLogger(self._log, check=self.check, verbose=self.req.verbose)
        try:
            plan = build_plan(self.req, logger)
        except InvalidInput as exc:
            raise DownloadError(str(exc)) from None
        sort = f", sort {','.join(plan.choice.sort)}" if plan.choice.sort else ""
        pp = f", post-processing {plan.postprocess}" if plan.postprocess != "none" else ""
        self._log(f"yt-dlp {yt_dlp.version.__version__}: format {plan.params.get('format')}{sort}{pp}")
        params = {
            **plan.params,
            "progress_hooks": [self._on_progress],
            "postprocessor_hooks": [self._on_postprocessor],
            "post_hooks": [self._on_file],
        }
        given = params["cookiefile"].getvalue() if "cookiefile" in params else None
        ydl: yt_dlp.YoutubeDL | None = None
        try:
            with yt_dlp.YoutubeDL(params) as ydl:
                for extra in plan.extra_pps:
                    ydl.add_post_processor(extra, when="post_process")
                info = ydl.extract_info(self.req.url, download=False)
                self.check()
                if not info:
                    raise DownloadError(logger.errors[-1] if logger.errors else "yt-dlp found nothing at this URL")
                ydl.params["extract_flat"] = False
                if info.get("_type") in ("playlist", "multi_video"):
                    return self._playlist(ydl, info, logger)
                return self._single(ydl, info, plan)
        except _Cancelled:
            raise
        except DownloadCancelled as exc:  # e.g. --max-downloads reached before anything
            if self.cancel.is_set():
                raise _Cancelled() from None
            raise DownloadError(clean_message(exc)) from None
        except YoutubeDLError as exc:
            if self.cancel.is_set():
                raise _Cancelled() from None
            raise_ytdlp_error(exc, logger)
            raise  # not reached
        finally:
            if ydl is not None:
                self._keep_cookies(ydl, given)

    def _keep_cookies(self, ydl: yt_dlp.YoutubeDL, given: str | None) -> None:
        """The cookies the site set during the run go into the engine's jar (core/cookies.py)."""
        jar = self.ctx.clients.cookies
        if jar is None or "cookiejar" not in ydl.__dict__:  # no jar, or yt-dlp never made one
            return
        cookies = list(ydl.cookiejar)
        self._call(merge_cookies, jar, cookies, given)  # on the loop: the jar schedules its own save

    def _prepare(self, ydl: yt_dlp.YoutubeDL, name: str) -> tuple[Path, Path, bool]:
        """Claim the final path; set up the work folder. → (final, work, already_done)."""
        final = self._claim(name)
        work = work_dir(final)
        if final.exists() and not work.exists():
            return final, work, True
        work.mkdir(parents=True, exist_ok=True)
        ydl.params["paths"] = {"home": str(work), "temp": str(work)}
        return final, work, False

    def _single(self, ydl: yt_dlp.YoutubeDL, info: dict[str, Any], plan: Plan) -> Path:
        ext = predict_ext(info, plan.postprocess, plan.audio_format, plan.final_ext)
        user_name = None if self.task.options.auto_name else self.task.name
        final, work, done = self._prepare(ydl, proposed_name(info.get("title"), ext, user_name))
        if done:
            self._log(f"already downloaded: {final.name}")
            return final
        if plan.postprocess != "none" or plan.final_ext:
            ydl.params["final_ext"] = ext  # lets a rerun see a finished conversion
        with self._lock:
            self.progress.expect(info)
        while True:
            try:
                ydl.process_ie_result(info, download=True)
                break
            except YoutubeDLError as exc:  # the media URL expired: extract again, resume the .part
                if self.cancel.is_set() or not ytdlp_expired(clean_message(exc)):
                    raise
                info = self._refreshed(ydl, exc)
        self.check()  # stopped during post-processing: keep the work folder for the rerun
        produced = self._produced(work, ext)
        target = final
        actual = produced.suffix.lstrip(".")
        if actual and actual != final.suffix.lstrip("."):
            target = unique_path(final.parent, f"{final.stem}.{actual}")
            self._log(f"the result is .{actual}, not .{final.suffix.lstrip('.')}: saving as {target.name}")
        os.replace(produced, target)
        self._keep_side_files(work, produced, target)
        shutil.rmtree(work, ignore_errors=True)
        self._finish_progress(target)
        return target

    def _refreshed(self, ydl: yt_dlp.YoutubeDL, exc: YoutubeDLError) -> dict[str, Any]:
        """The info extracted again from the page URL (its media URLs renewed), within the task's refresh
        budget (core/downloaders/refresh.py); yt-dlp then resumes the .part in the work folder (continuedl)."""
        reason = clean_message(exc)
        settings = self.ctx.settings
        if settings.link_refreshes <= 0:
            raise exc
        if not self.ctx.refreshes.take(self.task.id, settings.link_refreshes, settings.link_refresh_window):
            raise DownloadError(f"{reason}; {limit_reason(settings.link_refreshes, settings.link_refresh_window)}")
        fresh = ydl.extract_info(self.req.url, download=False)
        self.check()
        if not fresh or fresh.get("_type") in ("playlist", "multi_video"):
            raise DownloadError(f"{reason}; extracting the page again found no single video")
        self._log(f"{reason.removeprefix('ERROR: ')}: page re-extracted, resuming with the new media URL")
        with self._lock:
            self.progress.expect(fresh)
        return dict(fresh)

    def _playlist(self, ydl: yt_dlp.YoutubeDL, info: dict[str, Any], logger: YtdlpLogger) -> Path:
        entries = [e for e in info.get("entries") or [] if e]
        count = len(entries) or int(info.get("playlist_count") or 0)
        if count == 0:
            raise DownloadError("the playlist is empty")
        title = info.get("title") or info.get("id") or "playlist"
        user_name = None if self.task.options.auto_name else self.task.name
        final, work, done = self._prepare(ydl, proposed_name(str(title), None, user_name))
        if done:
            self._log(f"already downloaded: {final.name}")
            return final
        self._log(f"playlist {title!r}: {count} entries")
        ydl.params["outtmpl"]["default"] = PLAYLIST_TEMPLATE
        # The extraction applied the selection, filters and order: replay exactly that list.
        requested = info.get("requested_entries")
        ydl.params["playlist_items"] = ",".join(str(i) for i in requested) if requested else None
        ydl.params.update(playliststart=1, playlistend=None, playlistreverse=False, playlistrandom=False)
        if ydl.params.get("ignoreerrors") is None:
            ydl.params["ignoreerrors"] = "only_download"
        logger.log_errors = True
        with self._lock:
            self.progress.entries, self.progress.playlist = count, True
        self._push()
        try:
            ydl.process_ie_result(info, download=True)
        except MaxDownloadsReached:
            self._log("stopping at --max-downloads")
        self.check()
        for leftover in list(work.iterdir()):
            if _is_temp(leftover):
                with contextlib.suppress(OSError):
                    shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        kept = [p for p in work.iterdir() if p.is_file()]
        if not kept:
            shutil.rmtree(work, ignore_errors=True)
            raise DownloadError(logger.errors[-1] if logger.errors else "nothing in the playlist could be downloaded")
        failed = count - self.progress.entries_done
        if failed > 0:
            self._log(f"{failed} of {count} entries were not downloaded")
        for path in kept:  # yt-dlp's names are safe already; make them ours too
            clean = sanitize_name(path.name)
            if clean != path.name:
                os.replace(path, unique_path(work, clean))
        os.replace(work, final)
        self._finish_progress(None)
        return final

    def _produced(self, work: Path, ext: str) -> Path:
        for path in reversed(self.files):
            if path.exists() and path.parent == work:
                return path
        candidates = [p for p in work.iterdir() if p.is_file() and not _is_temp(p) and p.name.startswith("media.")]
        if not candidates:
            raise DownloadError("yt-dlp finished without producing a file")
        candidates.sort(key=lambda p: (p.suffix == f".{ext}", p.stat().st_size), reverse=True)
        return candidates[0]

    def _keep_side_files(self, work: Path, produced: Path, target: Path) -> None:
        """Subtitles, thumbnails, descriptions asked for with flags land next to the file."""
        for path in sorted(work.iterdir()):
            if path == produced or not path.is_file() or _is_temp(path) or not path.name.startswith("media."):
                continue
            rest = path.name[len("media"):]
            if rest.rsplit(".", 1)[-1] in ("mp4", "webm", "mkv", "m4a", "mp3", "opus", "ts", "flv"):
                continue  # an unmerged part or an original kept by yt-dlp
            side = unique_path(target.parent, sanitize_name(target.stem + rest))
            with contextlib.suppress(OSError):
                os.replace(path, side)

    def _finish_progress(self, target: Path | None) -> None:
        with self._lock:
            downloaded = self.progress.downloaded
            if not downloaded and target is not None:
                with contextlib.suppress(OSError):
                    downloaded = target.stat().st_size
            self.progress.done_bytes, self.progress.current = downloaded, {}
            self.progress.expected = []
            self.progress.entries_done = self.progress.entries
            self.progress.fragments = None
        self._call(self.ctx.progress.set_downloaded, downloaded)
        self._call(self.ctx.progress.set_total, downloaded)


async def _wait_for_previous_run(final: str) -> None:
    """A stopped run's thread may still be unwinding; never run two on one work folder."""
    deadline = time.monotonic() + PREVIOUS_RUN_WAIT
    while True:
        with _RUNNING_LOCK:
            thread = _RUNNING.get(final)
        if thread is None or not thread.is_alive():
            return
        if time.monotonic() > deadline:
            raise DownloadError("the previous run of this download is still finishing; try again shortly")
        await asyncio.sleep(0.05)


class YtdlpDownloader:
    async def run(self, task: Task, ctx: DownloadContext) -> Path:
        try:
            validate_ytdlp_options(task.options, task.url)
        except InvalidInput as exc:
            raise DownloadError(str(exc)) from None
        req = YtdlpRequest.from_task(task, ctx.proxy, ctx.settings.retries, ctx.settings.read_timeout)
        req = dataclasses.replace(req, jar_cookies=netscape_for(ctx.clients.cookies, task.url))
        if task.file:
            await _wait_for_previous_run(task.file)
        ytdlp_procs.install()
        job = _Job(task, ctx, req, asyncio.get_running_loop())
        job.start()
        try:
            return await asyncio.shield(job.result)
        except asyncio.CancelledError:
            job.cancel.set()
            await _settled(job.result, STOP_GRACE)
            if not job.result.done() and job.thread.ident is not None:
                if ytdlp_procs.kill_children(job.thread.ident):  # ffmpeg merging, converting, recording
                    await _settled(job.result, KILL_GRACE)
            raise


async def _settled(fut: asyncio.Future[Path], timeout: float) -> None:
    """Wait up to timeout for fut, whatever its outcome (it is not cancelled)."""
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(asyncio.shield(fut), timeout)


DOWNLOADER = YtdlpDownloader()

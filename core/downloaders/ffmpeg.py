"""Finding and running ffmpeg without blocking the event loop.

The one ffmpeg locator (HLS remux and yt-dlp post-processing both use it):
the ffmpeg that imageio-ffmpeg ships comes first (same build everywhere),
then one on PATH. Every run is `asyncio.create_subprocess_exec`; a cancelled
run kills its ffmpeg so nothing outlives the task. File paths are passed as
`file:` URLs so a name with a colon is never taken for a protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import shutil
import struct
import termios
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import DownloadError

BASE_ARGS = ("-nostdin", "-hide_banner", "-loglevel", "error", "-y")


class FfmpegError(DownloadError):
    pass


@functools.cache
def find_ffmpeg() -> str | None:
    """The bundled ffmpeg, else ffmpeg on PATH, else None."""
    try:
        import imageio_ffmpeg  # type: ignore[import-untyped]

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        if exe and Path(exe).exists():
            return str(exe)
    except Exception:  # no binary for this platform, or the package is missing
        pass
    return shutil.which("ffmpeg")


def container_for(path: Path) -> str:
    """ffmpeg's muxer name for an output extension (outputs are written under temp names)."""
    return {".mkv": "matroska", ".ts": "mpegts", ".m4a": "ipod", ".mov": "mov"}.get(path.suffix.lower(), "mp4")


def file_url(path: Path) -> str:
    return "file:" + str(path)


@dataclass(frozen=True, slots=True)
class Input:
    url: str  # "file:/x.ts", "concatf:video.list", "pipe:0"
    format: str | None = None  # demuxer to force ("mpegts"), None = probe


def remux_args(inputs: Sequence[Input], output: Path, fmt: str) -> list[str]:
    """Copy streams into one container: video and audio from the first input, audio from the others."""
    args: list[str] = []
    for item in inputs:
        if item.format:
            args += ["-f", item.format]
        args += ["-i", item.url]
    args += ["-map", "0:v?", "-map", "0:a?"]
    for n in range(1, len(inputs)):
        args += ["-map", f"{n}:a?"]
    args += ["-c", "copy", "-ignore_unknown"]
    if fmt in ("mp4", "ipod", "mov"):
        # ADTS AAC from MPEG-TS needs its bitstream filter to go into MP4.
        args += ["-bsf:a", "aac_adtstoasc"]
    args += ["-f", fmt, file_url(output)]
    return args


def last_line(err: bytes) -> str:
    lines = [line for line in err.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"


async def run_ffmpeg(args: Sequence[str], exe: str | None = None, cwd: Path | None = None) -> None:
    exe = exe or find_ffmpeg()
    if exe is None:
        raise FfmpegError("ffmpeg not found")
    proc = await asyncio.create_subprocess_exec(
        exe, *BASE_ARGS, *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    try:
        _, err = await proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise FfmpegError(f"ffmpeg failed ({proc.returncode}): {last_line(err)}")


async def remux(inputs: Sequence[Input], output: Path, exe: str | None = None, cwd: Path | None = None) -> None:
    """Remux into `output`; its extension picks the container."""
    await run_ffmpeg(remux_args(inputs, output, container_for(output)), exe, cwd)


PIPE_SIZE = 1 << 20  # asked of F_SETPIPE_SZ (1 MiB is Linux's default maximum)
POLL = 0.002


def _pipe_pending(fd: int) -> int:
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])


class PipeRemuxer:
    """ffmpeg remuxing one stream from a pipe, fed while segments still arrive.

    The pipe is enlarged to 1 MiB and written only when a whole chunk fits
    (FIONREAD tells how much ffmpeg has yet to read), with non-blocking writes
    from the event loop. Filling a pipe that is already full instead wakes
    writer and ffmpeg for every 32 KiB ffmpeg reads, which on the VMs this was
    measured on doubled ffmpeg's CPU time; asyncio's pipe transport is worse
    still (it re-slices its buffer on every partial write).
    """

    def __init__(self, output: Path, fmt: str, input_format: str, exe: str) -> None:
        self.output = output
        self._args = remux_args([Input("pipe:0", input_format)], output, fmt)
        self._exe = exe
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr: asyncio.Task[bytes] | None = None
        self._fd: int | None = None
        self._size = 64 * 1024

    async def start(self) -> None:
        read_fd, write_fd = os.pipe()
        try:
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            with contextlib.suppress(OSError, AttributeError):
                self._size = int(fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ))
            os.set_blocking(write_fd, False)
            self._proc = await asyncio.create_subprocess_exec(
                self._exe, *BASE_ARGS, *self._args,
                stdin=read_fd,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except BaseException:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        self._fd = write_fd
        assert self._proc.stderr is not None
        self._stderr = asyncio.create_task(self._proc.stderr.read())

    async def feed(self, data: bytes | memoryview) -> None:
        """Returns once all of `data` is in the pipe (waiting while ffmpeg catches up)."""
        view = memoryview(data)
        chunk_limit = max(self._size // 2, 64 * 1024)
        while view:
            if self._fd is None or self._proc is None or self._proc.returncode is not None:
                await self._fail()
            assert self._fd is not None
            free = self._size - _pipe_pending(self._fd)
            if free < min(len(view), chunk_limit):
                await asyncio.sleep(POLL)
                continue
            try:
                n = os.write(self._fd, view[:free])
            except BlockingIOError:
                await asyncio.sleep(POLL)
                continue
            except (BrokenPipeError, ConnectionResetError):
                self._close_pipe()
                await self._fail()
            view = view[n:]

    def _close_pipe(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    async def finish(self) -> None:
        assert self._proc is not None
        self._close_pipe()
        await self._proc.wait()
        if self._proc.returncode != 0:
            await self._fail()
        if self._stderr is not None:
            await self._stderr

    async def _fail(self) -> None:
        assert self._proc is not None and self._stderr is not None
        self._close_pipe()
        await self._proc.wait()
        err = await self._stderr
        raise FfmpegError(f"ffmpeg failed ({self._proc.returncode}): {last_line(err)}")

    async def abort(self) -> None:
        self._close_pipe()
        if self._proc is None:
            return
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._proc.wait()
        if self._stderr is not None:
            self._stderr.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._stderr

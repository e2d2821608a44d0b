"""Finding and running ffmpeg without blocking the event loop.

The ffmpeg that imageio-ffmpeg ships comes first (same build everywhere),
then one on PATH. Every run is `asyncio.create_subprocess_exec`; a cancelled
run kills its ffmpeg so nothing outlives the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
from collections.abc import Sequence
from pathlib import Path

from core.errors import DownloadError

BASE_ARGS = ("-nostdin", "-hide_banner", "-loglevel", "error", "-y")


class FfmpegError(DownloadError):
    pass


@functools.cache
def find_ffmpeg() -> str | None:
    """The bundled ffmpeg, else ffmpeg on PATH, else None."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        if exe and Path(exe).exists():
            return str(exe)
    except Exception:  # no binary for this platform, or the package is missing
        pass
    return shutil.which("ffmpeg")


def container_for(path: Path) -> str:
    """ffmpeg's muxer name for an output extension (outputs are written under temp names)."""
    return {".mkv": "matroska", ".ts": "mpegts", ".m4a": "ipod", ".mov": "mov"}.get(path.suffix.lower(), "mp4")


def remux_args(inputs: Sequence[str], output: Path, fmt: str, input_format: str | None = None) -> list[str]:
    """Copy every input's streams into one container: video from the first, audio from any."""
    args: list[str] = []
    for item in inputs:
        if input_format:
            args += ["-f", input_format]
        args += ["-i", item]
    if len(inputs) == 1:
        args += ["-map", "0:v?", "-map", "0:a?"]
    else:
        args += ["-map", "0:v?", "-map", "0:a?"]
        for n in range(1, len(inputs)):
            args += ["-map", f"{n}:a?"]
    args += ["-c", "copy", "-ignore_unknown"]
    if fmt in ("mp4", "ipod", "mov"):
        # ADTS AAC from MPEG-TS needs its bitstream filter to go into MP4.
        args += ["-bsf:a", "aac_adtstoasc"]
    args += ["-f", fmt, str(output)]
    return args


async def run_ffmpeg(args: Sequence[str], exe: str | None = None) -> None:
    exe = exe or find_ffmpeg()
    if exe is None:
        raise FfmpegError("ffmpeg not found")
    proc = await asyncio.create_subprocess_exec(
        exe, *BASE_ARGS, *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
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


def last_line(err: bytes) -> str:
    lines = [line for line in err.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"


async def remux(inputs: Sequence[Path], output: Path, exe: str | None = None) -> None:
    """Remux files into `output` (its extension picks the container)."""
    await run_ffmpeg(remux_args([str(p) for p in inputs], output, container_for(output)), exe)


class PipeRemuxer:
    """ffmpeg reading one stream from stdin: the remux runs while segments arrive.

    `feed` is await-able so a slow ffmpeg applies backpressure; `finish`
    closes stdin and waits; `abort` kills it (on error or cancellation).
    """

    def __init__(self, output: Path, fmt: str, input_format: str, exe: str) -> None:
        self.output = output
        self._args = remux_args(["pipe:0"], output, fmt, input_format)
        self._exe = exe
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr: asyncio.Task[bytes] | None = None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            self._exe, *BASE_ARGS, *self._args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self._proc.stderr is not None
        self._stderr = asyncio.create_task(self._proc.stderr.read())

    async def feed(self, data: bytes | memoryview) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(data)
            await self._proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            await self._fail()

    async def finish(self) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._proc.stdin.close()
            await self._proc.stdin.wait_closed()
        await self._proc.wait()
        if self._proc.returncode != 0:
            await self._fail()

    async def _fail(self) -> None:
        assert self._proc is not None and self._stderr is not None
        await self._proc.wait()
        err = await self._stderr
        raise FfmpegError(f"ffmpeg failed ({self._proc.returncode}): {last_line(err)}")

    async def abort(self) -> None:
        if self._proc is None or self._proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()
        await self._proc.wait()
        if self._stderr is not None:
            self._stderr.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._stderr

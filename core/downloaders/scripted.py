"""A downloader that follows a script: the seam for testing the task lifecycle without sockets.

Like `httpx.MockTransport`, it is product code so that tests (and anyone
embedding the engine) can drive the real Engine and store through every
lifecycle path deterministically: register it for a kind in the engine's
`DownloaderRegistry`, give it scripts, and signal its gates.

    gate = Gate()
    fake = ScriptedDownloader()
    fake.script("https://example.test/a.bin", Report(10, total=100), Wait(gate), Finish(b"data"))
    registry = DownloaderRegistry({TaskKind.HTTP: lambda: fake})
    ...
    await gate.arrived.wait()   # the run is at the gate: stop it, delete it, fill the disk...
    gate.open()                 # or let it go on

Each run of a task takes the next script queued for its URL (or the default
script); a run with no script fails with a DownloadError. `runs` records every
run and how it ended.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from core.errors import DownloadError, WrongKind
from core.models import Task, TaskKind

if TYPE_CHECKING:
    from core.downloaders.base import DownloadContext


class Gate:
    """A point a script waits at: `arrived` is set when a run reaches it, `open()` lets runs through."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self._opened = asyncio.Event()

    def open(self) -> None:
        self._opened.set()

    async def passed(self) -> None:
        self.arrived.set()
        await self._opened.wait()


@dataclass(frozen=True, slots=True)
class Report:
    """Report progress: `downloaded` bytes so far (and the total, if known)."""

    downloaded: int
    total: int | None = None
    segments: tuple[int, int] | None = None  # (done, total) for a segmented kind


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait at `gate` until the test opens it (a stop or delete meanwhile cancels the run here)."""

    gate: Gate


@dataclass(frozen=True, slots=True)
class Fail:
    """Raise `error` (a DownloadError fails the task with its message; anything else is a crash)."""

    error: Exception


@dataclass(frozen=True, slots=True)
class SwitchKind:
    """Raise WrongKind: the response shows the task is of another kind."""

    kind: TaskKind
    why: str = "the script says so"


@dataclass(frozen=True, slots=True)
class Claim:
    """Claim the output file now (`name`, default the task's name): the engine records it on the task."""

    name: str | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """Claim the output file (`name`, default the task's name; a resumed or Claim'ed task keeps its file),
    write `data` to it and succeed."""

    data: bytes = b""
    name: str | None = None


Step = Report | Wait | Fail | SwitchKind | Claim | Finish
Outcome = Literal["running", "finished", "cancelled", "raised"]


@dataclass(slots=True)
class ScriptedRun:
    """One run of a task: which task, as which kind, and how it ended."""

    task_id: int
    kind: TaskKind
    url: str
    outcome: Outcome = "running"
    path: Path | None = None


@dataclass
class ScriptedDownloader:
    """A Downloader (`async run(task, ctx) -> Path`) whose steps are scripted per URL."""

    default: Sequence[Step] | None = None  # the script of a run whose URL has none queued
    runs: list[ScriptedRun] = field(default_factory=list)
    _scripts: defaultdict[str, deque[Sequence[Step]]] = field(default_factory=lambda: defaultdict(deque))

    def script(self, url: str, *steps: Step) -> None:
        """Queue a script for the next run of a task with this URL."""
        self._scripts[url].append(steps)

    def runs_of(self, task_id: int) -> list[ScriptedRun]:
        return [run for run in self.runs if run.task_id == task_id]

    async def run(self, task: Task, ctx: DownloadContext) -> Path:
        queued = self._scripts.get(task.url)
        steps = queued.popleft() if queued else self.default
        record = ScriptedRun(task.id, task.kind, task.url)
        self.runs.append(record)
        if steps is None:
            record.outcome = "raised"
            raise DownloadError(f"no script for {task.url}")
        try:
            for step in steps:
                path = await self._step(step, task, ctx)
                if path is not None:
                    record.outcome, record.path = "finished", path
                    return path
        except asyncio.CancelledError:
            record.outcome = "cancelled"
            raise
        except BaseException:
            record.outcome = "raised"
            raise
        record.outcome = "raised"
        raise DownloadError("the script ended without Finish")

    @staticmethod
    async def _step(step: Step, task: Task, ctx: DownloadContext) -> Path | None:
        match step:
            case Report(downloaded=downloaded, total=total, segments=segments):
                ctx.progress.set_total(total)
                ctx.progress.set_downloaded(downloaded)
                if segments is not None:
                    ctx.progress.set_segments(*segments)
            case Wait(gate=gate):
                await gate.passed()
            case Fail(error=error):
                raise error
            case SwitchKind(kind=kind, why=why):
                raise WrongKind(kind, why)
            case Claim(name=name):
                await ctx.claim_output(name or task.name)
            case Finish(data=data, name=name):
                path = await ctx.claim_output(name or task.name)
                await asyncio.to_thread(path.write_bytes, data)
                ctx.progress.set_downloaded(len(data))
                return path
        return None

"""`fetchdeck get`: one-shot downloads with the engine in this process.

Re-running it with the same URL and download dir resumes the unfinished
download (like `aria2c -c`); a finished one is reported, not fetched again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.config import Config
from core.downloaders.memory import freeze_startup_objects
from core.downloaders.net import HttpClients
from core.engine import Engine
from core.events import TaskFailed, TaskStopped, TaskSucceeded
from core.models import Priority, Task, TaskKind, TaskSpec, TaskStatus
from tui.cli_support import CONNECT_TIMEOUT

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

    from tui.get_progress import TransferOrNote

NOTE_REFRESH = 0.25  # how often the progress lines re-read the tasks' notes (notes publish no event)


@dataclass(frozen=True, slots=True)
class GetRequest:
    urls: tuple[str, ...]
    kind: TaskKind | None
    name: str | None
    specs_options: dict[str, object]
    headers: tuple[tuple[str, str], ...]
    # Give up after this many seconds when the server has not answered once in this run (refused,
    # no such host, connect timeout); once it has, the configured retries apply as for queued tasks.
    connect_timeout: float = CONNECT_TIMEOUT
    # queue control (issue 14): the new tasks' priority, and not before this unix time
    priority: Priority = Priority.NORMAL
    start_at: float | None = None


class Stderr:
    """Where `get` writes what it has to say besides the files: a rich Console on stderr, made only when
    something needs it. Deciding that stderr is not a terminal needs no rich: with neither TTY_COMPATIBLE
    nor FORCE_COLOR set (rich's overrides) and no tty behind sys.stderr, rich's Console says the same."""

    def __init__(self) -> None:
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True)
        return self._console

    @property
    def is_terminal(self) -> bool:
        if self._console is None and not {"TTY_COMPATIBLE", "FORCE_COLOR"} & os.environ.keys():
            isatty = getattr(sys.stderr, "isatty", None)
            try:
                if isatty is None or not isatty():
                    return False
            except ValueError:  # a closed stderr: rich answers False too
                return False
        return self.console.is_terminal

    def print(self, text: str) -> None:
        self.console.print(text)


def __getattr__(name: str) -> type[TransferOrNote]:
    """TransferOrNote lives in tui/get_progress.py (imported for a terminal only); still importable from here."""
    if name == "TransferOrNote":
        from tui.get_progress import TransferOrNote

        return TransferOrNote
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


async def run_get(database: Path, config: Config, request: GetRequest, err: Stderr) -> int:
    """Download every URL; return the process exit code."""
    clients = HttpClients(
        read_timeout=config.download.read_timeout,
        connect_timeout=min(15.0, request.connect_timeout),
        unreachable_budget=request.connect_timeout,
    )
    engine = Engine(database, config, run_queued=False, shutdown_status=TaskStatus.STOPPED, clients=clients)
    await engine.open()
    freeze_startup_objects()
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, interrupted.set)
    try:
        ids, done = await _queue(engine, request, err)
        if ids:
            waiter = asyncio.create_task(_show_progress(engine, ids, err))
            stopper = asyncio.create_task(interrupted.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if interrupted.is_set():
                waiter.cancel()
                err.print("interrupted: downloads stopped, run the same command again to resume")
                return 130
            done.extend(await waiter)
    finally:
        await engine.close()
    return _report(done, err)


async def _queue(engine: Engine, request: GetRequest, err: Stderr) -> tuple[list[int], list[Task]]:
    from core.models import TaskOptions

    options = TaskOptions(**request.specs_options)  # type: ignore[arg-type]
    ids: list[int] = []
    already: list[Task] = []
    given = [TaskSpec(url=url, kind=request.kind, name=request.name, headers=request.headers, options=options,
                      priority=request.priority, start_at=request.start_at) for url in request.urls]
    for spec in [entry for one in given for entry in await engine.expand(one)]:  # --split-playlist
        existing = await engine.find(spec.url.strip(), spec.folder or "")
        if existing is not None and existing.status == TaskStatus.SUCCESS and existing.file:
            if Path(existing.file).exists():
                already.append(existing)
                continue
        if existing is not None and existing.status != TaskStatus.SUCCESS:
            if existing.status != TaskStatus.DOWNLOADING:
                await engine.start(existing.id)
            ids.append(existing.id)
            continue
        (task,) = await engine.create([spec], start=True)
        ids.append(task.id)
    return ids, already


async def _show_progress(engine: Engine, ids: list[int], err: Stderr) -> list[Task]:
    if not err.is_terminal:
        return await engine.wait_finished(ids)
    from tui.get_progress import progress_bar

    rows: dict[int, TaskID] = {}
    sub = engine.subscribe()

    async def show(task_id: int) -> None:
        task = await engine.get(task_id)
        bar.update(rows[task_id], description=_label(task), total=task.total, completed=task.downloaded,
                   note=task.note)

    try:
        with progress_bar(err.console) as bar:
            for task_id in ids:
                task = await engine.get(task_id)
                rows[task_id] = bar.add_task(_label(task), total=task.total, completed=task.downloaded, note=None)
            remaining = set(ids)
            refreshed = time.monotonic()
            while remaining:
                event = await sub.get(timeout=NOTE_REFRESH)
                if time.monotonic() - refreshed >= NOTE_REFRESH:  # a note (retrying...) comes without an event
                    refreshed = time.monotonic()
                    for task_id in remaining:
                        await show(task_id)
                if event is None:
                    if sub.closed:
                        break
                    continue
                if event.task_id not in rows:
                    continue
                await show(event.task_id)
                if isinstance(event.payload, TaskSucceeded | TaskFailed | TaskStopped):
                    remaining.discard(event.task_id)
    finally:
        sub.close()
    return [await engine.get(i) for i in ids]


def _label(task: Task) -> str:
    name = task.name if len(task.name) <= 40 else task.name[:37] + "..."
    return name


def _report(tasks: list[Task], err: Stderr) -> int:
    failures = 0
    for task in tasks:
        if task.status == TaskStatus.SUCCESS:
            sys.stdout.write(f"{task.file}\n")
        else:
            failures += 1
            reason = task.error or task.status.value
            sys.stderr.write(f"fetchdeck: {task.url}: {reason}\n")
    sys.stdout.flush()
    return 1 if failures else 0

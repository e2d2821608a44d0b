"""The engine: tasks, their lifecycle, scheduling, progress and persistence.

One Engine per process. Every public method is async and safe to call from the
API or the TUI while downloads run. Downloads are asyncio tasks; stopping one
is cancellation, and the downloader leaves its files resumable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from core.config import Config
from core.detect import guess_kind
from core.downloaders import backend_url, get_downloader
from core.downloaders.base import DownloadContext, DownloadSettings, describe_error
from core.downloaders.http_clients import HttpClients
from core.downloaders.paths import temp_paths
from core.downloaders.ytdlp import validate_ytdlp_options
from core.errors import DownloadError, IllegalTransition, InvalidInput, StoreUnavailable, TaskNotFound, WrongKind
from core.events import EventBus, EventType, Subscription
from core.models import (
    ACTIVE_STATUSES,
    EngineStats,
    LogLine,
    Task,
    TaskKind,
    TaskOptions,
    TaskPage,
    TaskSpec,
    TaskStatus,
    can_transition,
    forwardable_headers,
)
from core.naming import name_from_url, resolve_folder, sanitize_name, unique_path
from core.progress import ProgressPump
from core.ratelimit import RateLimiter
from core.scheduler import Scheduler, StopReason, TaskRun
from core.store.repo import TaskFilter, TaskRepo
from core.validation import check_folder, normalize_proxy, validate_url

if TYPE_CHECKING:
    from core.downloaders.ytdlp import MediaInfo

log = logging.getLogger("fetchdeck.engine")

MAX_BATCH = 100_000
SAVE_RETRY_SECONDS = 2.0  # how often a final status the store refused is offered again


MARKED_FAILED = "marked as failed by a client"


class UnsavedFinish(NamedTuple):
    task: Task  # as the run left it: the status and outcome to save
    stored: TaskStatus  # what the store still says


class Engine:
    def __init__(
        self,
        database: Path,
        config: Config,
        *,
        run_queued: bool = True,
        shutdown_status: TaskStatus = TaskStatus.WAITING,
    ) -> None:
        """run_queued=False: only run tasks this engine was explicitly asked to
        start (the one-shot `fetchdeck get`), never the rest of the queue."""
        self.database = database
        self.config = config
        self.download_root = config.download.download_dir.expanduser().resolve()
        self.allowed_roots = tuple(Path(p).expanduser().resolve() for p in config.download.allowed_roots)
        self.bus = EventBus()
        self.clients = HttpClients(read_timeout=config.download.read_timeout)
        self.limiter = RateLimiter(config.download.speed_limit_bytes)
        self.scheduler = Scheduler(config.download.max_concurrent)
        self._run_queued = run_queued
        self._claimed: set[int] = set()
        self._shutdown_status = shutdown_status
        self._repo: TaskRepo | None = None
        self._loops: list[asyncio.Task[None]] = []
        self.progress = ProgressPump(self.scheduler.runs, self.bus)
        # Tasks whose run ended but whose final state the store refused (disk full):
        # readers see them from here until a retry saves them.
        self._unsaved: dict[int, UnsavedFinish] = {}
        self._closing = False

    # ---- lifecycle -------------------------------------------------------
    async def open(self) -> Engine:
        self.download_root.mkdir(parents=True, exist_ok=True)
        self._repo = await TaskRepo.open(self.database)
        self.progress.repo = self._repo
        # Start-up recovery: whatever was downloading when the last process died is
        # queued again (callers hold the data dir lock, so nothing else runs it).
        recovered = await self.repo.set_status_where(TaskStatus.DOWNLOADING, TaskStatus.WAITING)
        if recovered:
            log.info("recovered %d interrupted task(s)", recovered)
        self._loops = [
            asyncio.create_task(self._schedule_loop(), name="fetchdeck-scheduler"),
            asyncio.create_task(self.progress.run(), name="fetchdeck-ticker"),
            asyncio.create_task(self._save_unsaved_loop(), name="fetchdeck-unsaved"),
        ]
        self.scheduler.poke()
        return self

    async def close(self) -> None:
        """Stop running downloads (left resumable), flush, close the store."""
        if self._closing:
            return
        self._closing = True
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        runs = list(self.scheduler.runs.values())
        for run in runs:
            await self._cancel_run(run, StopReason.SHUTDOWN)
        await self.progress.flush()
        if not await self._save_unsaved():
            log.error("could not save the final status of %d task(s): %s; they are resumed at the next start",
                      len(self._unsaved), ", ".join(map(str, sorted(self._unsaved))))
        await self.clients.aclose()
        self.bus.close_all()
        if self._repo is not None:
            await self._repo.close()
            self._repo = None

    async def __aenter__(self) -> Engine:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def repo(self) -> TaskRepo:
        if self._repo is None:
            raise RuntimeError("engine is not open")
        return self._repo

    # ---- queries ---------------------------------------------------------
    def _live(self, task: Task) -> Task:
        run = self.scheduler.runs.get(task.id)
        if run:
            return run.task.copy()
        unsaved = self._unsaved.get(task.id)
        return unsaved.task.copy() if unsaved else task

    async def get(self, task_id: int) -> Task:
        run = self.scheduler.runs.get(task_id)
        if run:
            return run.task.copy()
        if task_id in self._unsaved:
            return self._unsaved[task_id].task.copy()
        task = await self.repo.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    async def list_tasks(
        self, page: int = 1, size: int = 50, flt: TaskFilter | None = None
    ) -> TaskPage:
        page = max(1, page)
        size = max(1, min(size, 10_000))
        items, total = await self.repo.page((page - 1) * size, size, flt or TaskFilter())
        return TaskPage(items=[self._live(t) for t in items], total=total, page=page, size=size)

    async def active(self) -> list[Task]:
        page = await self.list_tasks(
            1, 10_000, TaskFilter(statuses=frozenset(ACTIVE_STATUSES), newest_first=False)
        )
        return page.items

    async def folders(self) -> list[str]:
        return await self.repo.folders()

    async def find(self, url: str, folder: str = "") -> Task | None:
        """The newest task for this URL and folder (for `get` re-runs)."""
        items, _ = await self.repo.page(0, 50, TaskFilter(text=url))
        for task in items:
            if task.url == url and task.folder == folder:
                return self._live(task)
        return None

    async def logs(self, task_id: int) -> list[LogLine]:
        await self.get(task_id)  # raises TaskNotFound
        try:
            await self.progress.flush_logs()
        except StoreUnavailable:  # the disk is full: the lines not stored yet are still in memory
            return await self.repo.logs(task_id) + self.progress.pending_logs(task_id)
        return await self.repo.logs(task_id)

    async def stats(self) -> EngineStats:
        counts = await self.repo.count_by_status()
        for unsaved in self._unsaved.values():
            counts[unsaved.stored] -= 1
            counts[unsaved.task.status] += 1
        speed = sum(r.task.speed for r in self.scheduler.runs.values())
        return EngineStats(
            total=sum(counts.values()),
            waiting=counts[TaskStatus.WAITING],
            downloading=counts[TaskStatus.DOWNLOADING],
            success=counts[TaskStatus.SUCCESS],
            failed=counts[TaskStatus.FAILED],
            stopped=counts[TaskStatus.STOPPED],
            speed=speed,
        )

    def subscribe(self, after_seq: int | None = None) -> Subscription:
        return self.bus.subscribe(after_seq)

    # ---- commands --------------------------------------------------------
    async def create(self, specs: Sequence[TaskSpec], start: bool = True) -> list[Task]:
        """Validate and store new tasks in one transaction; queue them if start."""
        if not specs:
            raise InvalidInput("no tasks given")
        if len(specs) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} tasks per request")
        now = time.time()
        tasks: list[Task] = []
        for spec in specs:
            backend = spec.options.backend
            url = backend_url(backend, spec.url) if backend else validate_url(spec.url)
            kind = spec.kind or guess_kind(url)
            options = spec.options
            if kind is TaskKind.YTDLP:
                options = validate_ytdlp_options(options, url)  # bad flags/quality/cookies → 400
            if spec.kind is None and not options.auto_kind:
                options = options.model_copy(update={"auto_kind": True})
            if options.proxy:
                normalize_proxy(options.proxy)  # raises InvalidInput
            folder = self._check_folder(spec.folder)
            name = sanitize_name(spec.name) if spec.name and spec.name.strip() else ""
            tasks.append(
                Task(
                    id=0,
                    kind=kind,
                    url=url,
                    name=name or name_from_url(url),
                    folder=folder,
                    headers=forwardable_headers(spec.headers),
                    status=TaskStatus.WAITING if start else TaskStatus.STOPPED,
                    options=options if name else options.model_copy(update={"auto_name": True}),
                    is_live=spec.is_live,
                    created_at=now,
                    updated_at=now,
                )
            )
        await self.repo.insert_many(tasks)
        ids = [t.id for t in tasks]
        if start:
            self._claimed.update(ids)
        self.bus.publish(EventType.CREATE, {"ids": ids, "count": len(ids)})
        self.scheduler.poke()
        return tasks

    def _check_folder(self, folder: str | None) -> str:
        return check_folder(folder, self.download_root, self.allowed_roots)

    async def start(self, task_id: int, folder: str | None = None, delete_segments: bool | None = None) -> Task:
        await self._save_unsaved(task_id)
        task = await self.get(task_id)
        if task.status == TaskStatus.DOWNLOADING:
            raise IllegalTransition(f"task {task_id} is already downloading")
        self._claimed.add(task_id)
        if task.status == TaskStatus.WAITING and folder is None and delete_segments is None:
            self.scheduler.poke()
            return task
        changes: dict[str, Any] = {"status": TaskStatus.WAITING, "error": None}
        if folder is not None and self._check_folder(folder) != task.folder:
            changes["folder"] = self._check_folder(folder)
            changes["file"] = None
            changes["downloaded"] = 0
        if delete_segments is not None:
            changes["options"] = task.options.model_copy(update={"delete_segments": delete_segments})
        if task.status == TaskStatus.SUCCESS:
            # Download again: a fresh file next to the old one.
            changes.update(file=None, downloaded=0, segments_done=0)
        await self._write(task_id, changes)
        self.scheduler.poke()
        return await self.get(task_id)

    async def stop(self, task_id: int) -> Task:
        await self._save_unsaved(task_id)
        task = await self.get(task_id)
        run = self.scheduler.runs.get(task_id)
        if run is not None:
            await self._cancel_run(run, StopReason.STOP)
        elif task.status in (TaskStatus.WAITING, TaskStatus.FAILED):
            await self._set_status(task, TaskStatus.STOPPED)
        elif task.status != TaskStatus.STOPPED:
            raise IllegalTransition(f"task {task_id} is {task.status.value}; only active tasks can be stopped")
        self._claimed.discard(task_id)
        return await self.get(task_id)

    async def delete(self, task_id: int, files: bool = False) -> None:
        task = await self.get(task_id)
        run = self.scheduler.runs.get(task_id)
        if run is not None:
            await self._cancel_run(run, StopReason.DELETE)
            task = run.task
        await self.repo.delete(task_id)
        self._unsaved.pop(task_id, None)
        self._claimed.discard(task_id)
        if task.file:
            final = Path(task.file)
            victims = list(temp_paths(final))
            if files:
                victims.append(final)
            for victim in victims:
                with contextlib.suppress(OSError):
                    if victim.is_dir():
                        shutil.rmtree(victim)
                    elif victim.exists():
                        victim.unlink()
        self.bus.publish(EventType.DELETE, {"id": task_id}, task_id)

    async def update(self, task_id: int, **changes: Any) -> Task:
        """Change name, url, headers, folder, is_live, kind or options."""
        allowed = {"name", "url", "headers", "folder", "is_live", "kind", "options"}
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidInput(f"cannot update {', '.join(sorted(unknown))}")
        await self._save_unsaved(task_id)
        task = await self.get(task_id)
        values = {k: v for k, v in changes.items() if v is not None}
        if not values:
            return task
        if task.status == TaskStatus.DOWNLOADING and set(values) & {"url", "kind", "folder"}:
            raise IllegalTransition("stop the task before changing its url, type or folder")
        if "url" in values:
            values["url"] = validate_url(values["url"])
        if "headers" in values:
            values["headers"] = forwardable_headers(values["headers"])
        if "folder" in values:
            values["folder"] = self._check_folder(values["folder"])
        if "name" in values:
            values["name"] = sanitize_name(values["name"])
            if task.options.auto_name:
                values["options"] = values.get("options", task.options).model_copy(update={"auto_name": False})
            if not task.downloaded and task.status != TaskStatus.SUCCESS:
                values["file"] = None  # not started: the new name becomes the file name
        if "kind" in values:
            values["kind"] = TaskKind(values["kind"])
        if "options" in values and not isinstance(values["options"], TaskOptions):
            raise InvalidInput("options must be TaskOptions")
        await self._write(task_id, values)
        self.bus.publish(EventType.UPDATE, {"id": task_id}, task_id)
        return await self.get(task_id)

    async def mark(self, task_id: int, status: TaskStatus) -> Task:
        """A client records how a task ended (MediaGo's bulk status), outside the download's own outcome.

        FAILED: an active task is stopped first; the task is then failed with
        MARKED_FAILED as its error (a finished task cannot be marked failed).
        SUCCESS: only for a task that is not waiting or downloading and whose
        file is complete on disk (its final path exists).
        """
        await self._save_unsaved(task_id)
        task = await self.get(task_id)
        self.check_mark(task, status)
        if task.status is status:
            return task
        if status is TaskStatus.FAILED:
            if task.status in ACTIVE_STATUSES:
                task = await self.stop(task_id)
            await self._write(task_id, {"status": TaskStatus.FAILED, "error": MARKED_FAILED})
            self.task_log(task_id, MARKED_FAILED)
            self.bus.publish(EventType.FAILED, {"id": task_id, "error": MARKED_FAILED}, task_id)
        else:
            await self._write(task_id, {"status": TaskStatus.SUCCESS, "error": None})
            self.task_log(task_id, "marked as finished by a client")
            self.bus.publish(EventType.SUCCESS, {"id": task_id}, task_id)
        return await self.get(task_id)

    @staticmethod
    def check_mark(task: Task, status: TaskStatus) -> None:
        """Raise IllegalTransition if `mark(task.id, status)` would be refused (InvalidInput: no such mark)."""
        if status not in (TaskStatus.FAILED, TaskStatus.SUCCESS):
            raise InvalidInput("only failed or success can be marked")
        if task.status is status:
            return
        if status is TaskStatus.FAILED and task.status is TaskStatus.SUCCESS:
            raise IllegalTransition(f"task {task.id} has finished successfully; it cannot be marked failed")
        if status is TaskStatus.SUCCESS:
            if task.status in ACTIVE_STATUSES:
                raise IllegalTransition(f"task {task.id} is {task.status.value}; stop it before marking it success")
            if not task.file or not Path(task.file).is_file():
                raise IllegalTransition(f"task {task.id} has no complete file on disk; it cannot be marked success")

    async def set_status(self, ids: Iterable[int], status: TaskStatus) -> list[Task]:
        """Bulk start (→ waiting) or stop (→ stopped)."""
        if status not in (TaskStatus.WAITING, TaskStatus.STOPPED):
            raise InvalidInput("status can only be set to waiting (start) or stopped (stop)")
        out = []
        for task_id in ids:
            out.append(await (self.start(task_id) if status == TaskStatus.WAITING else self.stop(task_id)))
        return out

    # ---- yt-dlp info ------------------------------------------------------
    async def extract(
        self, url: str, *, quality: str | None = None, cookies: str | None = None,
        headers: Sequence[tuple[str, str]] = (), proxy: str | None = None, insecure: bool = False,
        flags: Sequence[str] = (),
    ) -> MediaInfo:
        """What yt-dlp finds at url (title, duration, formats...), without downloading."""
        from core.downloaders.ytdlp import extract_info

        url = validate_url(url)
        if proxy:
            normalize_proxy(proxy)
        return await extract_info(
            url, quality=quality, cookies=cookies, headers=tuple(headers), insecure=insecure, flags=flags,
            proxy=proxy or self.config.download.proxy or None, timeout=self.config.download.read_timeout,
        )

    async def supported_sites(self) -> list[str]:
        """yt-dlp's extractor names."""
        from core.downloaders.ytdlp import supported_sites

        return await asyncio.to_thread(supported_sites)

    async def supported_domains(self) -> list[str]:
        """The host names yt-dlp's extractors match (youtube.com, vimeo.com, ...), sorted."""
        from core.downloaders.ytdlp import supported_domains

        return await asyncio.to_thread(supported_domains)

    def set_max_concurrent(self, value: int) -> None:
        if value < 1:
            raise InvalidInput(f"max_concurrent must be at least 1, not {value}")
        changed = value != self.config.download.max_concurrent
        self.scheduler.set_max_concurrent(value)
        self.config.download.max_concurrent = value
        if changed:
            self.announce_config("download.max_concurrent", value)

    def set_speed_limit(self, rate: int | None) -> None:
        self.limiter.set_rate(rate)

    def announce_config(self, key: str, value: Any) -> None:
        """Tell subscribers a setting changed while running (`section.key`, e.g. "download.proxy")."""
        self.bus.publish(EventType.CONFIG, {"key": key, "value": value})

    async def wait_finished(self, ids: Iterable[int], poll: float = 0.2) -> list[Task]:
        """Wait until none of these tasks is waiting or downloading."""
        wanted = list(ids)
        sub = self.subscribe()
        try:
            while True:
                tasks = [await self.get(i) for i in wanted]
                if all(t.status not in ACTIVE_STATUSES for t in tasks):
                    return tasks
                await sub.get(timeout=poll)
        finally:
            sub.close()

    # ---- logging ---------------------------------------------------------
    def task_log(self, task_id: int, text: str) -> None:
        """A line in the task's log (stored with the next flush, about once a second)."""
        self.progress.log(task_id, text)

    # ---- internals -------------------------------------------------------
    async def _write(self, task_id: int, values: dict[str, Any]) -> None:
        await self.repo.update_fields(task_id, **values)
        run = self.scheduler.runs.get(task_id)
        if run:
            for key, value in values.items():
                setattr(run.task, key, value)

    async def _set_status(self, task: Task, status: TaskStatus, **extra: Any) -> None:
        if not can_transition(task.status, status):
            raise IllegalTransition(f"task {task.id}: {task.status.value} → {status.value} is not allowed")
        values: dict[str, Any] = {"status": status, **extra}
        if task.id in self.scheduler.runs:
            t = self.scheduler.runs[task.id].task
            values.update(
                downloaded=t.downloaded, total=t.total, segments_done=t.segments_done,
                segments_total=t.segments_total,
            )
        await self._write(task.id, values)
        for key, value in values.items():  # once stored, all at once: no reader sees one without the other
            setattr(task, key, value)

    async def _schedule_loop(self) -> None:
        while True:
            await self.scheduler.wakeup.wait()
            self.scheduler.wakeup.clear()
            try:
                await self._fill_slots()
            except Exception:
                log.exception("scheduler error")

    async def _fill_slots(self) -> None:
        free = self.scheduler.free_slots
        if free <= 0 or self._closing:
            return
        candidates = await self.repo.ids_with_status(
            TaskStatus.WAITING, limit=free + len(self.scheduler.runs) + 64 if self._run_queued else -1
        )
        for task_id in candidates:
            if self.scheduler.free_slots <= 0:
                break
            if task_id in self.scheduler.runs or task_id in self._unsaved:
                continue
            if not self._run_queued and task_id not in self._claimed:
                continue
            task = await self.repo.get(task_id)
            if task is None or task.status != TaskStatus.WAITING:
                continue
            await self._launch(task)

    async def _launch(self, task: Task) -> None:
        # The handle exists before anything awaits, so a stop that comes in while the
        # run is being marked `downloading` always has something to cancel.
        run = TaskRun(task=task)
        task.error = None
        task.speed, task.eta = 0.0, None
        self.scheduler.runs[task.id] = run
        run.handle = asyncio.create_task(self._execute(run), name=f"fetchdeck-task-{task.id}")

    async def _cancel_run(self, run: TaskRun, reason: StopReason) -> None:
        run.stop_reason = reason
        if run.handle and not run.handle.done():
            run.handle.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await run.handle
        if self.scheduler.runs.get(run.task.id) is run:
            # Cancelled before its coroutine ran a line: nothing else will settle it.
            await self._finish_cancelled(run)

    def _context(self, run: TaskRun, folder: Path) -> DownloadContext:
        task = run.task
        settings = DownloadSettings(
            retries=self.config.download.retries,
            connections=task.options.connections or self.config.download.connections,
            segment_threads=task.options.segment_threads or self.config.download.segment_threads,
            proxy=self.config.download.proxy or None,
            read_timeout=self.config.download.read_timeout,
        )

        async def claim_output(filename: str) -> Path:
            if task.file:
                return Path(task.file)
            in_use = await self.repo.files_in_use()
            in_use.update(r.task.file for r in self.scheduler.runs.values() if r.task.file)
            path = unique_path(folder, filename, taken=lambda p: str(p) in in_use)
            values: dict[str, Any] = {"file": str(path)}
            if task.options.auto_name:
                values["name"] = path.name
            await self._write(task.id, values)
            self.bus.publish(EventType.UPDATE, {"id": task.id}, task.id)
            return path

        return DownloadContext(
            task=task,
            folder=folder,
            clients=self.clients,
            progress=run,
            log=lambda text: self.task_log(task.id, text),
            limiter=self.limiter,
            settings=settings,
            claim_output=claim_output,
        )

    async def _execute(self, run: TaskRun) -> None:
        task = run.task
        try:
            started = await self.repo.transition(task.id, TaskStatus.WAITING, TaskStatus.DOWNLOADING)
            if not started:  # stopped or deleted since the scheduler picked it
                self.scheduler.runs.pop(task.id, None)
                self.scheduler.poke()
                return
            task.status, task.error = TaskStatus.DOWNLOADING, None
            self.bus.publish(EventType.START, {"id": task.id}, task.id)
            for _attempt in range(3):  # a WrongKind correction may switch downloaders
                try:
                    folder = resolve_folder(self.download_root, task.folder or None, self.allowed_roots)
                    folder.mkdir(parents=True, exist_ok=True)
                    self.task_log(task.id, f"start {task.kind.value} download: {task.url}")
                    path = await get_downloader(task.kind, task.options.backend).run(task, self._context(run, folder))
                    break
                except WrongKind as exc:
                    if not task.options.auto_kind or exc.kind == task.kind:
                        raise
                    self.task_log(task.id, f"switching to {exc.kind.value}: {exc}")
                    await self._write(task.id, {"kind": exc.kind})
            else:
                raise DownloadError("the download type kept changing")
        except asyncio.CancelledError:
            await self._finish_cancelled(run)
            return
        except Exception as exc:
            reason = describe_error(exc)
            if not isinstance(exc, DownloadError | OSError | StoreUnavailable):
                log.exception("task %s crashed", task.id)
            self.task_log(task.id, f"failed: {reason}")
            await self._finish(run, TaskStatus.FAILED, error=reason)
            self.bus.publish(EventType.FAILED, {"id": task.id, "error": reason}, task.id)
            return
        if task.total is None or task.total < task.downloaded:
            task.total = task.downloaded
        self.task_log(task.id, f"done: {path}")
        await self._finish(run, TaskStatus.SUCCESS, file=str(path), error=None)
        self.bus.publish(EventType.SUCCESS, {"id": task.id}, task.id)

    async def _finish_cancelled(self, run: TaskRun) -> None:
        task = run.task
        reason = run.stop_reason or StopReason.SHUTDOWN
        if reason is StopReason.DELETE:
            self.scheduler.runs.pop(task.id, None)
            return
        if reason is StopReason.STOP:
            self.task_log(task.id, "stopped")
            await self._finish(run, TaskStatus.STOPPED)
            self.bus.publish(EventType.STOP, {"id": task.id}, task.id)
        else:
            self.task_log(task.id, "interrupted by shutdown; will resume")
            await self._finish(run, self._shutdown_status)

    async def _finish(self, run: TaskRun, status: TaskStatus, **extra: Any) -> None:
        task = run.task
        task.speed, task.eta = 0.0, None
        stored = task.status
        try:
            await self._set_status(task, status, **extra)
        except StoreUnavailable as exc:
            # The run is over either way; keep its outcome until the store takes it.
            task.status = status
            for key, value in extra.items():
                setattr(task, key, value)
            self._unsaved[task.id] = UnsavedFinish(task, stored)
            log.warning("task %s is %s but %s; retrying every %.0f s",
                        task.id, status.value, exc, SAVE_RETRY_SECONDS)
        finally:
            self.scheduler.runs.pop(task.id, None)
            self.scheduler.poke()
        with contextlib.suppress(StoreUnavailable):  # the pump keeps the lines for its next flush
            await self.progress.flush_logs()

    @staticmethod
    def _final_values(task: Task) -> dict[str, Any]:
        return {"status": task.status, "error": task.error, "file": task.file, "downloaded": task.downloaded,
                "total": task.total, "segments_done": task.segments_done, "segments_total": task.segments_total}

    async def _save_unsaved(self, task_id: int | None = None) -> bool:
        """Offer final states the store refused again (all, or just `task_id`).

        With `task_id`, a refusal raises StoreUnavailable: a command must not act
        on a task whose stored status is not its real one.
        """
        ids = list(self._unsaved) if task_id is None else [task_id] if task_id in self._unsaved else []
        for unsaved_id in ids:
            unsaved = self._unsaved[unsaved_id]
            task = unsaved.task
            try:
                await self.repo.update_fields(unsaved_id, **self._final_values(task))
            except StoreUnavailable:
                if task_id is not None:
                    raise
                return False
            if self._unsaved.get(unsaved_id) is unsaved:
                del self._unsaved[unsaved_id]
                log.info("task %s: its %s status is saved now", unsaved_id, task.status.value)
        if ids:
            self.scheduler.poke()
        return True

    async def _save_unsaved_loop(self) -> None:
        while True:
            await asyncio.sleep(SAVE_RETRY_SECONDS)
            if self._unsaved:
                try:
                    await self._save_unsaved()
                except Exception:
                    log.exception("saving unsaved task states failed")

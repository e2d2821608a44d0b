"""The engine: commands and queries on tasks. One Engine per process.

Every public method is async and safe to call from the API or the TUI while
downloads run. The engine applies the input rules (core/validation.py) to
every spec and patch it is given, once, and says which field of which item
failed (`InvalidField`), so each API dialect renders its own error.

Who owns what:
- core/scheduler.py: which waiting task runs next, launching and cancelling runs;
- core/task_run.py: one run (download context, downloader choice, kind switch, finish);
- core/unsaved.py: outcomes the store refused (disk full), retried every 2 s;
- core/ratelimit.py: the speed limits (global, per host, per task); core/schedule.py: the bandwidth
  schedule's window in force (the global rate, holding claims and pausing runs in a pause window);
- core/store/: the `TaskStore` contract the engine reads and writes through (SQLite today);
- core/downloaders/: the `DownloaderRegistry` the engine is given.

A task's state has one source of truth at a time: while it runs, the
scheduler's `TaskRun.task`; after a run whose outcome the store refused, the
unsaved outcomes; otherwise the store. `get`, lists and stats read in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import Config, HostsConfig, ScheduleConfig, check_apprise_url, format_hosts
from core.cookies import CookieStore, netscape_for
from core.detect import guess_kind, refine_kind
from core.downloaders import DownloaderRegistry
from core.downloaders.net import HttpClients
from core.downloaders.paths import temp_paths
from core.errors import IllegalTransition, InvalidField, InvalidInput, StoreUnavailable, TaskNotFound
from core.events import (
    ConfigChanged,
    EventBus,
    EventType,
    Payload,
    Subscription,
    TaskChanged,
    TaskDeleted,
    TaskFailed,
    TaskProgress,
    TasksCreated,
    TaskStopped,
    TaskSucceeded,
)
from core.integrity import normalize_checksum
from core.models import (
    ACTIVE_STATUSES,
    EngineStats,
    LogLine,
    Priority,
    Task,
    TaskKind,
    TaskPage,
    TaskSpec,
    TaskStatus,
    forwardable_headers,
)
from core.naming import name_from_url, resolve_folder, sanitize_name
from core.notify import Notifier
from core.policy import HostPolicy
from core.progress import ProgressPump
from core.queue import QueueMove, checked_start_at, in_queue_view, placement, queue_key, scheduled_note
from core.ratelimit import SpeedLimits
from core.s3_output import S3Output
from core.schedule import Clock, Schedule, ScheduleKeeper, ScheduleState, SystemClock
from core.scheduler import Scheduler, StopReason
from core.storage import is_s3_url
from core.store import store_factory
from core.store.base import UNSET, StoreFactory, TaskFilter, TaskPatch, TaskStore
from core.task_run import TaskRunner
from core.unsaved import UnsavedOutcomes
from core.validation import check_folder, normalize_proxy, validate_url

if TYPE_CHECKING:
    from core.cluster import ClusterNode, Command, Op
    from core.downloaders.ytdlp import MediaInfo

log = logging.getLogger("fetchdeck.engine")

MAX_BATCH = 100_000
MAX_NOTIFY_URLS = 16  # Apprise URLs of one task's own
MARKED_FAILED = "marked as failed by a client"
EDITABLE = frozenset({"name", "url", "headers", "folder", "is_live", "kind", "options",  # what `update` may patch
                      "priority", "start_at"})  # queue control (core/queue.py)
QUEUE_FIELDS = frozenset({"priority", "start_at"})  # a change to these may change what the queue runs next


@contextlib.contextmanager
def _field(field: str, index: int | None = None) -> Iterator[None]:
    """Name the field (and batch item) a rule refused."""
    try:
        yield
    except InvalidField:
        raise
    except InvalidInput as exc:
        raise InvalidField(str(exc), field, index) from None


def s3_output(config: Config, database: Path | None) -> S3Output:
    """The engine's s3:// destinations; staged downloads go under <data dir>/staging (the database's dir)."""
    data_dir = database.parent if database is not None else config.download.download_dir / ".fetchdeck"
    dir_value = config.download.dir if is_s3_url(config.download.dir) else ""
    return S3Output(config.storage.s3, os.environ, data_dir / "staging", dir_value)


def cookie_jar(config: Config, database: Path | None) -> CookieStore | None:
    """The engine's cookie jar: `[cookies] dir`, else <data dir>/cookies; None without either (a store given)."""
    if not config.cookies.dir and database is None:
        return None
    return CookieStore.open(config.cookies.directory(database.parent if database is not None else Path()))


def _given(store: TaskStore) -> StoreFactory:
    async def open_store() -> TaskStore:
        return store

    return open_store


class Engine:
    def __init__(
        self,
        database: Path | None,
        config: Config,
        *,
        run_queued: bool = True,
        shutdown_status: TaskStatus = TaskStatus.WAITING,
        store: StoreFactory | TaskStore | None = None,
        downloaders: DownloaderRegistry | None = None,
        clients: HttpClients | None = None,
        clock: Clock | None = None,
    ) -> None:
        """database: the SQLite file (ignored when `store` is given: a store, or a factory that opens one;
        the engine closes it with itself).
        run_queued=False: only run tasks this engine was explicitly asked to
        start (the one-shot `fetchdeck get`), never the rest of the queue.
        downloaders: which downloader runs each kind (default: the built-in ones).
        clients: the network layer to use (the one-shot `get` gives up sooner on unreachable servers).
        clock: where the bandwidth schedule reads the local time (tests pass a fake one)."""
        if store is None:
            if database is None:
                raise ValueError("an Engine needs a database path or a store factory")
            # [store] url: empty for the SQLite database, or a PostgreSQL database shared with other nodes
            store = store_factory(config.store.url, database=database, node=config.cluster.node_name)
        elif isinstance(store, TaskStore):
            store = _given(store)
        self.database = database
        self.config = config
        self.s3 = s3_output(config, database)  # with download.dir = s3://…, relative folders are S3 prefixes
        self.download_root = config.download.download_dir.expanduser().resolve()
        self.allowed_roots = tuple(Path(p).expanduser().resolve() for p in config.download.allowed_roots)
        self.bus = EventBus()
        self.clients = clients or HttpClients(read_timeout=config.download.read_timeout)
        # Cookie jars (core/cookies.py): every client sends the jar's cookies and keeps what servers set.
        self.cookies = cookie_jar(config, database)
        if self.clients.cookies is None:
            self.clients.cookies = self.cookies
        # Speed limits (core/ratelimit.py): global, per host, per task; `limiter` is the global bucket.
        self.limits = SpeedLimits(config.download.speed_limit_bytes, config.hosts.speeds())
        self.limiter = self.limits.global_limiter
        self.downloaders = downloaders if downloaders is not None else DownloaderRegistry()
        self._open_store = store
        self._store: TaskStore | None = None
        self.unsaved = UnsavedOutcomes(lambda: self.store, lambda: self.scheduler.poke())
        self.scheduler = Scheduler(
            config.download.max_concurrent, store=lambda: self.store, unsaved=self.unsaved, run_queued=run_queued,
            lease_seconds=config.cluster.lease_timeout, caps=config.hosts.caps(),
        )
        self.progress = ProgressPump(self.scheduler.runs, self.bus)
        self.hosts = HostPolicy(config.policy.quiet_seconds)  # per-host back-off on 429/503 (core/policy.py)
        self.runner = TaskRunner(
            config=config, store=lambda: self.store, scheduler=self.scheduler, unsaved=self.unsaved, bus=self.bus,
            progress=self.progress, downloaders=self.downloaders, clients=self.clients, limits=self.limits,
            folder_path=self.folder_path, shutdown_status=shutdown_status, s3=self.s3, hosts=self.hosts,
        )
        self.scheduler.executor = self.runner
        # The bandwidth schedule ([[schedule]], core/schedule.py); the one-shot `get` (run_queued=False) ignores it.
        self._run_queued = run_queued
        self.schedule = ScheduleKeeper(
            Schedule.from_config(config.schedule.windows), clock or SystemClock(), self.scheduler, self.limits,
            on_change=self._schedule_changed,
        )
        self._loops: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Future[None]] = set()
        self._closing = False
        self.node_name = config.cluster.node_name
        self.cluster: ClusterNode | None = None  # set when the store is shared with other nodes
        self.remote_progress: dict[int, TaskProgress] = {}  # the latest tick of tasks other nodes run
        # Events out (core/notify/): notifications, the signed webhook and hooks when a task ends.
        self.notifier = Notifier(config, self.bus, self.get, self.task_log, self.node_name)

    # ---- lifecycle -------------------------------------------------------
    async def open(self) -> Engine:
        self.download_root.mkdir(parents=True, exist_ok=True)
        self._store = await self._open_store()
        self.progress.repo = self._store
        self.progress.on_lease_lost = self._leases_lost
        # Start-up recovery: whatever was downloading when the last process died is
        # queued again (callers hold the data dir lock, so nothing else runs it).
        recovered = await self.store.recover()
        if recovered:
            log.info("recovered %d interrupted task(s)", recovered)
        if self._store.shared:
            await self._join_cluster(self._store)
        if self._run_queued and self.schedule.schedule.windows:
            await self.schedule.tick()  # a pause window in force now holds the queue from the first claim
            self._loops.append(asyncio.create_task(self.schedule.run(), name="fetchdeck-schedule"))
        self._loops += [
            asyncio.create_task(self.scheduler.run(), name="fetchdeck-scheduler"),
            asyncio.create_task(self.progress.run(), name="fetchdeck-ticker"),
            asyncio.create_task(self.unsaved.run(), name="fetchdeck-unsaved"),
        ]
        self.notifier.start()
        self.scheduler.poke()
        return self

    async def close(self) -> None:
        """Stop running downloads (left resumable), flush, close the store."""
        if self._closing:
            return
        self._closing = True
        self.scheduler.closing = True
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        runs = list(self.scheduler.runs.values())
        for run in runs:
            await self.scheduler.cancel(run, StopReason.SHUTDOWN)
        await self.notifier.close()  # pending deliveries get [notify] grace seconds
        if self.cluster is not None:
            for run in runs:  # back in the queue: other nodes hear of it and take them over now
                self.bus.publish(TaskChanged(run.task.id))
            with contextlib.suppress(StoreUnavailable):
                await self.cluster.flush()
            await self.cluster.stop()
        await self.progress.flush()
        if not await self.unsaved.save():
            log.error("could not save the final status of %d task(s): %s; they are resumed at the next start",
                      len(self.unsaved), ", ".join(map(str, self.unsaved.ids())))
        self.hosts.close()
        await self.clients.aclose()
        if self.cookies is not None:
            await asyncio.to_thread(self.cookies.save)
        await self.s3.close()
        self.bus.close_all()
        if self._store is not None:
            await self._store.close()
            self._store = None

    async def __aenter__(self) -> Engine:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def store(self) -> TaskStore:
        if self._store is None:
            raise RuntimeError("engine is not open")
        return self._store

    @property
    def repo(self) -> TaskStore:
        """The store (older name)."""
        return self.store

    # ---- queries ---------------------------------------------------------
    def _live(self, task: Task) -> Task:
        """The task as its current source of truth has it (a running or unsaved task is newer than its row)."""
        run = self.scheduler.running(task.id)
        if run:
            return run.task.copy()
        unsaved = self.unsaved.get(task.id)
        if unsaved is not None:
            return unsaved
        if task.status is TaskStatus.WAITING and self.schedule.state.paused:
            task.note = self.schedule.state.waiting_note()  # held back by a schedule pause window
        if task.status is TaskStatus.WAITING and task.note is None:
            task.note = scheduled_note(task)  # "scheduled: starts 22:30" while its start time is ahead
        tick = self.remote_progress.get(task.id)
        if tick is not None and task.status is TaskStatus.DOWNLOADING:
            # Another node runs it: its last progress tick (≤ 0.25 s old) is newer than the row (≤ 1 s old).
            task.downloaded, task.total, task.speed, task.eta = tick.downloaded, tick.total, tick.speed, tick.eta
            task.segments_done, task.segments_total, task.note = tick.segments_done, tick.segments_total, tick.note
        if task.status is TaskStatus.WAITING and task.note is None:
            task.note = self.scheduler.deferred_note(task.id)  # e.g. "waiting for disk space: ..."
        return task

    async def get(self, task_id: int) -> Task:
        run = self.scheduler.running(task_id)
        if run:
            return run.task.copy()
        unsaved = self.unsaved.get(task_id)
        if unsaved is not None:
            return unsaved
        task = await self.store.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return self._live(task)

    async def list_tasks(
        self, page: int = 1, size: int = 50, flt: TaskFilter | None = None
    ) -> TaskPage:
        page = max(1, page)
        size = max(1, min(size, 10_000))
        items, total = await self.store.page((page - 1) * size, size, flt or TaskFilter())
        return TaskPage(items=[self._live(t) for t in items], total=total, page=page, size=size)

    async def active(self) -> list[Task]:
        """Waiting and downloading tasks, in queue order (priority, position, id: core/queue.py)."""
        page = await self.list_tasks(
            1, 10_000, TaskFilter(statuses=frozenset(ACTIVE_STATUSES), newest_first=False)
        )
        return sorted(page.items, key=queue_key)

    async def folders(self) -> list[str]:
        return await self.store.folders()

    async def find(self, url: str, folder: str = "") -> Task | None:
        """The newest task for this URL and folder (for `get` re-runs)."""
        items, _ = await self.store.page(0, 50, TaskFilter(text=url))
        for task in items:
            if task.url == url and task.folder == folder:
                return self._live(task)
        return None

    async def logs(self, task_id: int) -> list[LogLine]:
        await self.get(task_id)  # raises TaskNotFound
        try:
            await self.progress.flush_logs()
        except StoreUnavailable:  # the disk is full: the lines not stored yet are still in memory
            return await self.store.logs(task_id) + self.progress.pending_logs(task_id)
        return await self.store.logs(task_id)

    async def stats(self) -> EngineStats:
        counts = await self.store.count_by_status()
        self.unsaved.adjust_counts(counts)
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

    # ---- input rules -----------------------------------------------------
    def check_folder(self, folder: str | None) -> str:
        """The folder to store for `folder` (InvalidInput if it leaves the download roots or is a malformed
        s3:// location)."""
        return check_folder(folder, self.download_root, self.allowed_roots)

    def folder_path(self, folder: str) -> Path:
        """Where a stored folder is on disk (InvalidInput if it is outside the allowed roots now)."""
        return resolve_folder(self.download_root, folder or None, self.allowed_roots)

    def _new_task(self, spec: TaskSpec, index: int, start: bool, now: float) -> Task:
        """The task to store for one spec, every rule applied once (InvalidField names the failure)."""
        options = spec.options
        backend = options.backend
        with _field("url", index):
            url = self.downloaders.backend_url(backend, spec.url) if backend else validate_url(spec.url)
        with _field("folder", index):
            folder = self.check_folder(spec.folder)
        kind = refine_kind(spec.kind, url) if spec.kind else guess_kind(url)
        if kind is TaskKind.YTDLP:
            from core.downloaders.ytdlp import validate_ytdlp_options  # not on an HTTP or HLS task's path

            with _field("options", index):
                options = validate_ytdlp_options(options, url)  # bad flags/quality/cookies → 400
        if spec.kind is None and not options.auto_kind:
            options = options.model_copy(update={"auto_kind": True})
        if options.proxy:
            with _field("proxy", index):
                normalize_proxy(options.proxy)
        if options.notify_urls:  # events out: a task's own Apprise URLs (core/notify/)
            with _field("notify_urls", index):
                if len(options.notify_urls) > MAX_NOTIFY_URLS:
                    raise InvalidInput(f"at most {MAX_NOTIFY_URLS} notification URLs per task")
                for notify_url in options.notify_urls:
                    check_apprise_url(notify_url)
        if options.checksum:
            with _field("checksum", index):
                options = options.model_copy(update={"checksum": normalize_checksum(options.checksum)})
        name = sanitize_name(spec.name) if spec.name and spec.name.strip() else ""
        return Task(
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
            priority=spec.priority,
            start_at=self._start_at(spec.start_at, index),
        )

    @staticmethod
    def _start_at(value: float | None, index: int | None = None) -> float | None:
        with _field("start_at", index):
            return checked_start_at(value)

    def _checked_edit(self, patch: TaskPatch) -> TaskPatch:
        """An `update` patch with the rules applied to each field it sets (before the task is read)."""
        unknown = patch.names() - EDITABLE
        if unknown:
            raise InvalidInput(f"cannot update {', '.join(sorted(unknown))}")
        if patch.url is not UNSET:
            with _field("url"):
                patch = patch.merge(TaskPatch(url=validate_url(patch.url)))
        if patch.headers is not UNSET:
            patch = patch.merge(TaskPatch(headers=forwardable_headers(patch.headers)))
        if patch.folder is not UNSET:
            with _field("folder"):
                patch = patch.merge(TaskPatch(folder=self.check_folder(patch.folder)))
        if patch.name is not UNSET:
            patch = patch.merge(TaskPatch(name=sanitize_name(patch.name)))
        if patch.start_at is not UNSET:
            patch = patch.merge(TaskPatch(start_at=self._start_at(patch.start_at)))
        return patch

    # ---- commands --------------------------------------------------------
    async def create(self, specs: Sequence[TaskSpec], start: bool = True) -> list[Task]:
        """Validate and store new tasks in one transaction; queue them if start."""
        if not specs:
            raise InvalidInput("no tasks given")
        if len(specs) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} tasks per request")
        if any(spec.options.expand_playlist for spec in specs):
            specs = [entry for index, spec in enumerate(specs) for entry in await self.expand(spec, index)]
            if len(specs) > MAX_BATCH:
                raise InvalidInput(f"at most {MAX_BATCH} tasks per request")
        now = time.time()
        tasks = [self._new_task(spec, index, start, now) for index, spec in enumerate(specs)]
        await self.store.insert_many(tasks)
        ids = [t.id for t in tasks]
        if start:
            self.scheduler.claim(ids)
        self.bus.publish(TasksCreated(tuple(ids)))
        self.scheduler.poke()
        return tasks

    async def start(self, task_id: int, folder: str | None = None, delete_segments: bool | None = None) -> Task:
        """Queue a task (again). folder: save under this folder from now on (InvalidField "folder")."""
        await self.unsaved.save(task_id)
        async with self.scheduler.launching:  # no claim lands between reading the status and writing it
            task = await self.get(task_id)
            if task.status == TaskStatus.DOWNLOADING:
                raise IllegalTransition(f"task {task_id} is already downloading")
            self.scheduler.claim([task_id])
            if task.status == TaskStatus.WAITING and folder is None and delete_segments is None:
                self.scheduler.poke()
                return task
            patch = TaskPatch(status=TaskStatus.WAITING, error=None)
            if folder is not None:
                with _field("folder"):
                    checked = self.check_folder(folder)
                if checked != task.folder:
                    patch = patch.merge(TaskPatch(folder=checked, file=None, downloaded=0))
            options = task.options
            if delete_segments is not None:
                options = options.model_copy(update={"delete_segments": delete_segments})
            if options.removed:  # started again: back in the queue view (core/queue.py)
                options = options.model_copy(update={"removed": False})
            if options is not task.options:
                patch = patch.merge(TaskPatch(options=options))
            if task.status == TaskStatus.SUCCESS:
                # Download again: a fresh file next to the old one.
                patch = patch.merge(TaskPatch(file=None, downloaded=0, segments_done=0))
            await self.runner.write(task_id, patch)
            if self.scheduler.held:  # no claim follows (a schedule pause window): say it is queued now
                self.bus.publish(TaskChanged(task_id))
            self.scheduler.poke()
            return await self.get(task_id)

    async def stop(self, task_id: int) -> Task:
        await self.unsaved.save(task_id)
        async with self.scheduler.launching:  # no claim lands between reading the status and writing it
            task = await self.get(task_id)
            run = self.scheduler.running(task_id)
            remote = run is None and self._elsewhere(task)
            if remote:
                pass  # asked below, without holding up this node's claims
            elif run is not None:
                await self.scheduler.cancel(run, StopReason.STOP)
            elif task.status in (TaskStatus.WAITING, TaskStatus.FAILED):
                await self.runner.set_status(task, TaskStatus.STOPPED)
            elif task.status != TaskStatus.STOPPED:
                raise IllegalTransition(f"task {task_id} is {task.status.value}; only active tasks can be stopped")
        if remote:
            from core.cluster import Op

            await self._ask_runner(task, Op.STOP)
        self.scheduler.release(task_id)
        return await self.get(task_id)

    async def delete(self, task_id: int, files: bool = False) -> None:
        task = await self.get(task_id)
        if self.scheduler.running(task_id) is None and self._elsewhere(task):
            from core.cluster import Op

            if await self._ask_runner(task, Op.DELETE, files):
                return  # the node that ran it deleted it (and its files)
        async with self.scheduler.launching:  # no claim lands between reading the task and deleting it
            task = await self.get(task_id)
            run = self.scheduler.running(task_id)
            if run is not None:
                await self.scheduler.cancel(run, StopReason.DELETE)
                task = run.task
            upload = await self._s3_upload_state(task)
            await self.store.delete(task_id)
        self.unsaved.discard(task_id)
        self.scheduler.release(task_id)
        await self.s3.forget(task, upload, files)
        self.s3.discard_staging(task_id)
        if task.file and not is_s3_url(task.file):
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
            self.scheduler.retry_deferred()  # a task waiting for disk space may fit now
        self.bus.publish(TaskDeleted(task_id))

    async def _s3_upload_state(self, task: Task) -> bytes | None:
        """An s3:// task's recorded multipart upload (read before the task and its state are deleted)."""
        if not (task.file and is_s3_url(task.file)):
            return None
        from core.downloaders.http_s3 import STATE_KEY

        return await self.store.get_state(task.id, STATE_KEY)

    async def update(self, task_id: int, patch: TaskPatch) -> Task:
        """Change name, url, headers, folder, is_live, kind or options (only the fields `patch` sets).

        The rules are applied first (InvalidField names the field), then the
        status: url, kind and folder cannot change while the task downloads."""
        patch = self._checked_edit(patch)
        await self.unsaved.save(task_id)
        async with self.runner.options_edit:  # no run writes its options between this read and the write
            task = await self.get(task_id)
            if not patch:
                return task
            if task.status == TaskStatus.DOWNLOADING and patch.names() & {"url", "kind", "folder"}:
                raise IllegalTransition("stop the task before changing its url, type or folder")
            if patch.name is not UNSET:
                if task.options.auto_name:
                    options = task.options if patch.options is UNSET else patch.options
                    patch = patch.merge(TaskPatch(options=options.model_copy(update={"auto_name": False})))
                if not task.downloaded and task.status != TaskStatus.SUCCESS:
                    patch = patch.merge(TaskPatch(file=None))  # not started: the new name becomes the file name
            await self.runner.write(task_id, patch)
        if patch.options is not UNSET:  # a running task's own speed limit applies to its next bytes
            self.limits.set_task(task_id, patch.options.speed_limit)
        self.bus.publish(TaskChanged(task_id))
        if patch.names() & QUEUE_FIELDS:
            self.scheduler.poke()
        return await self.get(task_id)

    # ---- relink (core/relink.py owns the rules) ------------------------------------------
    async def relink(self, task_id: int, url: str, restart: bool = False) -> Task:
        """Give a task a new URL and queue it: a direct download continues from the bytes on disk when the
        new URL serves the same file (size and ETag/Last-Modified), else RelinkRefused (409) says why;
        restart: start over from the new URL instead. A running task is stopped, relinked and resumed.
        InvalidField "url" for a URL the rules refuse; IllegalTransition for a finished task."""
        from core.relink import apply_direct, check_direct

        with _field("url"):
            url = validate_url(url)
        await self.unsaved.save(task_id)
        task = await self.get(task_id)
        if task.status is TaskStatus.SUCCESS:
            raise IllegalTransition(f"task {task_id} has finished; there is nothing to relink")
        client = self.clients.get(proxy=task.options.proxy or self.config.download.proxy or None,
                                  insecure=task.options.insecure)
        check = await check_direct(task, url, client, dict(task.headers), restart)  # before touching the task
        if task.status in ACTIVE_STATUSES:
            task = await self.stop(task_id)
        apply_direct(task, check, restart)
        patch = TaskPatch(url=url, downloaded=0) if restart else TaskPatch(url=url)
        await self.runner.write(task_id, patch)
        self.task_log(task_id, f"relinked to {url}: {check.note}")
        self.bus.publish(TaskChanged(task_id))
        return await self.start(task_id)

    # ---- queue control (core/queue.py owns the rules) -----------------------------------
    async def set_priority(self, task_id: int, priority: Priority) -> Task:
        """Put a task in another priority class of the queue (high, normal, low: core/queue.py)."""
        return await self.update(task_id, TaskPatch(priority=Priority(priority)))

    async def move(self, task_id: int, where: QueueMove) -> Task:
        """Move a task to the top or bottom of the waiting tasks of its priority, or one place up or down."""
        await self.unsaved.save(task_id)
        await self.get(task_id)  # TaskNotFound
        if await self.store.move(task_id, QueueMove(where)):
            self.bus.publish(TaskChanged(task_id))
            self.scheduler.poke()
        task = await self.get(task_id)
        run = self.scheduler.running(task_id)
        if run is not None:  # the store has the new position; the live task mirrors it
            stored = await self.store.get(task_id)
            if stored is not None:
                run.task.position = task.position = stored.position
        return task

    async def queue_view(self) -> list[Task]:
        """The waiting tasks and the paused ones, in queue order (core/queue.py `in_queue_view`; what the
        queue claims them in once started)."""
        flt = TaskFilter(statuses=frozenset({TaskStatus.WAITING, TaskStatus.STOPPED}), newest_first=False)
        page = await self.list_tasks(1, 10_000, flt)
        return sorted((t for t in page.items if in_queue_view(t)), key=queue_key)

    async def place(self, task_id: int, index: int) -> int:
        """Move a task to `index` (0: first) of the queue view, within its priority class (core/queue.py
        `placement`); the index it ends at. IllegalTransition if it is not in the view (downloading,
        finished, removed)."""
        await self.unsaved.save(task_id)
        task = await self.get(task_id)  # TaskNotFound
        if not in_queue_view(task):
            raise IllegalTransition(f"task {task_id} is {task.status.value}, not in the queue")
        dest, writes = placement(await self.queue_view(), task, index)
        if writes:
            await self.store.set_positions(writes)
            self.bus.publish(TaskChanged(task_id))
            self.scheduler.poke()
        return dest

    async def mark(self, task_id: int, status: TaskStatus) -> Task:
        """A client records how a task ended (MediaGo's bulk status), outside the download's own outcome.

        FAILED: an active task is stopped first; the task is then failed with
        MARKED_FAILED as its error (a finished task cannot be marked failed).
        SUCCESS: only for a task that is not waiting or downloading and whose
        file is complete on disk (its final path exists).
        """
        await self.unsaved.save(task_id)
        task = await self.get(task_id)
        self.check_mark(task, status)
        if task.status is status:
            return task
        if status is TaskStatus.FAILED:
            if task.status in ACTIVE_STATUSES:
                task = await self.stop(task_id)
            await self.runner.write(task_id, TaskPatch(status=TaskStatus.FAILED, error=MARKED_FAILED))
            self.task_log(task_id, MARKED_FAILED)
            self.bus.publish(TaskFailed(task_id, MARKED_FAILED))
        else:
            await self.runner.write(task_id, TaskPatch(status=TaskStatus.SUCCESS, error=None))
            self.task_log(task_id, "marked as finished by a client")
            self.bus.publish(TaskSucceeded(task_id))
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
        """What yt-dlp finds at url (title, duration, formats...), without downloading.

        InvalidField "url" or "proxy" when a rule refuses them."""
        from core.downloaders.ytdlp import extract_info

        with _field("url"):
            url = validate_url(url)
        if proxy:
            with _field("proxy"):
                normalize_proxy(proxy)
        return await extract_info(
            url, quality=quality, cookies=cookies, headers=tuple(headers), insecure=insecure, flags=flags,
            proxy=proxy or self.config.download.proxy or None, timeout=self.config.download.read_timeout,
            jar_cookies=netscape_for(self.cookies, url),
        )

    async def expand(self, spec: TaskSpec, index: int | None = None) -> list[TaskSpec]:
        """The specs `spec` stands for: one per entry when it asks for its playlist to be expanded
        (core/playlists.py), else itself. InvalidField "url" (at `index`) when yt-dlp cannot list it."""
        if not spec.options.expand_playlist:
            return [spec]
        from core.playlists import expand

        async def extract(given: TaskSpec) -> MediaInfo:
            options = given.options
            return await self.extract(given.url, quality=options.quality, cookies=options.cookies,
                                      headers=given.headers, proxy=options.proxy, insecure=options.insecure,
                                      flags=options.ytdlp_flags)

        with _field("url", index):
            if spec.kind not in (None, TaskKind.YTDLP):
                raise InvalidInput(f"only a yt-dlp task can be expanded into its playlist's entries, not {spec.kind}")
            validate_url(spec.url)
            return await expand(spec, extract)

    async def supported_sites(self) -> list[str]:
        """yt-dlp's extractor names."""
        from core.downloaders.ytdlp import supported_sites

        return await asyncio.to_thread(supported_sites)

    async def supported_domains(self) -> list[str]:
        """The host names yt-dlp's extractors match (youtube.com, vimeo.com, ...), sorted."""
        from core.downloaders.ytdlp import supported_domains

        return await asyncio.to_thread(supported_domains)

    def set_max_concurrent(self, value: int) -> None:
        changed = value != self.config.download.max_concurrent
        self.config.download.max_concurrent = value  # a validated assignment: the config model's range, or BadValue
        self.scheduler.set_max_concurrent(value)
        if changed:
            self.announce_config("download.max_concurrent", value)

    def set_speed_limit(self, rate: int | None) -> None:
        """The global speed limit (a schedule speed window in force still sets the rate until it ends)."""
        self.limits.set_global(rate)

    # ---- bandwidth: per-task and per-host limits, the schedule (core/ratelimit.py, core/schedule.py) ----
    async def set_task_speed_limit(self, task_id: int, rate: int | None) -> Task:
        """A task's own speed limit in bytes/s (None: none), stored with its options; a running task's
        next bytes already obey it."""
        task = await self.get(task_id)
        options = task.options.model_copy(update={"speed_limit": rate if rate and rate > 0 else None})
        return await self.update(task_id, TaskPatch(options=options))

    def set_host_speed_limit(self, host: str, rate: int | None) -> None:
        """A host's speed limit on this node (`[hosts."NAME"] speed`; "*": every host not named), now."""
        name = host.strip().lower()
        if not name or any(c.isspace() or c in "/?#@" for c in name):
            raise InvalidInput(f"{host!r} is not a host name")
        self.limits.set_host(name, rate)
        self.announce_config(f"hosts.{name}.speed", rate)

    async def set_schedule(self, schedule: ScheduleConfig) -> ScheduleState:
        """New `[[schedule]]` windows, in force at once (the keeper's loop starts if it was not running)."""
        self.config.schedule = schedule
        self.schedule.set_schedule(Schedule.from_config(schedule.windows))
        if not self._run_queued:
            return self.schedule.state
        state = await self.schedule.tick()
        running = any(t.get_name() == "fetchdeck-schedule" and not t.done() for t in self._loops)
        if self._store is not None and not self._closing and not running:
            self._loops.append(asyncio.create_task(self.schedule.run(), name="fetchdeck-schedule"))
        return state

    def set_hosts(self, hosts: HostsConfig) -> None:
        """New `[hosts."NAME"]` tables: the caps hold from the next claim, the speeds at once (running tasks too)."""
        self.config.hosts = hosts
        self.scheduler.set_caps(hosts.caps())
        self.limits.set_hosts(hosts.speeds())
        self.scheduler.poke()  # a raised cap may let a waiting task start
        self.announce_config("hosts", format_hosts(hosts.limits))

    def schedule_state(self) -> ScheduleState:
        """The schedule window in force on this node (mode, rate, until when, data cap count)."""
        return self.schedule.state

    def _schedule_changed(self, state: ScheduleState) -> None:
        self.announce_config("schedule", state.describe())

    def announce_config(self, key: str, value: Any) -> None:
        """Tell subscribers a setting changed while running (`section.key`, e.g. "download.proxy")."""
        self.bus.publish(ConfigChanged(key, value))

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

    # ---- the cluster (a store shared with other nodes) ---------------------
    async def _join_cluster(self, store: TaskStore) -> None:
        from core.cluster import ClusterNode, Reconnecting

        self.cluster = ClusterNode(
            store, self.bus, lease_timeout=self.config.cluster.lease_timeout, on_wake=self.scheduler.poke,
            on_lost=self._leases_lost, on_command=self._command, on_remote=self._remote_event,
        )
        await self.cluster.start()
        if isinstance(store, Reconnecting):
            store.on_reconnect = self.cluster.reconnected

    def _elsewhere(self, task: Task) -> bool:
        """True if another node runs this task (only that node can cancel its run)."""
        return (self.cluster is not None and task.status is TaskStatus.DOWNLOADING and task.node is not None
                and task.node != self.store.node)

    def _leases_lost(self, ids: set[int]) -> None:
        """Stop the runs whose lease another node took (all runs if `ids` is empty), writing nothing."""
        for run in list(self.scheduler.runs.values()):
            if not ids or run.task.id in ids:
                handle = asyncio.ensure_future(self.scheduler.cancel(run, StopReason.LEASE_LOST))
                self._background.add(handle)
                handle.add_done_callback(self._background.discard)

    def _remote_event(self, node: str, payload: Payload) -> None:
        """An event from another node: keep its progress for reads, and tell this node's subscribers."""
        task_id = payload.task_id
        if isinstance(payload, TaskProgress):
            self.remote_progress[payload.task_id] = payload
        elif task_id is not None and payload.type is not EventType.START:
            self.remote_progress.pop(task_id, None)
        self.bus.publish(payload, origin=node)

    async def _command(self, command: Command) -> None:
        """Another node asks this one to stop or delete a task this node runs."""
        from core.cluster import Op

        if self.scheduler.running(command.task_id) is None:
            return  # not (or no longer) ours: the sender reads the store
        if command.op is Op.STOP:
            await self.stop(command.task_id)
        else:
            await self.delete(command.task_id, command.files)

    async def _ask_runner(self, task: Task, op: Op, files: bool = False) -> bool:
        """Have the node running `task` stop or delete it; force it through the store if that node does not
        answer in time (its lease is then void: fencing keeps it from writing). True if the task is gone."""
        from core.cluster import COMMAND_TIMEOUT, Command, Op

        assert self.cluster is not None and task.node is not None
        loop = asyncio.get_running_loop()
        sub = self.subscribe()
        try:
            await self.cluster.ask(Command(to=task.node, sender=self.store.node, op=op, task_id=task.id,
                                           files=files))
            deadline = loop.time() + COMMAND_TIMEOUT
            while True:
                stored = await self.store.get(task.id)
                if stored is None:
                    return True
                if stored.status is not TaskStatus.DOWNLOADING or stored.node != task.node:
                    return False
                left = deadline - loop.time()
                if left <= 0:
                    break
                await sub.get(timeout=min(0.25, left))
        finally:
            sub.close()
        log.warning("task %s: node %s did not answer a %s within %.0f s; forcing it", task.id, task.node,
                    op.value, COMMAND_TIMEOUT)
        if op is Op.STOP:
            await self.store.update(task.id, TaskPatch(status=TaskStatus.STOPPED))
            self.remote_progress.pop(task.id, None)
            self.task_log(task.id, f"stopped (node {task.node} did not answer)")
            self.bus.publish(TaskStopped(task.id))
        return False

    # ---- logging ---------------------------------------------------------
    def task_log(self, task_id: int, text: str) -> None:
        """A line in the task's log (stored with the next flush, about once a second)."""
        self.progress.log(task_id, text)


"""Running one task: build its download context, choose its downloader, switch kind, finish.

`TaskRunner.execute` is the whole life of one run the scheduler launched
(the scheduler's store `claim` has already moved the task to DOWNLOADING and
granted its connections):

1. confirm the claim still stands (the row is DOWNLOADING under this node's
   lease; a run launched without a claim, or whose task was handed back or
   deleted before it began, does nothing) and announce the start;
2. resolve its folder, build the `DownloadContext` (settings, the shared HTTP
   clients, the task's speed limits (core/ratelimit.py), `claim_output` for its file name) and run the
   downloader the registry gives for its kind;
3. a `WrongKind` from a task whose kind was guessed (or one that is certain: a
   DASH manifest behind an "m3u8" task) switches the kind (stored) and runs the
   other downloader (at most three tries);
4. integrity (core/integrity.py): a direct task without a checksum looks once for its URL.sha256
   sidecar; the result is verified against the expected checksum (a mismatch fails the run); a run
   that found too little disk space goes back to waiting, deferred by the scheduler;
5. finish: the outcome (success, failed, stopped, left waiting at shutdown) is
   set on the in-memory task, written to the store in one patch, and the run
   leaves the scheduler. If the store refuses the write, the outcome goes to
   core/unsaved.py, which is its source of truth until it is saved.

During the run the `TaskRun.task` in the scheduler is the task's state; every
stored change to a running task goes through `write`, which updates both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from core.config import Config
from core.downloaders import DownloaderRegistry
from core.downloaders.base import DownloadContext, DownloadSettings
from core.downloaders.net import HttpClients, describe_error
from core.downloaders.refresh import RefreshBudget
from core.errors import DownloadError, IllegalTransition, LeaseLost, StoreUnavailable, WrongKind
from core.events import EventBus, TaskChanged, TaskFailed, TaskStarted, TaskStopped, TaskSucceeded
from core.integrity import Checksum, Pending, TaskIntegrity, WaitForSpace, check_space, fetch_sidecar
from core.models import Task, TaskKind, TaskStatus, can_transition
from core.naming import unique_path
from core.policy import HostAccess, HostPolicy
from core.progress import ProgressPump
from core.ratelimit import SpeedLimits
from core.scheduler import Scheduler, StopReason, TaskRun
from core.store.base import TaskPatch, TaskStore
from core.unsaved import SAVE_RETRY_SECONDS, UnsavedOutcomes

if TYPE_CHECKING:
    from core.s3_output import S3Output
    from core.storage import S3Location

log = logging.getLogger("fetchdeck.engine")

KIND_SWITCHES = 3  # downloaders tried per run when WrongKind corrections keep coming


T = TypeVar("T")
STORE_POLL = 0.5  # seconds between tries of a running task's store operation while the store is away


class Patient:
    """A running task's store operations; on a shared store an outage (a database restart) is waited
    out for up to `limit` seconds (the lease timeout: longer, and another node may hold the task by
    then) instead of failing the download. An unshared store's refusal (disk full) fails at once."""

    def __init__(self, store: Callable[[], TaskStore], limit: float, note: Callable[[str | None], None]) -> None:
        self._store = store
        self._limit = limit
        self._note = note

    async def __call__(self, op: Callable[[TaskStore], Awaitable[T]]) -> T:
        store = self._store()
        if not store.shared:
            return await op(store)
        deadline = time.monotonic() + self._limit
        waited = False
        while True:
            try:
                result = await op(store)
            except StoreUnavailable as exc:
                if time.monotonic() >= deadline:
                    raise
                self._note(f"waiting for the task store: {exc.reason}")
                waited = True
                await asyncio.sleep(STORE_POLL)
                continue
            if waited:
                self._note(None)
            return result


class StoredState:
    """A run's DurableState (ctx.state): the task's blobs in the task store, so a run on another node
    resumes from them; writes are fenced by the run's lease (LeaseLost)."""

    def __init__(self, patient: Patient, task_id: int) -> None:
        self._patient = patient
        self._task_id = task_id

    async def load(self, key: str) -> bytes | None:
        return await self._patient(lambda store: store.get_state(self._task_id, key))

    async def save(self, key: str, value: bytes | None) -> None:
        await self._patient(lambda store: store.put_state(self._task_id, key, value))


class TaskRunner:
    """Runs the tasks the scheduler launches, and writes the state of tasks (running or not)."""

    def __init__(
        self, *, config: Config, store: Callable[[], TaskStore], scheduler: Scheduler, unsaved: UnsavedOutcomes,
        bus: EventBus, progress: ProgressPump, downloaders: DownloaderRegistry, clients: HttpClients,
        limits: SpeedLimits, folder_path: Callable[[str], Path], shutdown_status: TaskStatus,
        s3: S3Output | None = None, hosts: HostPolicy | None = None,
    ) -> None:
        """folder_path: where a task's stored folder is on disk (InvalidInput if outside the allowed roots).
        s3: the engine's s3:// destinations (None: every folder is local).
        hosts: the per-host back-off on 429/503 shared by every run (core/policy.py)."""
        self.config = config
        self._store = store
        self.scheduler = scheduler
        self.unsaved = unsaved
        self.bus = bus
        self.progress = progress
        self.downloaders = downloaders
        self.clients = clients
        self.refreshes = RefreshBudget()  # expired-link refreshes per task (core/downloaders/refresh.py), across runs
        # Held while a task's options are read and written back whole (Engine.update, a run's sidecar mark), so
        # one write cannot put back options another just changed (aria2.remove's mark at a run's start was lost).
        self.options_edit = asyncio.Lock()
        self.limits = limits
        self.folder_path = folder_path
        self.shutdown_status = shutdown_status
        self.s3 = s3
        self._space_waits: set[int] = set()  # tasks deferred for disk space (their wait is logged once)
        self.hosts = hosts if hosts is not None else HostPolicy()

    def task_log(self, task_id: int, text: str) -> None:
        self.progress.log(task_id, text)

    # ---- writing a task's state --------------------------------------------
    async def write(self, task_id: int, patch: TaskPatch) -> None:
        """Store `patch`; if the task is running, its live task gets the same fields."""
        await self._store().update(task_id, patch)
        run = self.scheduler.running(task_id)
        if run:
            patch.apply(run.task)

    async def set_status(self, task: Task, status: TaskStatus, extra: TaskPatch | None = None) -> None:
        """Move `task` to `status` (IllegalTransition if the status machine forbids it), with `extra` fields.

        A running task's counters are stored with it; `task` changes only once stored,
        all fields at once: no reader sees one without the other."""
        if not can_transition(task.status, status):
            raise IllegalTransition(f"task {task.id}: {task.status.value} → {status.value} is not allowed")
        patch = TaskPatch(status=status).merge(extra or TaskPatch())
        run = self.scheduler.running(task.id)
        if run is not None:
            patch = patch.merge(TaskPatch.counters(run.task))
        await self.write(task.id, patch)
        patch.apply(task)

    def patient(self, run: TaskRun) -> Patient:
        """The run's store operations, waiting out an outage of a shared store (shown as the task's note)."""
        return Patient(self._store, self.config.cluster.lease_timeout, run.set_note)

    # ---- one run -------------------------------------------------------------
    def connections_wanted(self, task: Task) -> int:
        """Connections to its host the task opens at most: its HTTP connections or its HLS segment threads."""
        if task.kind in (TaskKind.HLS, TaskKind.DASH):
            return task.options.segment_threads or self.config.download.segment_threads
        return task.options.connections or self.config.download.connections

    def context(
        self, run: TaskRun, folder: Path, claim: Callable[[str], Awaitable[Path]] | None = None
    ) -> DownloadContext:
        """claim: the run's `claim_output` when it is not the local one (an s3:// destination's)."""
        task = run.task
        connections = task.options.connections or self.config.download.connections
        segment_threads = task.options.segment_threads or self.config.download.segment_threads
        if run.connections:  # the claim's grant within the host caps
            connections, segment_threads = min(connections, run.connections), min(segment_threads, run.connections)
        settings = DownloadSettings(
            retries=self.config.download.retries,
            connections=connections,
            segment_threads=segment_threads,
            proxy=self.config.download.proxy or None,
            read_timeout=self.config.download.read_timeout,
            link_refreshes=self.config.relink.refreshes,
            link_refresh_window=self.config.relink.window,
        )

        patient = self.patient(run)

        async def claim_output(filename: str) -> Path:
            if task.file:
                return Path(task.file)
            in_use = await patient(lambda store: store.files_in_use())
            in_use.update(r.task.file for r in self.scheduler.runs.values() if r.task.file)
            path = unique_path(folder, filename, taken=lambda p: str(p) in in_use)
            patch = TaskPatch(file=str(path), name=path.name) if task.options.auto_name else TaskPatch(file=str(path))
            await patient(lambda _store: self.write(task.id, patch))
            self.bus.publish(TaskChanged(task.id))
            return path

        return DownloadContext(
            task=task,
            folder=folder,
            clients=self.clients,
            progress=run,
            log=lambda text: self.task_log(task.id, text),
            limiter=self.limits.for_task(task.id, task.url, task.options.speed_limit),
            settings=settings,
            claim_output=claim or claim_output,
            state=StoredState(patient, task.id),
            refreshes=self.refreshes,
            integrity=self.integrity(run),
            hosts=HostAccess(self.hosts, task.id, lambda text: self.task_log(task.id, text)),
        )

    # ---- integrity and disk space (core/integrity.py) -------------------------------
    def integrity(self, run: TaskRun) -> TaskIntegrity:
        """The run's expected checksum and its free-space check (counting what the other runs still need)."""
        checksum = Checksum.parse(run.task.options.checksum) if run.task.options.checksum else None
        min_free = self.config.integrity.min_free_bytes

        def space(folder: Path, need: int) -> None:
            others = [
                Pending(Path(r.task.file).parent, r.task.total - r.task.downloaded)
                for r in self.scheduler.runs.values()
                if r is not run and r.task.total is not None and r.task.file and "://" not in r.task.file
            ]
            check_space(folder, need, others, min_free)

        return TaskIntegrity(checksum, space if self.config.integrity.space_check else None)

    async def _look_for_sidecar(self, run: TaskRun) -> None:
        """A direct task without a checksum: the server's URL.sha256, looked for once per task."""
        task = run.task
        if task.kind is not TaskKind.HTTP or task.options.checksum or task.options.checksum_sidecar \
                or not self.config.integrity.sidecar or task.options.backend:
            return
        client = self.clients.get(proxy=task.options.proxy or self.config.download.proxy or None,
                                  insecure=task.options.insecure)
        found = await fetch_sidecar(client, task.url, dict(task.headers), lambda text: self.task_log(task.id, text))
        if found is not None:
            self.task_log(task.id, f"expected checksum from the server's sidecar: {found.algorithm} {found.hex}")

        async def mark(_store: TaskStore) -> None:  # on the options as they are now (options_edit)
            async with self.options_edit:
                options = task.options.model_copy(
                    update={"checksum_sidecar": True, "checksum": str(found) if found else None})
                await self.write(task.id, TaskPatch(options=options))

        await self.patient(run)(mark)

    async def _space_wait(self, run: TaskRun, exc: WaitForSpace) -> None:
        """Too little disk space now: back to waiting with the reason as its note, retried later."""
        task = run.task
        if task.id not in self._space_waits:
            self._space_waits.add(task.id)
            self.task_log(task.id, f"{exc}; will try again when a task finishes or in "
                          f"{self.config.integrity.disk_retry:g} s")
        self.scheduler.defer(task.id, str(exc), self.config.integrity.disk_retry)
        await self._finish(run, TaskStatus.WAITING)

    async def execute(self, run: TaskRun) -> None:
        task = run.task
        try:
            store = self._store()
            stored = await self.patient(run)(lambda store: store.get(task.id))
            lease = store.lease(task.id)
            if stored is None or lease is None or stored.status is not TaskStatus.DOWNLOADING \
                    or stored.node != lease.node:
                self.scheduler.finished(run)
                return
            task.status, task.error = TaskStatus.DOWNLOADING, None
            if store.shared:
                self.task_log(task.id, f"running on node {store.node}")
            self.bus.publish(TaskStarted(task.id))
            path = await self._download(run)
        except asyncio.CancelledError:
            await self.finish_cancelled(run)
            return
        except LeaseLost:
            await self._lost(run)
            return
        except WaitForSpace as exc:
            await self._space_wait(run, exc)
            return
        except Exception as exc:
            self._space_waits.discard(task.id)
            reason = describe_error(exc)
            if not isinstance(exc, DownloadError | OSError | StoreUnavailable):
                log.exception("task %s crashed", task.id)
            self.task_log(task.id, f"failed: {reason}")
            await self._finish(run, TaskStatus.FAILED, TaskPatch(error=reason))
            self.bus.publish(TaskFailed(task.id, reason))
            return
        self._space_waits.discard(task.id)
        if task.total is None or task.total < task.downloaded:
            task.total = task.downloaded
        self.task_log(task.id, f"done: {path}")
        await self._finish(run, TaskStatus.SUCCESS, TaskPatch(file=str(path), error=None))
        self.bus.publish(TaskSucceeded(task.id))

    async def _download(self, run: TaskRun) -> str:
        """Run the task's downloader; a WrongKind correction of a guessed kind switches downloaders.
        The task's `file` as it is now (a path, or an s3:// URL)."""
        task = run.task
        for _attempt in range(KIND_SWITCHES):
            try:
                prefix = self.s3.location(task.folder) if self.s3 is not None else None
                if prefix is not None:
                    return await self._download_to_s3(run, prefix)
                folder = self.folder_path(task.folder)
                folder.mkdir(parents=True, exist_ok=True)
                if task.id not in self._space_waits:  # a task waiting for disk space tries quietly
                    self.task_log(task.id, f"start {task.kind.value} download: {task.url}")
                await self._look_for_sidecar(run)
                downloader = self.downloaders.downloader(task.kind, task.options.backend)
                ctx = self.context(run, folder)
                try:
                    path = await downloader.run(task, ctx)
                    await ctx.integrity.verify(path, ctx.log)
                finally:
                    ctx.integrity.close()
                    ctx.hosts.close()
                return str(path)
            except WrongKind as exc:
                if not (task.options.auto_kind or exc.certain) or exc.kind == task.kind:
                    raise
                self.task_log(task.id, f"switching to {exc.kind.value}: {exc}")
                await self.write(task.id, TaskPatch(kind=exc.kind))
        raise DownloadError("the download type kept changing")

    async def _download_to_s3(self, run: TaskRun, prefix: S3Location) -> str:
        """An s3:// destination (core/s3_output.py): straight to S3 (HTTP), or staged locally and uploaded."""
        from core.downloaders.http_s3 import task_attempts
        from core.storage import S3Location, S3Target

        assert self.s3 is not None
        s3, task = self.s3, run.task

        patient = self.patient(run)

        async def in_use() -> set[str]:
            taken = await patient(lambda store: store.files_in_use())
            taken.update(r.task.file for r in self.scheduler.runs.values() if r.task.file and r.task is not task)
            return taken

        async def record(location: S3Location) -> None:
            name = TaskPatch(name=location.name) if task.options.auto_name else TaskPatch()
            await patient(lambda _store: self.write(task.id, TaskPatch(file=location.url).merge(name)))
            self.bus.publish(TaskChanged(task.id))

        async def claim_key(filename: str) -> S3Location:
            return await s3.claim(task, prefix, filename, in_use, record, task_attempts(ctx))

        direct = self.downloaders.direct_to_storage(task.kind, task.options.backend)
        staging = s3.staging(task.id)  # a staged run's local folder (a direct one writes nothing locally)
        if direct is None:
            staging.mkdir(parents=True, exist_ok=True)

        async def claim_staged(filename: str) -> Path:
            return staging / (await claim_key(filename)).name

        ctx = self.context(run, staging, claim_staged)
        ctx.remote = S3Target(await s3.client(), claim_key)
        self.task_log(task.id, f"start {task.kind.value} download to {prefix.url}: {task.url}")
        try:
            if direct is not None:
                await direct.run(task, ctx)
                if ctx.integrity.checksum is not None:
                    self.task_log(task.id, "checksum not verified: the file went straight to S3")
                return task.file or ""
            path = await self.downloaders.downloader(task.kind, task.options.backend).run(task, ctx)
            await ctx.integrity.verify(path, ctx.log)
        finally:
            ctx.integrity.close()
            ctx.hosts.close()
        uploaded = await s3.upload_staged(ctx, path, S3Location.parse(task.file or ""))
        return uploaded.url

    async def finish_cancelled(self, run: TaskRun) -> None:
        task = run.task
        reason = run.stop_reason or StopReason.SHUTDOWN
        if reason is StopReason.DELETE:
            self.scheduler.finished(run)
            return
        if reason is StopReason.LEASE_LOST:
            await self._lost(run)
            return
        if reason is StopReason.STOP:
            self.task_log(task.id, "stopped")
            await self._finish(run, TaskStatus.STOPPED)
            self.bus.publish(TaskStopped(task.id))
        elif reason is StopReason.PAUSE:
            self.task_log(task.id, "paused by the schedule; resumes when the window ends")
            await self._finish(run, TaskStatus.WAITING)
            self.bus.publish(TaskChanged(task.id))  # queued again (readers see its note)
        else:
            self.task_log(task.id, "interrupted by shutdown; will resume")
            await self._finish(run, self.shutdown_status)

    async def _lost(self, run: TaskRun) -> None:
        """The run's lease went to another node: leave the task to it, writing nothing more."""
        self.scheduler.finished(run)
        await self._store().release(run.task.id)
        log.warning("task %s: another node took it over; this node stopped running it", run.task.id)

    async def _finish(self, run: TaskRun, status: TaskStatus, extra: TaskPatch | None = None) -> None:
        task = run.task
        task.speed, task.eta = 0.0, None
        stored = task.status
        try:
            await self.set_status(task, status, extra)
        except LeaseLost:
            await self._lost(run)
            return
        except StoreUnavailable as exc:
            # The run is over either way; keep its outcome until the store takes it.
            task.status = status
            (extra or TaskPatch()).apply(task)
            self.unsaved.keep(task, stored)
            log.warning("task %s is %s but %s; retrying every %.0f s",
                        task.id, status.value, exc, SAVE_RETRY_SECONDS)
        finally:
            self.scheduler.finished(run)
        with contextlib.suppress(StoreUnavailable):  # the pump keeps the lines for its next flush
            await self.progress.flush_logs()

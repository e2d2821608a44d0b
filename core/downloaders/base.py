"""The downloader contract: `async def run(task, ctx) -> Path`.

A downloader gets everything it needs through `DownloadContext` and reports
through it; it never touches the store or the event bus. Cancellation is
plain asyncio cancellation: on CancelledError a downloader leaves its `.part`
file or work folder resumable and re-raises.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import httpx

from core.downloaders.net import Contact, HttpClients, Retry, RetryPolicy, as_download_error
from core.downloaders.refresh import RefreshBudget
from core.integrity import TaskIntegrity
from core.models import Task
from core.policy import HostAccess
from core.ratelimit import Limiter

if TYPE_CHECKING:
    from core.storage import S3Target


class ProgressSink(Protocol):
    """Where a downloader reports progress; the engine derives speed and ETA."""

    def set_total(self, total: int | None) -> None: ...
    def add(self, nbytes: int) -> None: ...
    def set_downloaded(self, nbytes: int) -> None: ...
    def set_segments(self, done: int, total: int) -> None: ...
    def set_note(self, note: str | None) -> None:
        """Why the download is not moving right now ("retrying in 4 s: connection refused (3/8)"); None clears it."""
        ...


class DurableState(Protocol):
    """A task's small resume blobs kept in the task store, so a run on another node can resume
    (an S3 multipart upload's id and part ETags). Writes are fenced by the run's lease."""

    async def load(self, key: str) -> bytes | None: ...
    async def save(self, key: str, value: bytes | None) -> None:
        """Store (None: drop) the blob; raises LeaseLost if this node no longer runs the task."""
        ...


class MemoryState:
    """DurableState kept in memory: for a context built outside an engine (nothing survives the process)."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    async def load(self, key: str) -> bytes | None:
        return self._blobs.get(key)

    async def save(self, key: str, value: bytes | None) -> None:
        if value is None:
            self._blobs.pop(key, None)
        else:
            self._blobs[key] = value


@dataclass(frozen=True, slots=True)
class DownloadSettings:
    retries: int = 8
    connections: int = 8
    segment_threads: int = 16
    proxy: str | None = None
    read_timeout: float = 30.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    # Expired links (core/downloaders/refresh.py): re-extractions allowed per task in a sliding window of seconds.
    link_refreshes: int = 3
    link_refresh_window: float = 600.0


@dataclass(slots=True)
class DownloadContext:
    task: Task
    folder: Path  # created, inside the allowed roots
    clients: HttpClients
    progress: ProgressSink
    log: Callable[[str], None]
    limiter: Limiter
    settings: DownloadSettings
    # Decide (once) the final output path for a proposed file name: sanitized,
    # de-duplicated, recorded on the task. Returns the recorded path on resume.
    claim_output: Callable[[str], Awaitable[Path]]
    contact: Contact = field(default_factory=Contact)  # has the server answered yet in this run
    state: DurableState = field(default_factory=MemoryState)  # resume blobs that outlive this node
    # An s3:// destination (core/storage): a downloader that writes there itself (http_s3) uploads to it;
    # None: the output is a local file (for an s3:// task, the runner uploads it when the run succeeds).
    remote: S3Target | None = None
    # Expired-link refreshes used per task (core/downloaders/refresh.py); the engine's one outlives a run.
    refreshes: RefreshBudget = field(default_factory=RefreshBudget)
    # The expected checksum's hasher and the free-space check (core/integrity.py); the default checks nothing.
    integrity: TaskIntegrity = field(default_factory=TaskIntegrity)
    # The hosts' back-off on 429/503 (core/policy.py): a slot per request; private outside an engine.
    hosts: HostAccess = field(default_factory=HostAccess.private)

    def __post_init__(self) -> None:
        if not isinstance(self.progress, NoteClearingSink):
            self.progress = NoteClearingSink(self.progress)

    @property
    def proxy(self) -> str | None:
        return self.task.options.proxy or self.settings.proxy

    def client(self) -> httpx.AsyncClient:
        return self.clients.get(proxy=self.proxy, insecure=self.task.options.insecure)

    def retry(
        self, doing: str, retries: int | None = None,
        final: Callable[[Exception], Exception] = as_download_error,
    ) -> Retry:
        """The retry rule (core/downloaders/net.py) for one operation of this task: it logs each
        wait to the task's log and shows it as the task's note."""
        settings = self.settings
        policy = RetryPolicy(
            retries=settings.retries if retries is None else retries,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
            unreachable_budget=self.clients.unreachable_budget,
        )
        return Retry(policy, doing, log=self.log, note=self.progress.set_note, contact=self.contact, final=final)

    def request_headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The task's headers with `extra` on top; names compare without case, so the downloader's wins."""
        headers = dict(self.task.headers)
        if extra:
            lowered = {name.lower() for name in extra}
            headers = {k: v for k, v in headers.items() if k.lower() not in lowered}
            headers.update(extra)
        return headers


class Downloader(Protocol):
    async def run(self, task: Task, ctx: DownloadContext) -> Path: ...


class NoteClearingSink:
    """The run's ProgressSink, clearing a retry note as soon as bytes flow again."""

    __slots__ = ("_noted", "_sink")

    def __init__(self, sink: ProgressSink) -> None:
        self._sink = sink
        self._noted = False

    def set_total(self, total: int | None) -> None:
        self._sink.set_total(total)

    def add(self, nbytes: int) -> None:
        if self._noted and nbytes > 0:
            self.set_note(None)
        self._sink.add(nbytes)

    def set_downloaded(self, nbytes: int) -> None:
        self._sink.set_downloaded(nbytes)

    def set_segments(self, done: int, total: int) -> None:
        self._sink.set_segments(done, total)

    def set_note(self, note: str | None) -> None:
        self._noted = note is not None
        self._sink.set_note(note)

"""The downloader contract: `async def run(task, ctx) -> Path`.

A downloader gets everything it needs through `DownloadContext` and reports
through it; it never touches the store or the event bus. Cancellation is
plain asyncio cancellation: on CancelledError a downloader leaves its `.part`
file or work folder resumable and re-raises.
"""

from __future__ import annotations

import asyncio
import errno
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Protocol

import aiohttp
import httpx

from core.downloaders.http_clients import HttpClients
from core.errors import DownloadError, HttpStatusError, NoSpaceLeft
from core.models import Task
from core.ratelimit import RateLimiter


class ProgressSink(Protocol):
    """Where a downloader reports progress; the engine derives speed and ETA."""

    def set_total(self, total: int | None) -> None: ...
    def add(self, nbytes: int) -> None: ...
    def set_downloaded(self, nbytes: int) -> None: ...
    def set_segments(self, done: int, total: int) -> None: ...
    def set_note(self, note: str | None) -> None:
        """Why the download is not moving right now ("retrying in 4 s: connection refused (3/8)"); None clears it."""
        ...


@dataclass(frozen=True, slots=True)
class DownloadSettings:
    retries: int = 8
    connections: int = 8
    segment_threads: int = 16
    proxy: str | None = None
    read_timeout: float = 30.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0


@dataclass(slots=True)
class DownloadContext:
    task: Task
    folder: Path  # created, inside the allowed roots
    clients: HttpClients
    progress: ProgressSink
    log: Callable[[str], None]
    limiter: RateLimiter
    settings: DownloadSettings
    # Decide (once) the final output path for a proposed file name: sanitized,
    # de-duplicated, recorded on the task. Returns the recorded path on resume.
    claim_output: Callable[[str], Awaitable[Path]]

    @property
    def proxy(self) -> str | None:
        return self.task.options.proxy or self.settings.proxy

    def client(self) -> httpx.AsyncClient:
        return self.clients.get(proxy=self.proxy, insecure=self.task.options.insecure)

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


# ---- retry policy shared by the HTTP-based downloaders ----------------------

RETRYABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    httpx.TransportError,  # connect/read errors, resets, timeouts, protocol errors
    ConnectionError,
    TimeoutError,
)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _certificate_problem(exc: BaseException) -> BaseException | None:
    for link in _chain(exc):
        inner = getattr(link, "certificate_error", None)  # aiohttp.ClientConnectorCertificateError
        if isinstance(inner, ssl.SSLCertVerificationError):
            return inner
        if isinstance(link, ssl.SSLCertVerificationError):
            return link
    return None


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, DownloadError):
        return exc.retryable
    if _certificate_problem(exc) is not None:
        return False  # retrying will not make a certificate trusted
    return isinstance(exc, RETRYABLE_EXCEPTIONS)


def retry_after_seconds(response: httpx.Response, cap: float = 120.0) -> float | None:
    """Retry-After as seconds (delta form; an HTTP date is honoured too)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return min(cap, max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(cap, max(0.0, when.timestamp() - time.time()))


def backoff_delay(attempt: int, settings: DownloadSettings, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter; Retry-After wins when the server sent one."""
    if retry_after is not None:
        return retry_after
    delay: float = min(settings.backoff_max, settings.backoff_base * (2**attempt))
    return delay * (0.5 + random.random() / 2)


def describe_error(exc: BaseException) -> str:
    """A one-line reason a user can read, for logs and the task's error field.

    httpx-aiohttp maps every aiohttp connection error to ConnectTimeout, so the
    underlying cause (refused, DNS, certificate) is read from the chain. Never raises.
    """
    try:
        return _describe(exc)
    except Exception:
        return f"{type(exc).__name__}: {exc!r}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DownloadError):
        return str(exc)
    cert = _certificate_problem(exc)
    if cert is not None:
        detail = getattr(cert, "verify_message", None) or getattr(cert, "reason", None) or "untrusted"
        return f"TLS certificate verification failed ({detail}); enable 'insecure' to skip verification"
    for link in _chain(exc):
        if isinstance(link, ssl.SSLError):
            return f"TLS error: {link.reason or link}"
        if isinstance(link, aiohttp.ClientConnectorError):
            return f"cannot connect to {link.host}:{link.port}: {link.os_error.strerror or link.os_error}"
        if isinstance(link, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
            return "timed out waiting for the server"
        if isinstance(link, aiohttp.ClientPayloadError):
            return "the connection broke off in the middle of the body"
        if isinstance(link, aiohttp.ServerDisconnectedError):
            return "the server closed the connection"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.TransportError):
        return f"connection error: {exc or type(exc).__name__}"
    for link in _chain(exc):
        if isinstance(link, OSError) and link.errno == errno.ENOSPC:  # raised past a NoSpaceLeft wrapper
            return str(NoSpaceLeft(str(link.filename or "")))
    if isinstance(exc, OSError):
        return f"{exc.strerror or type(exc).__name__}{f': {exc.filename}' if exc.filename else ''}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def raise_for_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise HttpStatusError(
            response.status_code, response.reason_phrase, str(response.url), retry_after_seconds(response)
        )


async def wait_before_retry(exc: Exception, attempt: int, ctx: DownloadContext, doing: str) -> None:
    """Re-raise exc if it is final (not retryable, or retries used up); else log and back off.

    `attempt` counts the failures so far (0 for the first); Retry-After wins over backoff.
    """
    if not is_retryable(exc) or attempt >= ctx.settings.retries:
        raise exc
    delay = backoff_delay(attempt, ctx.settings, getattr(exc, "retry_after", None))
    ctx.log(f"{doing}: {describe_error(exc)}; retry {attempt + 1}/{ctx.settings.retries} in {delay:.1f}s")
    await asyncio.sleep(delay)

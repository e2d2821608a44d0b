"""Every exception fetchdeck raises on purpose, in one tree.

FetchdeckError
├── InvalidInput          a client asked for something malformed (→ 4xx)
│   └── InvalidField      … and which field of which batch item
├── TaskNotFound          no task with that id (→ 404)
├── IllegalTransition     the status machine forbids it (→ 409)
├── StoreUnavailable      the task store cannot be written, e.g. its disk is full (→ 503)
├── LeaseLost             another node took over a task this node was running (fencing)
└── DownloadError         a download failed; str() is the readable reason
    ├── HttpStatusError   the server answered an error status
    ├── RemoteChanged     the remote file changed under a resume
    ├── NoSpaceLeft       the disk is full
    ├── UnsupportedMedia  e.g. SAMPLE-AES, unknown key method
    ├── UnsupportedUrl    yt-dlp has no extractor for the URL and found no media in it
    ├── WrongKind         the response shows another kind (e.g. an HLS playlist)
    ├── StorageError      the S3-compatible store refused or failed a request (core/storage)
    │   └── UploadGone    the multipart upload being resumed no longer exists there
    └── NetworkError      the transport failed (classified once, in core/downloaders/net.py)
        ├── CannotConnect     no connection could be made (unreachable: the server never answered)
        │   ├── ConnectionRefused
        │   ├── DnsFailure
        │   └── StorageUnreachable  the S3-compatible store did not answer
        ├── TlsFailure        handshake or certificate; not retried
        ├── TimedOut
        └── ConnectionReset   reset, closed or broken off mid-body
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.models import TaskKind


class FetchdeckError(Exception):
    """Base of all fetchdeck errors."""


class InvalidInput(FetchdeckError, ValueError):
    pass


class TaskNotFound(FetchdeckError, LookupError):
    def __init__(self, task_id: int) -> None:
        super().__init__(f"no task with id {task_id}")
        self.task_id = task_id


class IllegalTransition(FetchdeckError):
    pass


class StoreUnavailable(FetchdeckError):
    """SQLite refused a write (disk full, I/O error, locked); nothing was changed."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the task store could not be written: {reason}")
        self.reason = reason


class LeaseLost(FetchdeckError):
    """Writes to these tasks were refused: this node's lease on them was taken over (or they were deleted).

    The store changed nothing for them; the node must stop running them without writing anything more."""

    def __init__(self, task_ids: frozenset[int]) -> None:
        super().__init__(f"lease lost on task(s) {', '.join(map(str, sorted(task_ids)))}")
        self.task_ids = task_ids


class DownloadError(FetchdeckError):
    """A download failed; the message is what the user reads."""

    retryable: bool = False


class HttpStatusError(DownloadError):
    def __init__(self, status: int, reason: str, url: str = "", retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status} {reason}".rstrip())
        self.status = status
        self.reason = reason
        self.url = url
        self.retry_after = retry_after  # seconds the server asked us to wait (429/503)
        self.retryable = status >= 500 or status in (408, 429)


class RemoteChanged(DownloadError):
    retryable = True


class NoSpaceLeft(DownloadError):
    def __init__(self, path: str = "") -> None:
        super().__init__(f"no space left on device{f' writing {path}' if path else ''}")


class UnsupportedMedia(DownloadError):
    pass


class UnsupportedUrl(DownloadError):
    pass


class WrongKind(DownloadError):
    def __init__(self, kind: TaskKind, why: str, certain: bool = False) -> None:
        super().__init__(f"this is a {kind.value} download: {why}")
        self.kind = kind
        # certain: the response proves the kind whatever the client said (an "m3u8" task whose URL serves a
        # DASH manifest): the task switches even if its kind was given, not guessed.
        self.certain = certain


class StorageError(DownloadError):
    """The S3-compatible store refused or failed a request; str() names the store, bucket or key."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class UploadGone(StorageError):
    """The multipart upload a resume wanted to continue was aborted or expired: start a new one."""


class InvalidField(InvalidInput):
    """InvalidInput that names what was wrong: `field` ("url", "folder", "headers", "options", "proxy"...)
    of the `index`-th item of a batch (None: a single request). str() is the rule's own sentence, so a
    dialect that only shows the message shows the same text; one that names fields prefixes its own path."""

    def __init__(self, message: str, field: str, index: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.index = index


class NetworkError(DownloadError):
    """The transport failed before or while a response arrived; str() is the one-line reason."""

    retryable = True
    unreachable = False  # True: nothing answered at all (refused, no such host, connect timeout)


class CannotConnect(NetworkError):
    unreachable = True


class ConnectionRefused(CannotConnect):
    pass


class DnsFailure(CannotConnect):
    pass


class TlsFailure(NetworkError):
    retryable = False  # neither an untrusted certificate nor a server that speaks no TLS fixes itself


class TimedOut(NetworkError):
    pass


class ConnectionReset(NetworkError):
    pass


class StorageUnreachable(CannotConnect):
    """Nothing answered at the S3-compatible store's endpoint ("S3 store unreachable at URL: reason")."""

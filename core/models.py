"""The task model shared by every layer: kinds, statuses, options, tasks.

Everything that crosses a boundary (engine ↔ server ↔ tui) is one of these
types, never a loose dict.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidInput
from core.validation import has_control_chars, is_header_name


class TaskKind(StrEnum):
    HTTP = "http"
    HLS = "hls"
    YTDLP = "ytdlp"
    DASH = "dash"  # an MPEG-DASH manifest (.mpd): core/downloaders/dash


# API type names (MediaGo, SaveAny-Bot, Downie...) → the kind that runs them.
KIND_ALIASES: dict[str, TaskKind] = {
    "http": TaskKind.HTTP,
    "direct": TaskKind.HTTP,
    "directlinks": TaskKind.HTTP,
    "file": TaskKind.HTTP,
    "hls": TaskKind.HLS,
    "m3u8": TaskKind.HLS,
    "ytdlp": TaskKind.YTDLP,
    "yt-dlp": TaskKind.YTDLP,
    "youtube": TaskKind.YTDLP,
    "bilibili": TaskKind.YTDLP,
    "dash": TaskKind.DASH,
}


def parse_kind(name: str) -> TaskKind:
    """Map an API type name onto a kind; raise InvalidInput for unknown names."""
    try:
        return KIND_ALIASES[name.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(KIND_ALIASES))
        raise InvalidInput(f"unknown task type {name!r} (known: {known})") from None


# ---- queue control (issue 14): a task's priority; core/queue.py owns the rest of the queue's rules
class Priority(StrEnum):
    """A task's priority: the queue takes high before normal before low, then by position."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """The stored value (a small int, ascending in queue order)."""
        return _PRIORITY_RANKS[self]

    @classmethod
    def of_rank(cls, rank: int) -> Priority:
        return _PRIORITIES_BY_RANK.get(rank, cls.NORMAL)


_PRIORITY_RANKS = {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 2}
_PRIORITIES_BY_RANK = {rank: p for p, rank in _PRIORITY_RANKS.items()}


class TaskStatus(StrEnum):
    WAITING = "waiting"
    DOWNLOADING = "downloading"
    SUCCESS = "success"
    FAILED = "failed"
    STOPPED = "stopped"


ACTIVE_STATUSES = frozenset({TaskStatus.WAITING, TaskStatus.DOWNLOADING})
FINAL_STATUSES = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.STOPPED})

# The status machine. Restarting a finished task (success → waiting) is allowed
# so "download again" works; everything else follows DESIGN.md.
ALLOWED_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.WAITING: frozenset({TaskStatus.DOWNLOADING, TaskStatus.STOPPED, TaskStatus.FAILED}),
    TaskStatus.DOWNLOADING: frozenset(
        {TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.STOPPED, TaskStatus.WAITING}
    ),
    TaskStatus.SUCCESS: frozenset({TaskStatus.WAITING}),
    TaskStatus.FAILED: frozenset({TaskStatus.WAITING, TaskStatus.STOPPED}),
    TaskStatus.STOPPED: frozenset({TaskStatus.WAITING}),
}


def can_transition(old: TaskStatus, new: TaskStatus) -> bool:
    return old == new or new in ALLOWED_TRANSITIONS[old]


Quality = Literal["best", "2160p", "1440p", "1080p", "720p", "480p", "360p", "worst", "audio"]
PostProcessing = Literal["none", "audio", "mp4"]


class TaskOptions(BaseModel):
    """Per-task options. Each downloader reads the fields that concern it.

    all kinds: speed_limit (bytes/s, enforced by the engine's limiters)
    http: connections, proxy, insecure
    hls: segment_threads, skip, log_skipped, keep_segments, no_merge,
         delete_segments, quality (variant choice), use_server_file_time
    dash: the hls options (quality picks the video representation)
    ytdlp: quality, postprocess, cookies, ytdlp_flags, proxy
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    auto_kind: bool = False  # kind was guessed, the response may correct it
    auto_name: bool = False  # no name given: the downloader's file name becomes the name
    connections: int | None = Field(default=None, ge=1, le=64)
    segment_threads: int | None = Field(default=None, ge=1, le=64)
    proxy: str | None = None
    insecure: bool = False
    skip: str | None = None
    log_skipped: bool = False
    keep_segments: bool = False
    no_merge: bool = False
    delete_segments: bool = True
    use_server_file_time: bool = False
    quality: str | None = None
    postprocess: PostProcessing = "none"
    cookies: str | None = None
    ytdlp_flags: list[str] = Field(default_factory=list)
    debug_log: bool = False
    # The type name an API client used when creating the task (e.g. "bilibili", "mediago");
    # API dialects echo it back. None: derive the name from the kind.
    api_type: str | None = None
    # An id the client chose for the task (MediaGo's POST /api/tasks `id`), when it is not the engine's.
    client_id: str | None = None
    # Compat dialects (server/routes/saveany.py ...): fields the engine stores but does not act on.
    webhook: str | None = None  # SaveAny: POSTed to when the task (group) reaches a terminal state
    storage: str | None = None  # SaveAny: the storage name the client chose
    storage_path: str | None = None  # SaveAny: the sub-path inside that storage, as given
    group: int | None = None  # id of the task leading the group this one belongs to (multi-URL tasks)
    members: list[int] = Field(default_factory=list)  # on a group leader: the other tasks of the group
    # A downloader registered by name (DownloaderRegistry.register_backend) instead of the kind's own,
    # with its own options (e.g. "aria2" and its aria2 options).
    backend: str | None = None
    backend_options: dict[str, str] = Field(default_factory=dict)
    # Events out (core/notify/): notify=False: no Apprise notification for this task (the [webhook] and
    # [hooks] still run); notify_urls: Apprise URLs notified for this task besides [notify] urls.
    notify: bool = True
    notify_urls: list[str] = Field(default_factory=list)
    # Integrity (core/integrity.py): the expected digest "ALGO=HEX" (given, or read from the server's
    # URL.sha256 sidecar), and whether the sidecar was looked for (once per task).
    checksum: str | None = None
    checksum_sidecar: bool = False
    # Bandwidth (core/ratelimit.py): this task's own speed limit in bytes/s (None: none), on top of the
    # global and per-host limits; changeable while it runs (Engine.set_task_speed_limit).
    speed_limit: int | None = Field(default=None, ge=1)
    # ---- per-host policy (core/playlists.py): a yt-dlp playlist or channel URL added as one task per entry
    expand_playlist: bool = False
    # ---- the aria2 dialect (server/routes/aria2rpc.py): a stopped task a client removed (aria2.remove) rather
    # than paused; out of the queue view (core/queue.py), stored so it still reads "removed" after a restart.
    # Engine.start clears it.
    removed: bool = False

    def to_json(self) -> str:
        return self.model_dump_json(exclude_defaults=True)

    @classmethod
    def from_json(cls, text: str | None) -> TaskOptions:
        return _options_from_json(text or "")


@functools.lru_cache(maxsize=4096)
def _options_from_json(text: str) -> TaskOptions:
    """Most tasks share a handful of option sets: parse each once (options are never changed in
    place, only replaced with model_copy, so one instance can back many tasks)."""
    return TaskOptions.model_validate_json(text) if text else TaskOptions()


Headers = tuple[tuple[str, str], ...]


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def parse_header_lines(lines: list[str] | str) -> Headers:
    """Parse 'Key: Value' lines (a list, or one string with newlines) into ordered pairs."""
    if isinstance(lines, str):
        lines = _LINE_BREAK.split(lines)  # not str.splitlines: that also splits at \x1c-\x1e, \x85, \u2028...
    pairs: list[tuple[str, str]] = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not is_header_name(key):  # a header name is an RFC 9110 token
            raise InvalidInput(f"bad header line {raw!r}: expected 'Name: value'")
        value = value.strip()
        if has_control_chars(value, allowed="\t"):
            raise InvalidInput(f"bad header value for {key!r}: control characters")
        pairs.append((key, value))
    return tuple(pairs)


# Headers the downloaders own (ranges, framing, connection management). A client's copy is dropped:
# a browser extension sends every header the page's request had, `Range: bytes=0-` of a <video> included.
TRANSPORT_HEADERS = frozenset({
    "host", "content-length", "range", "if-range", "connection", "keep-alive", "transfer-encoding", "te",
    "trailer", "upgrade", "proxy-connection", "accept-encoding", "expect",
})


def forwardable_headers(headers: Headers) -> Headers:
    """The headers a task may send, in order: every pair but the TRANSPORT_HEADERS (any case)."""
    return tuple((k, v) for k, v in headers if k.lower() not in TRANSPORT_HEADERS)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What a client asks for when creating a task."""

    url: str
    kind: TaskKind | None = None  # None: guess from the URL
    name: str | None = None
    folder: str | None = None  # relative to the download dir, or an allowed absolute path
    headers: Headers = ()
    is_live: bool = False
    options: TaskOptions = field(default_factory=TaskOptions)
    # queue control (issue 14): where the task goes in the queue, and not before when (unix time)
    priority: Priority = Priority.NORMAL
    start_at: float | None = None


@dataclass(slots=True)
class Task:
    id: int
    kind: TaskKind
    url: str
    name: str
    folder: str
    headers: Headers
    status: TaskStatus
    options: TaskOptions
    is_live: bool = False
    file: str | None = None
    downloaded: int = 0
    total: int | None = None
    speed: float = 0.0
    eta: float | None = None
    segments_done: int = 0
    segments_total: int = 0
    error: str | None = None
    note: str | None = None  # live only, never stored: why a running task waits ("retrying in 4 s: ...")
    node: str | None = None  # the node running it (set by the store's claim, cleared when it stops running)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    # queue control (issue 14): priority class, explicit order within it (the store's key), start time
    priority: Priority = Priority.NORMAL
    position: float = 0.0
    start_at: float | None = None  # unix time: not claimed before it (None: at once)

    @property
    def percent(self) -> float:
        if self.status == TaskStatus.SUCCESS:
            return 100.0
        if not self.total:
            return 0.0
        return min(100.0, 100.0 * self.downloaded / self.total)

    def copy(self) -> Task:
        return replace(self)


@dataclass(frozen=True, slots=True)
class TaskPage:
    items: list[Task]
    total: int
    page: int
    size: int


@dataclass(frozen=True, slots=True)
class EngineStats:
    total: int
    waiting: int
    downloading: int
    success: int
    failed: int
    stopped: int
    speed: float  # bytes/s over all running tasks


@dataclass(frozen=True, slots=True)
class LogLine:
    ts: float
    text: str

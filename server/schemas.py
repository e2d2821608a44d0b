"""Request and response shapes of the native (MediaGo) API.

Request models validate what clients send (strict JSON types, unknown fields
ignored). Response models document the envelope for OpenAPI; a task is written
by server/wire.py (`encode_task`, plain dicts, fast for 10,000-task answers;
`DownloadTask` documents it) and `task_to_api` adds where the file is on disk.
The schemathesis run in tests/api checks the document and the answers agree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from core.engine import MAX_BATCH
from core.errors import InvalidInput
from core.models import KIND_ALIASES, Headers, Quality, Task, TaskKind, TaskStatus, parse_header_lines
from server.wire import DEFAULT_TYPE, SPEC_TYPES, encode_task
from server.wire import DownloadTask as DownloadTask  # re-exported: the routes document answers with it
from server.wire import api_type_of as api_type_of
from server.wire import iso_time as iso_time

# ---------------------------------------------------------------- type names

# Also accepted on input: every name the engine knows (http, hls, ytdlp, ...).
ACCEPTED_TYPES: dict[str, TaskKind | None] = {**KIND_ALIASES, **SPEC_TYPES}

InputType = Literal[
    "m3u8", "bilibili", "direct", "youtube", "mediago",
    "http", "directlinks", "file", "hls", "ytdlp", "yt-dlp", "dash",
]
assert set(InputType.__args__) == set(ACCEPTED_TYPES), "InputType must list every accepted type name"  # type: ignore[attr-defined]


def canonical_type(name: str) -> str:
    """The MediaGo name to store for an input type name ('http' → 'direct', 'ytdlp' → 'youtube')."""
    if name in SPEC_TYPES:
        return name
    return DEFAULT_TYPE[ACCEPTED_TYPES[name]]  # type: ignore[index]


# ---------------------------------------------------------------- headers


def parse_mediago_headers(value: str | list[str]) -> Headers:
    """The three shapes MediaGo's clients send `headers` in, as ordered pairs.

    - 'Name: value' lines in one string (its web UI; 'Name:value' from its in-app sniffer),
      or a JSON list of such lines;
    - a string holding a JSON array of 'Name: value' strings (what MediaGo core stores);
    - a string holding a JSON object {"Name": "value", ...} (its browser extension's sniffer;
      a list of values gives the header once per value).
    """
    if isinstance(value, list):
        return parse_header_lines(value)
    text = value.strip()
    if not text.startswith(("{", "[")):
        return parse_header_lines(value)
    try:
        parsed = json.loads(text)
    except ValueError:
        raise InvalidInput("headers look like JSON but are not valid JSON; send 'Name: value' lines, "
                           'a JSON array of them, or a JSON object {"Name": "value"}') from None
    if isinstance(parsed, list) and all(isinstance(line, str) for line in parsed):
        return parse_header_lines(parsed)
    if not isinstance(parsed, dict):
        raise InvalidInput("headers as JSON must be an array of 'Name: value' strings "
                           'or an object {"Name": "value"}')
    pairs: list[tuple[str, str]] = []
    for name, values in parsed.items():
        for item in values if isinstance(values, list) else [values]:
            if not isinstance(item, str | int | float) or isinstance(item, bool):
                raise InvalidInput(f"header {name[:100]!r}: the value must be a string")
            ((key, val),) = parse_header_lines([f"{name}: {item}"])
            if key != name:
                raise InvalidInput(f"bad header name {name[:100]!r}")
            pairs.append((key, val))
    return tuple(pairs)


# ---------------------------------------------------------------- Task → JSON


def file_on_disk(task: Task, root: Path | None = None) -> str | None:
    """Where a finished task's file is, if it is there: MediaGo's `exists`/`file`.

    root: the client's download root (MediaGo's `localPath`) when it is not fetchdeck's
    own: the file is looked for as root/folder/<file name> first (files moved with their root).
    """
    if task.status is not TaskStatus.SUCCESS or not task.file:
        return None
    if root is not None and not Path(task.folder).is_absolute():
        moved = root / task.folder / Path(task.file).name
        if moved.exists():
            return str(moved)
    return task.file if os.path.exists(task.file) else None


def task_to_api(task: Task, root: Path | None = None) -> dict[str, Any]:
    """A DownloadTask as the API documents it (plus progress fields and MediaGo's `exists`)."""
    return encode_task(task, file_on_disk(task, root))


# ---------------------------------------------------------------- requests

MAX_ID = 2**63 - 1
TaskId = Annotated[int, Field(ge=1, le=MAX_ID)]
URL_PATTERN = r"^[hH][tT][tT][pP][sS]?://"


PriorityWord = Literal["high", "normal", "low"]
StartAt = Annotated[str, Field(max_length=64)] | Annotated[float, Field(ge=0, allow_inf_nan=False)]
START_AT_HELP = ("Do not start before this time: HH:MM (the server's local time, the next time it comes), an "
                 "ISO 8601 date and time, or a unix time in seconds")


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, populate_by_name=True)


class TaskInput(_Body):
    """One task to create."""

    type: InputType | None = Field(
        default=None, description="m3u8, bilibili, direct, youtube or mediago (also http, hls, ytdlp, dash); "
        "omitted or mediago: detected from the URL (an m3u8 task whose URL is a DASH .mpd runs as dash)"
    )
    url: str = Field(pattern=URL_PATTERN, max_length=8192, description="http:// or https:// URL")
    name: str | None = Field(default=None, max_length=1024, description="Task name, used as the file name")
    folder: str | None = Field(default=None, max_length=4096, description="Subfolder of the download dir")
    headers: str | list[str] | None = Field(
        default=None, description="Extra request headers, 'Name: value' lines (one string or a list)"
    )
    is_live: bool = Field(default=False, alias="isLive")
    # Events out (core/notify/): this task's Apprise notifications
    notify: bool = Field(default=True, description="false: no notification for this task ([webhook] and "
                         "[hooks] still run)")
    notify_urls: list[str] | None = Field(default=None, alias="notifyUrls", max_length=16, description=(
        "Apprise URLs notified when this task finishes or fails, besides the configured ones "
        "(e.g. ntfy://ntfy.sh/topic)"))
    checksum: str | None = Field(
        default=None, max_length=200, description="Expected digest 'ALGO=HEX' (md5, sha1, sha256, sha512): "
        "a mismatch fails the task with both digests and keeps the file as NAME.corrupt"
    )
    expand_playlist: bool = Field(
        default=False, alias="expandPlaylist",
        description="A yt-dlp playlist or channel URL: one task per entry (the answer lists them all)",
    )
    # queue control (issue 14)
    priority: PriorityWord | None = Field(default=None, description="high, normal (default) or low")
    start_at: StartAt | None = Field(default=None, alias="startAt", description=START_AT_HELP)
    # yt-dlp video choice (the web page's add form; `fetchdeck get --quality/--audio-only`)
    quality: Quality | None = Field(default=None, description="yt-dlp/HLS/DASH quality: best, 2160p ... 360p, "
                                    "worst, audio")
    audio_only: bool = Field(default=False, alias="audioOnly", description="yt-dlp: extract the audio track")


class CreateRequest(_Body):
    tasks: list[TaskInput] = Field(min_length=1, max_length=MAX_BATCH)
    start_download: bool = Field(default=False, alias="startDownload")


class UpdateRequest(_Body):
    """Fields to change; all optional."""

    name: str | None = Field(default=None, max_length=1024)
    url: str | None = Field(default=None, pattern=URL_PATTERN, max_length=8192)
    headers: str | list[str] | None = None
    folder: str | None = Field(default=None, max_length=4096)
    is_live: bool | None = Field(default=None, alias="isLive")
    priority: PriorityWord | None = Field(default=None, description="high, normal or low")
    start_at: StartAt | None = Field(default=None, alias="startAt", description=START_AT_HELP + "; 0: at once")


class MoveRequest(_Body):
    to: Literal["top", "bottom", "up", "down"] = Field(
        description="top/bottom of the waiting tasks of its priority, or one place up/down")


class RelinkRequest(_Body):
    """A new URL for a task (core/relink.py): kept bytes when it serves the same file; restart: start over."""

    url: str = Field(pattern=URL_PATTERN, max_length=8192)
    restart: bool = False


class LiveRequest(_Body):
    is_live: bool = Field(alias="isLive")


class LimitRequest(_Body):
    """A speed limit: bytes per second, or a size like "500K" or "2M"; null, 0 or "" for none."""

    speed: str | int | None = Field(default=None, description='bytes/s, or "500K", "2M"; null/0/"": none')


# Bulk status words: the seed's five, and MediaGo core's pending (queued) and ready (created, not started).
BulkStatus = Literal["waiting", "downloading", "success", "failed", "stopped", "pending", "ready"]
START_WORDS = frozenset({"waiting", "downloading", "pending"})
STOP_WORDS = frozenset({"stopped", "ready"})


class StatusRequest(_Body):
    ids: list[TaskId] = Field(min_length=1, max_length=MAX_BATCH)
    status: BulkStatus = Field(description="waiting, pending, downloading: start; stopped, ready: stop; "
                               "failed: stop and mark failed; success: mark a task whose file is complete")


class StartRequest(_Body):
    local_path: str | None = Field(default=None, alias="localPath", max_length=4096)
    delete_segments: bool | None = Field(default=None, alias="deleteSegments")


ListFilter = Literal["waiting", "downloading", "success", "failed", "stopped", "list", "done", "active", ""]


def _optional_param(schema: dict[str, Any]) -> None:
    """A query parameter that may be absent but is never null (query strings have no null)."""
    schema.pop("default", None)


class _Query(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ExportQuery(_Query):
    """Query of GET /api/downloads/export."""

    filter: ListFilter = Field(
        default=None,  # type: ignore[arg-type]  # absent: no filter (None stays out of the schema)
        description="A status, or list (everything not finished successfully), done (= success), "
        "active (waiting + downloading); empty: no filter",
        json_schema_extra=_optional_param,
    )
    local_path: str = Field(  # type: ignore[assignment]
        default=None, alias="localPath", max_length=4096, description="Only tasks saved in this directory",
        json_schema_extra=_optional_param,
    )


class ListQuery(ExportQuery):
    """Query of GET /api/downloads."""

    current: int = Field(default=1, ge=1, le=1_000_000_000, description="Page number, from 1")
    page_size: int = Field(default=20, ge=1, le=10_000, alias="pageSize", description="Tasks per page")


class DeleteQuery(_Query):
    delete_file: bool = Field(default=False, alias="deleteFile",
                              description="Also delete the downloaded file (fetchdeck extension)")


class EventsQuery(_Query):
    last_event_id: int = Field(  # type: ignore[assignment]
        default=None, ge=0, le=MAX_ID, alias="lastEventId",
        description="Replay events after this id (same as the Last-Event-ID header)",
        json_schema_extra=_optional_param,
    )


FILTER_STATUSES: dict[str, frozenset[TaskStatus]] = {
    **{s.value: frozenset({s}) for s in TaskStatus},
    "list": frozenset(TaskStatus) - {TaskStatus.SUCCESS},
    "done": frozenset({TaskStatus.SUCCESS}),
    "active": frozenset({TaskStatus.WAITING, TaskStatus.DOWNLOADING}),
}


# ---------------------------------------------------------------- responses (OpenAPI)


class TaskPageData(BaseModel):
    total: int
    list: list[DownloadTask]


class LogsData(BaseModel):
    id: int
    log: str


class Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    """Success: the payload is in data."""

    success: Literal[True]
    code: Literal[0]
    message: str
    data: T


class ErrorEnvelope(BaseModel):
    """Failure: code is from the documented table (docs/api.md), message says why."""

    success: Literal[False]
    code: int = Field(ge=40000, le=59999)
    message: str
    data: None

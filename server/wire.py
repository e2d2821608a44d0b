"""The native API's wire format: Task ↔ JSON and engine event ↔ SSE JSON, in both directions.

This module is the one place that knows the native (MediaGo) API's field names and how values
are written there (ids, type names, ISO dates, rounding of speed/eta/percent, header lines):

- `encode_task` / `decode_task`: a Task as a DownloadTask object (`GET /api/downloads/:id`...);
  `DownloadTask` is the same shape as a pydantic model, for the OpenAPI document.
- `encode_spec`: a TaskSpec as a create request's task (`POST /api/downloads`).
- `encode_event` / `decode_event`: a typed engine event (core/events.py) as the `data` of its SSE
  message (`GET /api/events`), the event name being its `EventType`.
- `encode_schedule` / `decode_schedule`: the bandwidth schedule's window in force (`GET /api/schedule`).

The server encodes (server/schemas.py, server/sse.py); the TUI's remote client decodes
(tui/remote.py). Pure: it imports core, pydantic and the standard library only, never Quart,
so a client can use it without the server.

Decoding is lenient where the server is not: a missing or malformed field takes its default
(an older or newer server may send less or more), an unknown status reads as waiting, and a
total of 0 reads as unknown (None: nothing to show a size for).
"""

from __future__ import annotations

import calendar
import contextlib
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from core.detect import guess_kind, refine_kind
from core.errors import InvalidInput
from core.events import (
    ConfigChanged,
    EventType,
    Payload,
    TaskChanged,
    TaskDeleted,
    TaskFailed,
    TaskProgress,
    TasksCreated,
    TaskStarted,
    TaskStopped,
    TaskSucceeded,
)
from core.models import Headers, Priority, Task, TaskKind, TaskOptions, TaskSpec, TaskStatus, parse_header_lines
from core.schedule import Mode, ScheduleState

# ---------------------------------------------------------------- type names

# The MediaGo type names. "mediago" means "work it out from the URL".
SPEC_TYPES: dict[str, TaskKind | None] = {
    "m3u8": TaskKind.HLS,
    "bilibili": TaskKind.YTDLP,
    "direct": TaskKind.HTTP,
    "youtube": TaskKind.YTDLP,
    "mediago": None,
}
# MediaGo has no DASH type: its m3u8 type covers DASH manifests (its engine N_m3u8DL-RE downloads both).
DEFAULT_TYPE = {TaskKind.HTTP: "direct", TaskKind.HLS: "m3u8", TaskKind.YTDLP: "youtube", TaskKind.DASH: "m3u8"}
_BILIBILI_HOSTS = ("bilibili.com", "b23.tv")
ApiType = Literal["m3u8", "bilibili", "direct", "youtube", "mediago"]


def _covers(type_kind: TaskKind | None, kind: TaskKind) -> bool:
    """Whether a type name's kind fits a task of `kind` (the m3u8 type also covers DASH)."""
    return type_kind == kind or (type_kind is TaskKind.HLS and kind is TaskKind.DASH)


def api_type_of(task: Task) -> str:
    """The type a client sees: the name it used if that still fits the task's kind."""
    label = task.options.api_type
    if label == "mediago" or (label in SPEC_TYPES and _covers(SPEC_TYPES[label], task.kind)):
        return label
    if task.kind is TaskKind.YTDLP:
        host = (urlsplit(task.url).hostname or "").lower()
        if any(host == h or host.endswith("." + h) for h in _BILIBILI_HOSTS):
            return "bilibili"
    return DEFAULT_TYPE[task.kind]


def kind_of_type(name: object, url: str) -> TaskKind:
    """The kind behind a DownloadTask's `type`; "mediago" (or none): guessed from the URL, as the server did."""
    kind = SPEC_TYPES.get(name) if isinstance(name, str) else None
    return refine_kind(kind, url) if kind is not None else guess_kind(url)


# ---------------------------------------------------------------- values


def iso_time(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_iso_time(value: object) -> float:
    """An `iso_time` text back to a timestamp; 0.0 when it is not one."""
    if isinstance(value, str) and value:
        with contextlib.suppress(ValueError):
            return float(calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ")))
    return 0.0


def headers_text(headers: Headers) -> str:
    return "\n".join(f"{k}: {v}" for k, v in headers)


def _headers(value: object) -> Headers:
    if isinstance(value, str):
        with contextlib.suppress(InvalidInput):
            return parse_header_lines(value)
    return ()


def speed_value(speed: float) -> float:
    return round(speed, 1)


def eta_value(eta: float | None) -> float | None:
    return None if eta is None else round(eta, 1)


def percent_value(percent: float) -> float:
    return round(percent, 2)


def _int(value: object, default: int | None = 0) -> int | None:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str | float):
        with contextlib.suppress(ValueError, OverflowError):
            return int(value)
    return default


def _float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


# ---------------------------------------------------------------- tasks


class DownloadTask(BaseModel):
    """A download task (what `encode_task` writes; the OpenAPI document's schema of it)."""

    model_config = ConfigDict(extra="forbid")  # the document says: these fields and no others

    id: int
    name: str
    type: ApiType
    url: str
    folder: str
    headers: str = Field(description="'Name: value' lines separated by newlines")
    isLive: bool
    status: TaskStatus
    file: str | None = Field(description="Where the file is (or will be) saved")
    createdDate: str = Field(json_schema_extra={"format": "date-time"})
    updatedDate: str = Field(json_schema_extra={"format": "date-time"})
    downloaded: int = Field(description="Bytes downloaded")
    total: int | None = Field(description="Total bytes, if known")
    speed: float = Field(description="Bytes per second")
    eta: float | None = Field(description="Seconds left, if known")
    percent: float
    error: str | None = Field(description="Why the last run failed")
    exists: bool = Field(description="The task finished and its file is on disk (under localPath when "
                         "the list was asked with one)")
    note: str | None = Field(description="While the task runs: why it waits, e.g. "
                             "'retrying in 4 s: connection refused (3/8)'; on a waiting task, why it cannot "
                             "start yet ('waiting for disk space: …', or the bandwidth schedule's "
                             "'scheduled: starts 18:00'); null when it does not")
    node: str | None = Field(description="The fetchdeck node running the task (several nodes may share one "
                             "queue); null when no node runs it")
    kind: TaskKind = Field(description="fetchdeck's own kind of the task (http, hls, dash, ytdlp); `type` is "
                           "its MediaGo name, which has no dash: a DASH task is an m3u8 one there")
    speedLimit: int | None = Field(default=None, description="The task's own speed limit in bytes/s "
                                   "(PUT /api/downloads/:id/limit); null: none")
    # queue control (issue 14)
    priority: Literal["high", "normal", "low"] = Field(
        description="The queue takes high before normal before low, then in queue order (POST .../move)")
    startAt: str | None = Field(json_schema_extra={"format": "date-time"},
                                description="Not started before this time; null: at once")


def encode_task(task: Task, on_disk: str | None = None) -> dict[str, Any]:
    """A DownloadTask as the API documents it. on_disk: where the finished file was found (MediaGo's
    `exists`; shown as `file` when it was found elsewhere than recorded), None if it was not."""
    return {
        "id": task.id,
        "name": task.name,
        "type": api_type_of(task),
        "url": task.url,
        "folder": task.folder,
        "headers": headers_text(task.headers),
        "isLive": task.is_live,
        "status": task.status.value,
        "file": task.file,
        "createdDate": iso_time(task.created_at),
        "updatedDate": iso_time(task.updated_at),
        "downloaded": task.downloaded,
        "total": task.total,
        "speed": speed_value(task.speed),
        "eta": eta_value(task.eta),
        "percent": percent_value(task.percent),
        "error": task.error,
        "exists": on_disk is not None,
        **({"file": on_disk} if on_disk is not None and on_disk != task.file else {}),
        "note": task.note,
        "node": task.node,
        "kind": task.kind.value,
        "speedLimit": task.options.speed_limit,
        "priority": task.priority.value,
        "startAt": iso_time(task.start_at) if task.start_at is not None else None,
    }


def _kind(value: object) -> TaskKind | None:
    """The wire's `kind` (None from a server that sends none, or one this client does not know)."""
    try:
        return TaskKind(value) if isinstance(value, str) else None
    except ValueError:
        return None


def decode_task(data: Mapping[str, Any]) -> Task:
    """A DownloadTask (as `encode_task` writes it) → Task. Raises ValueError without a usable id.

    The options are not on the wire: they are the defaults, with `api_type` the type shown."""
    task_id = _int(data.get("id"), None)
    if task_id is None:
        raise ValueError(f"a task without an id: {data.get('id')!r}")
    try:
        status = TaskStatus(_str(data.get("status")))
    except ValueError:
        status = TaskStatus.WAITING
    url = _str(data.get("url"))
    type_name = data.get("type")
    total = _int(data.get("total"), None)
    return Task(
        id=task_id,
        kind=_kind(data.get("kind")) or kind_of_type(type_name, url),
        url=url,
        name=_str(data.get("name")),
        folder=_str(data.get("folder")),
        headers=_headers(data.get("headers")),
        status=status,
        options=TaskOptions(api_type=type_name if type_name in SPEC_TYPES else None,
                            speed_limit=max(0, _int(data.get("speedLimit"), None) or 0) or None),
        is_live=data.get("isLive") is True,
        file=_text(data.get("file")),
        downloaded=_int(data.get("downloaded")) or 0,
        total=total or None,
        speed=_float(data.get("speed")) or 0.0,
        eta=_float(data.get("eta")),
        error=_text(data.get("error")),
        note=_text(data.get("note")),
        node=_text(data.get("node")),
        created_at=parse_iso_time(data.get("createdDate")),
        updated_at=parse_iso_time(data.get("updatedDate")),
        priority=_priority(data.get("priority")),
        start_at=parse_iso_time(data.get("startAt")) or None,
    )


def _priority(value: object) -> Priority:
    try:
        return Priority(value) if isinstance(value, str) else Priority.NORMAL
    except ValueError:
        return Priority.NORMAL


def encode_spec(spec: TaskSpec) -> dict[str, Any]:
    """A TaskSpec as one task of a create request (`POST /api/downloads`)."""
    item: dict[str, Any] = {"url": spec.url}
    if spec.kind is not None:
        item["type"] = DEFAULT_TYPE[spec.kind]
    if spec.name:
        item["name"] = spec.name
    if spec.folder:
        item["folder"] = spec.folder
    if spec.headers:
        item["headers"] = headers_text(spec.headers)
    if spec.is_live:
        item["isLive"] = True
    if spec.options.checksum:
        item["checksum"] = spec.options.checksum
    if spec.priority is not Priority.NORMAL:
        item["priority"] = spec.priority.value
    if spec.start_at is not None:
        item["startAt"] = iso_time(spec.start_at)
    return item


# ---------------------------------------------------------------- events

# Per-task events whose data is only the task's id.
_ID_ONLY: dict[EventType, type[TaskStarted | TaskSucceeded | TaskStopped | TaskDeleted | TaskChanged]] = {
    cls.type: cls for cls in (TaskStarted, TaskSucceeded, TaskStopped, TaskDeleted, TaskChanged)
}


def encode_event(event: Payload) -> dict[str, Any]:
    """The `data` of an event's SSE message: per-task events carry `id` as a string (the MediaGo
    document says so), `download-create` numeric `ids` and `count`. `config-changed` is written
    here as {key, value} with the engine's key; the MediaGo dialect renames keys (server/sse.py)."""
    if isinstance(event, TaskProgress):
        return {
            "id": str(event.task_id),
            "downloaded": event.downloaded,
            "total": event.total,
            "speed": speed_value(event.speed),
            "eta": eta_value(event.eta),
            "percent": percent_value(event.percent),
            "segmentsDone": event.segments_done,
            "segmentsTotal": event.segments_total,
            "note": event.note,
        }
    if isinstance(event, TasksCreated):
        return {"ids": list(event.ids), "count": len(event.ids)}
    if isinstance(event, TaskFailed):
        return {"id": str(event.task_id), "error": event.error}
    if isinstance(event, ConfigChanged):
        return {"key": event.key, "value": event.value}
    return {"id": str(event.task_id)}


def decode_event(name: str, data: object) -> Payload | None:
    """An SSE message (its event name and parsed JSON data) → the typed event; None for a message
    that is not an engine event (ready, resync, a name this version does not know) or is malformed."""
    try:
        kind = EventType(name)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if kind is EventType.CREATE:
        ids = data.get("ids")
        if not isinstance(ids, list):
            return None
        return TasksCreated(tuple(i for i in (_int(raw, None) for raw in ids) if i is not None))
    if kind is EventType.CONFIG:
        key = data.get("key")
        return ConfigChanged(key, data.get("value")) if isinstance(key, str) else None
    task_id = _int(data.get("id"), None)
    if task_id is None:
        return None
    if kind is EventType.PROGRESS:
        downloaded = _int(data.get("downloaded")) or 0
        return TaskProgress(
            task_id=task_id, downloaded=downloaded, total=_int(data.get("total"), None),
            speed=_float(data.get("speed")) or 0.0, eta=_float(data.get("eta")),
            percent=_float(data.get("percent")) or 0.0,
            segments_done=_int(data.get("segmentsDone")) or 0, segments_total=_int(data.get("segmentsTotal")) or 0,
            note=_text(data.get("note")),
        )
    if kind is EventType.FAILED:
        return TaskFailed(task_id, _text(data.get("error")) or "")
    return _ID_ONLY[kind](task_id)


# ---------------------------------------------------------------- bandwidth (core/ratelimit.py, core/schedule.py)


class ScheduleStatus(BaseModel):
    """The bandwidth schedule window in force on the node answering, and its global speed limit."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["normal", "speed", "paused"] = Field(
        description="normal: outside every window (or a cap-only window); speed: a speed window sets the "
                    "global limit; paused: a pause window, or a window whose data cap was reached")
    text: str = Field(description="What the TUI's status line shows, e.g. 'paused until 18:00', "
                                  "'2M/s until 18:00'; empty outside every window")
    until: str | None = Field(description="When the window in force ends (local time, ISO 8601); null: none")
    window: str = Field(description="The window in force as configured, e.g. 'mon-fri 08:00-18:00'")
    speed: int | None = Field(description="mode speed: the window's global limit in bytes/s (null: unlimited)")
    cap: int | None = Field(description="The window's data cap in bytes; null: none")
    used: int = Field(description="Bytes downloaded on this node during the window (counted for the cap)")
    capped: bool = Field(description="Paused because the data cap was reached")
    speedLimit: int | None = Field(description="The global speed limit in force now, in bytes/s (null: unlimited)")


def encode_schedule(state: ScheduleState, global_rate: int | None) -> dict[str, Any]:
    return {
        "mode": state.mode.value,
        "text": state.describe(),
        "until": state.until.isoformat(timespec="minutes") if state.until is not None else None,
        "window": state.window,
        "speed": state.speed,
        "cap": state.cap,
        "used": state.used,
        "capped": state.capped,
        "speedLimit": global_rate,
    }


def decode_schedule(data: Mapping[str, Any]) -> ScheduleState:
    """A ScheduleStatus (as `encode_schedule` writes it) → the state; unknown or malformed fields: defaults."""
    try:
        mode = Mode(_str(data.get("mode")))
    except ValueError:
        mode = Mode.NORMAL
    until = None
    with contextlib.suppress(ValueError):
        until = datetime.fromisoformat(_str(data.get("until"))) if data.get("until") else None
    return ScheduleState(
        mode=mode, speed=_int(data.get("speed"), None), until=until, window=_str(data.get("window")),
        cap=_int(data.get("cap"), None), used=_int(data.get("used")) or 0, capped=data.get("capped") is True,
    )

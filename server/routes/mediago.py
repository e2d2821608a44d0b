"""MediaGo core's own routes, beside its Download API (server/routes/native.py), on the main listener.

What MediaGo's SDK (`@mediago/core-sdk`), its web UI's progress polling, its
Electron app, its browser extension and its AI skill call besides
`/api/downloads*`. Shapes from MediaGo core (apps/core/internal/api): the
envelope of the native API, and

- `GET /healthy` → `{status: "ok"}` (needs no token: the extension's badge, the SDK's health()).
- `/api/tasks*`: MediaGo's download queue. A queue task is a fetchdeck task:
  `{id: "12", type, url, name, status, percent, speed: "1.2MB/s", isLive, error?}`,
  ids are the engine's as strings, status is the queue's word (pending, downloading,
  success, failed, stopped). The list holds what the queue would: every waiting or
  downloading task and every task that ran since this server started.
- `/api/config*`: MediaGo's settings as fetchdeck has them (`local` is the download dir,
  `maxRunner` the number of downloads at once); see config_view() and set_setting().
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel
from quart import Blueprint, Response
from quart_schema import document_request

from core.config import check_value, describe
from core.engine import Engine
from core.errors import InvalidInput, TaskNotFound
from core.events import ConfigChanged
from core.models import Task, TaskOptions, TaskSpec, TaskStatus
from core.store import MAX_FILTER_IDS, TaskFilter
from server.bodies import parse_body
from server.compat import parse_id
from server.errors import ApiError, ErrorCode
from server.respond import ok
from server.routes.native import checked_headers, documented, field_errors, field_name, no_nul_folder
from server.schemas import (
    ACCEPTED_TYPES,
    Envelope,
    InputType,
    api_type_of,
    canonical_type,
    iso_time,
)
from server.state import server_state

mediago = Blueprint("mediago", __name__)

QUEUE_STATUS = {
    TaskStatus.WAITING: "pending",
    TaskStatus.DOWNLOADING: "downloading",
    TaskStatus.SUCCESS: "success",
    TaskStatus.FAILED: "failed",
    TaskStatus.STOPPED: "stopped",
}


def engine() -> Engine:
    return server_state().engine


# ------------------------------------------------------------------ shapes (OpenAPI)


class HealthData(BaseModel):
    status: str


class QueueTask(BaseModel):
    """A MediaGo queue task (core.TaskInfo)."""

    id: str
    type: str
    url: str
    name: str
    status: str = Field(description="pending, downloading, success, failed or stopped")
    percent: float
    speed: str = Field(description="e.g. 1.2MB/s")
    isLive: bool
    downloaded: int
    total: int | None
    error: str | None = Field(default=None, description="Only when the task failed")


class QueueList(BaseModel):
    tasks: list[QueueTask]
    total: int


class Enqueued(BaseModel):
    id: str
    message: str
    status: str = Field(description="pending or downloading")


class Message(BaseModel):
    message: str


class QueueLogs(BaseModel):
    id: str
    log: str


# ------------------------------------------------------------------ health


@mediago.get("/healthy")
@documented(Envelope[HealthData])
async def healthy() -> Response:
    """MediaGo's liveness check: any 2xx is "connected" to its extension and SDK."""
    return ok({"status": "ok"})


# ------------------------------------------------------------------ queue tasks


def speed_text(bytes_per_second: float) -> str:
    value = float(bytes_per_second)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f}{unit}/s" if unit == "B" else f"{value:.1f}{unit}/s"
        value /= 1024
    return f"{value:.1f}GB/s"  # pragma: no cover


def queue_task(task: Task) -> dict[str, Any]:
    """A MediaGo queue task (core.TaskInfo), with fetchdeck's byte counts beside it."""
    body: dict[str, Any] = {
        "id": str(task.id),
        "type": api_type_of(task),
        "url": task.url,
        "name": task.name,
        "status": QUEUE_STATUS[task.status],
        "percent": round(task.percent, 2),
        "speed": speed_text(task.speed if task.status is TaskStatus.DOWNLOADING else 0),
        "isLive": task.is_live,
        "downloaded": task.downloaded,
        "total": task.total,
    }
    if task.error:
        body["error"] = task.error
    return body


class CreateTaskBody(BaseModel):
    """POST /api/tasks: the SDK's createTask. `headers` is a JSON array of 'Name: value' strings
    (the other shapes of server/schemas.parse_mediago_headers are taken too)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    id: str | None = Field(default=None, max_length=200)
    type: InputType | None = None
    url: str = Field(max_length=8192)
    name: str | None = Field(default=None, max_length=1024)
    folder: str | None = Field(default=None, max_length=4096)
    headers: list[str] | str | None = None


async def session_tasks(eng: Engine) -> list[Task]:
    """What MediaGo's in-memory queue would hold: active tasks, and those that ran since the server started
    (read in one query per MAX_FILTER_IDS of them: the web UI polls this every second)."""
    active = await eng.active()
    seen = {t.id for t in active}
    ran = sorted(set(server_state().services.started_at) - seen)
    out = list(active)
    for start in range(0, len(ran), MAX_FILTER_IDS):
        chunk = frozenset(ran[start:start + MAX_FILTER_IDS])
        out.extend((await eng.list_tasks(1, len(chunk), TaskFilter(ids=chunk, newest_first=False))).items)
    return out


async def find_task(raw: str) -> Task:
    """A queue task by its id: the engine's id as a string, or the id a client chose at creation."""
    eng = engine()
    task_id = parse_id(raw)
    if task_id is not None:
        try:
            return await eng.get(task_id)
        except TaskNotFound:
            pass
    for task in await session_tasks(eng):
        if task.options.client_id == raw:
            return task
    raise ApiError(404, ErrorCode.TASK_NOT_FOUND, f"task not found: {raw[:100]!r}")


@mediago.post("/api/tasks")
@document_request(CreateTaskBody)
@documented(Envelope[Enqueued], 413)
async def create_task() -> Response:
    """Enqueue one download (it starts when a slot is free) → `{id, message, status}`."""
    body = await parse_body(CreateTaskBody)
    client_id = body.id if body.id and parse_id(body.id) is None else None  # an engine-like id is not kept
    spec = TaskSpec(
        url=body.url,
        kind=ACCEPTED_TYPES[body.type] if body.type else None, name=body.name,
        folder=no_nul_folder(body.folder, "folder"), headers=checked_headers(body.headers, "headers") or (),
        options=TaskOptions(api_type=canonical_type(body.type) if body.type else None, client_id=client_id),
    )
    with field_errors(field_name):
        (task,) = await engine().create([spec], start=True)
    return ok({"id": client_id or str(task.id), "message": "Task enqueued successfully",
               "status": QUEUE_STATUS[task.status]})


@mediago.get("/api/tasks")
@documented(Envelope[QueueList])
async def list_queue() -> Response:
    """`{tasks, total}`: waiting and downloading tasks, and those that ran since the server started."""
    tasks = [queue_task(t) for t in await session_tasks(engine())]
    return ok({"tasks": tasks, "total": len(tasks)})


@mediago.get("/api/tasks/<task_id>")
@documented(Envelope[QueueTask], 404)
async def get_queue_task(task_id: str) -> Response:
    return ok(queue_task(await find_task(task_id)))


@mediago.post("/api/tasks/<task_id>/stop")
@documented(Envelope[Message], 404, 409)
async def stop_queue_task(task_id: str) -> Response:
    """Stop a waiting or downloading task (resumable); 409 when it has finished."""
    task = await find_task(task_id)
    await engine().stop(task.id)
    return ok({"message": "Task stopped"})


@mediago.get("/api/tasks/<task_id>/logs")
@documented(Envelope[QueueLogs], 404)
async def queue_task_logs(task_id: str) -> Response:
    task = await find_task(task_id)
    lines = await engine().logs(task.id)
    return ok({"id": task_id, "log": "\n".join(f"{iso_time(line.ts)} {line.text}" for line in lines)})


# ------------------------------------------------------------------ config

# MediaGo settings fetchdeck has no use for, with MediaGo's defaults: shown so its UI finds them,
# and kept (for this run) when a client sets them. Never its apiKey or passwordHash.
UI_DEFAULTS: dict[str, Any] = {
    "promptTone": True, "openInNewWindow": False, "blockAds": True, "theme": "system", "useExtension": False,
    "isMobile": False, "language": "system", "showTerminal": False, "privacy": False,
    "downloadProxySwitch": False, "autoUpgrade": False, "allowBeta": False, "closeMainWindow": False,
    "audioMuted": True, "enableDocker": False, "dockerUrl": "", "enableMobilePlayer": False,
}
# MediaGo's names for fetchdeck's settings (for config-changed events from the engine, e.g. the TUI).
MEDIAGO_KEYS = {"download.max_concurrent": "maxRunner", "download.proxy": "proxy"}
READ_ONLY = {
    "local": "the download dir is [download] dir in config.toml (localPath on a start picks another root)",
    "proxy": "set [download] proxy in config.toml", "useProxy": "set [download] proxy in config.toml",
    "deleteSegments": "it is per task: POST /api/downloads/:id/start with deleteSegments",
    "apiKey": "the token is server.token in config.toml", "passwordHash": "fetchdeck has no password",
}
MAX_UI_SETTINGS = 256


def config_view() -> dict[str, Any]:
    state = server_state()
    download = state.config.download
    return {
        **UI_DEFAULTS,
        **state.services.mediago_settings,
        "local": str(state.engine.download_root),
        "maxRunner": download.max_concurrent,
        "proxy": download.proxy,
        "useProxy": bool(download.proxy),
        "deleteSegments": True,
    }


def check_setting(key: str, value: Any) -> None:
    """400 unless `set_setting(key, value)` would be taken."""
    if key in READ_ONLY:
        raise ApiError(400, ErrorCode.VALIDATION_FAILED, f"{key} cannot be set over the API: {READ_ONLY[key]}")
    if key == "maxRunner":
        rule = f"maxRunner must be {describe('download', 'max_concurrent')}"  # the range is the config model's
        if not isinstance(value, int) or isinstance(value, bool):  # a JSON number, not "4" or 4.0
            raise ApiError(400, ErrorCode.VALIDATION_FAILED, rule)
        try:
            check_value("download", "max_concurrent", value)
        except InvalidInput:
            raise ApiError(400, ErrorCode.VALIDATION_FAILED, rule) from None
        return
    if not key or len(key) > 100 or not key.replace(".", "").replace("_", "").isalnum():
        raise ApiError(400, ErrorCode.VALIDATION_FAILED, f"{key[:100]!r} is not a setting name")
    settings = server_state().services.mediago_settings
    if len(settings) >= MAX_UI_SETTINGS and key not in settings:
        raise ApiError(400, ErrorCode.VALIDATION_FAILED, f"at most {MAX_UI_SETTINGS} settings are kept")


def set_setting(key: str, value: Any) -> None:
    """Apply one checked MediaGo setting: maxRunner changes how many downloads run at once (until
    restart); MediaGo's UI settings are kept for this run; each change is a config-changed event."""
    if key == "maxRunner":
        engine().set_max_concurrent(value)  # announces download.max_concurrent → config-changed maxRunner
        return
    server_state().services.mediago_settings[key] = value
    engine().announce_config(f"mediago.{key}", value)


class _ConfigPatch(RootModel[dict[str, Any]]):
    pass


class _ConfigValue(BaseModel):
    model_config = ConfigDict(extra="ignore")

    value: Any = None


@mediago.get("/api/config")
@documented(Envelope[dict[str, Any]])
async def get_config() -> Response:
    return ok(config_view())


@mediago.post("/api/config")
@document_request(_ConfigPatch)
@documented(Envelope[Message], 413)
async def update_config() -> Response:
    """A partial update `{key: value, ...}`; every key is checked before any is applied."""
    patch = (await parse_body(_ConfigPatch)).root
    for key, value in patch.items():
        check_setting(key, value)
    for key, value in patch.items():
        set_setting(key, value)
    return ok({"message": "Config updated"})


@mediago.get("/api/config/<key>")
@documented(Envelope[Any])
async def get_config_key(key: str) -> Response:
    """One setting's value (null when there is no such setting)."""
    return ok(config_view().get(key))


@mediago.put("/api/config/<key>")
@document_request(_ConfigValue)
@documented(Envelope[Message], 413)
async def set_config_key(key: str) -> Response:
    body = await parse_body(_ConfigValue)
    check_setting(key, body.value)
    set_setting(key, body.value)
    return ok({"message": f"Config key '{key}' updated"})


def mediago_config_event(event: ConfigChanged) -> dict[str, Any] | None:
    """The `config-changed` payload MediaGo clients get for an engine config event, or None (not theirs)."""
    key, value = event.key, event.value
    if key.startswith("mediago."):
        return {"key": key[len("mediago."):], "value": value}
    name = MEDIAGO_KEYS.get(key)
    return {"key": name, "value": value} if name else None


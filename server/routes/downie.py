"""The Downie Enhanced API (shared/seeds/downie-enhanced-api.zh.txt), base `/api`, as the real
Downie Enhanced backend answers it: its browser extension and its SimpleApp page work unchanged
(docs/api.md, "Downie", lists every difference and why).

Video tasks run through the yt-dlp downloader (quality, post_processing,
cookies, custom_filename). `add` creates a task without starting it;
`start/{id}` queues it (fetchdeck queues past the concurrency limit where the
real server answers 400). Statuses: pending (never started, or queued),
downloading, completed, failed, cancelled (stopped after it had started).
`post_processing: "permute"` is accepted and does nothing, as in the real server.
Errors are `{detail, error_code, timestamp}`: the real server sends `{detail}`
only, and its clients read nothing but `response.ok`.
WebSocket `/api/downloads/ws`: `initial` on connect, `progress` per task change,
`pong` for a `ping`, `heartbeat` when the client has said nothing for a while.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, RootModel, ValidationError
from quart import Blueprint, Response, request, websocket
from quart_schema import hide

from core.engine import Engine
from core.errors import DownloadError, IllegalTransition, InvalidField, InvalidInput, UnsupportedUrl
from core.events import TaskDeleted, TaskEvent
from core.models import Task, TaskKind, TaskOptions, TaskSpec, TaskStatus
from server.compat import all_tasks, dumps, iso_z, parse_id
from server.downie_shapes import analysis_json, downie_status, progress_json, task_json, video_info_json
from server.errors import CompatError, ErrorCode
from server.state import server_state

if TYPE_CHECKING:
    from core.downloaders.ytdlp import MediaInfo

downie = Blueprint("downie", __name__, url_prefix="/api")
VERSION = "1.0.0"
QUALITIES = ["auto", "best", "1080p", "720p", "480p", "360p", "worst"]
POST_PROCESSING = ["none", "audio", "mp4", "permute"]
_ROOT_PATHS = frozenset({"/api/health", "/api/stats", "/api/analyze", "/api/supported-sites"})
_SECTIONS = frozenset({"extract", "supported-sites", "add", "start", "tasks", "cancel", "batch", "stats", "cleanup",
                       "qualities", "ws"})


def is_downie_path(path: str) -> bool:
    if path in _ROOT_PATHS:
        return True
    if not path.startswith("/api/downloads/"):
        return False
    return path[len("/api/downloads/"):].split("/", 1)[0] in _SECTIONS


_CODES = {
    ErrorCode.TASK_NOT_FOUND: "TASK_NOT_FOUND",
    ErrorCode.INVALID_URL: "INVALID_URL",
    ErrorCode.UNAUTHORIZED: "UNAUTHORIZED",
    ErrorCode.FORBIDDEN_HOST: "FORBIDDEN",
    ErrorCode.FORBIDDEN_ORIGIN: "FORBIDDEN",
    ErrorCode.ROUTE_NOT_FOUND: "NOT_FOUND",
    ErrorCode.METHOD_NOT_ALLOWED: "METHOD_NOT_ALLOWED",
    ErrorCode.PAYLOAD_TOO_LARGE: "PAYLOAD_TOO_LARGE",
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
    ErrorCode.ILLEGAL_TRANSITION: "INVALID_STATE",
    ErrorCode.INTERNAL_ERROR: "INTERNAL_ERROR",
}


def render_error(status: int, code: ErrorCode, dialect_code: str | None, message: str,
                 headers: dict[str, str]) -> Response:
    if dialect_code is None:
        if code in (ErrorCode.VALIDATION_FAILED, ErrorCode.MALFORMED_JSON, ErrorCode.BAD_REQUEST):
            status, dialect_code = 422, "VALIDATION_ERROR"
        else:
            dialect_code = _CODES.get(code, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
    body = {"detail": message, "error_code": dialect_code, "timestamp": iso_z(time.time())}
    return Response(dumps(body), status=status, content_type="application/json", headers=headers)


def fail(status: int, code: str, detail: str) -> CompatError:
    return CompatError(status, code, detail)


def engine() -> Engine:
    return server_state().engine


def reply(data: Any, status: int = 200) -> Response:
    return Response(dumps(data), status=status, content_type="application/json")


# ------------------------------------------------------------------ bodies


class VideoBody(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    url: str
    quality: Literal["auto", "best", "1080p", "720p", "480p", "360p", "worst"] = "best"
    post_processing: Literal["none", "audio", "mp4", "permute"] = "none"  # permute: accepted, does nothing
    cookies: str = ""
    custom_filename: str | None = None


class AnalyzeBody(BaseModel):
    """POST /api/analyze; like the real server, only `url` is used."""

    model_config = ConfigDict(extra="ignore", strict=True)

    url: str
    extract_playlist: bool = False
    quality_preference: str = "best"


class _BatchAdd(RootModel[list[Any]]):
    pass


class _IdList(RootModel[list[str]]):
    pass


def _validation(exc: ValidationError) -> CompatError:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return fail(422, "VALIDATION_ERROR", f"{where}: {first.get('msg', 'invalid value')}")


async def body_json(model: Any) -> Any:
    raw = await request.get_data(cache=False)
    try:
        return model.model_validate_json(raw or b"")
    except ValidationError as exc:
        raise _validation(exc) from None


def spec_from(body: VideoBody) -> TaskSpec:
    options = TaskOptions(
        api_type="youtube", quality=None if body.quality == "auto" else body.quality,
        postprocess="none" if body.post_processing == "permute" else body.post_processing,
        cookies=body.cookies or None,
    )
    return TaskSpec(url=body.url, kind=TaskKind.YTDLP, name=body.custom_filename or None, options=options)


async def create(specs: list[TaskSpec]) -> list[Task]:
    """Create through the engine, which applies every rule once: a bad URL is Downie's 400 INVALID_URL."""
    try:
        return await engine().create(specs, start=False)
    except InvalidInput as exc:
        raise invalid(exc) from None


def invalid(exc: InvalidInput) -> CompatError:
    """The engine's refusal in Downie's terms: its URL rule is 400 INVALID_URL, any other 422."""
    if isinstance(exc, InvalidField) and exc.field == "url":
        return fail(400, "INVALID_URL", str(exc))
    return fail(422, "VALIDATION_ERROR", str(exc))


def started() -> dict[int, float]:
    """When each task was last started in this run (the engine keeps no start time)."""
    return server_state().services.started_at


async def get_task(raw: str) -> Task:
    task_id = parse_id(raw)
    if task_id is None:
        raise fail(404, "TASK_NOT_FOUND", f"no task with id {raw!r}")
    try:
        return await engine().get(task_id)
    except LookupError:
        raise fail(404, "TASK_NOT_FOUND", f"no task with id {raw!r}") from None


async def start_task(task: Task) -> None:
    if task.status in (TaskStatus.WAITING, TaskStatus.DOWNLOADING):
        raise fail(409, "TASK_ALREADY_RUNNING", f"task {task.id} is already {downie_status(task, started())}")
    try:
        await engine().start(task.id)
    except IllegalTransition as exc:
        raise fail(409, "TASK_ALREADY_RUNNING", str(exc)) from None
    except Exception as exc:
        raise fail(500, "DOWNLOAD_FAILED", f"could not start task {task.id}: {exc}") from exc


# ------------------------------------------------------------------ info


async def media_info(url: str, *, quality: str | None = None, cookies: str | None = None,
                     failed: str = "EXTRACTION_FAILED", prefix: str = "") -> MediaInfo:
    try:
        return await engine().extract(url, quality=quality, cookies=cookies)
    except UnsupportedUrl as exc:
        raise fail(400, "UNSUPPORTED_SITE", str(exc)) from None
    except InvalidInput as exc:
        raise invalid(exc) from None
    except DownloadError as exc:
        raise fail(500, failed, f"{prefix}{exc}") from None


@downie.post("/downloads/extract")
@hide
async def extract() -> Response:
    body: VideoBody = await body_json(VideoBody)
    info = await media_info(body.url, quality=None if body.quality == "auto" else body.quality,
                            cookies=body.cookies or None)
    return reply(video_info_json(info, body.url.strip()))


@downie.post("/analyze")
@hide
async def analyze() -> Response:
    """The real server's main.py route: extract's information in another shape."""
    body: AnalyzeBody = await body_json(AnalyzeBody)
    info = await media_info(body.url, failed="ANALYSIS_FAILED", prefix="Analysis failed: ")
    return reply(analysis_json(info))


@downie.get("/supported-sites")
@hide
async def root_supported_sites() -> Response:
    domains = await engine().supported_domains()
    return reply({"sites": domains, "total": len(domains)})


@downie.get("/downloads/supported-sites")
@hide
async def supported_sites() -> Response:
    domains = await engine().supported_domains()
    return reply({"supported_sites": domains, "total_sites": len(domains)})


@downie.get("/downloads/qualities")
@hide
async def qualities() -> Response:
    return reply({"qualities": QUALITIES, "post_processing": POST_PROCESSING})


@downie.get("/health")
@hide
async def health() -> Response:
    return reply({"status": "healthy", "message": "fetchdeck (Downie Enhanced API) is running", "version": VERSION})


@downie.get("/stats")
@hide
async def stats() -> Response:
    eng = engine()
    counts = await eng.stats()
    domains = await eng.supported_domains()
    return reply({"active_downloads": counts.downloading, "total_downloads": counts.total,
                  "supported_sites": len(domains)})


# ------------------------------------------------------------------ tasks


@downie.post("/downloads/add")
@hide
async def add() -> Response:
    body: VideoBody = await body_json(VideoBody)
    (task,) = await create([spec_from(body)])
    return reply({"task_id": str(task.id), "message": "Download task created successfully", "status": "created"})


async def _root_body(model: Any) -> Any:
    """A JSON array body validated by a pydantic RootModel; Downie's 422 when it does not fit."""
    raw = await request.get_data(cache=False)
    try:
        return model.model_validate_json(raw or b"").root
    except ValidationError as exc:
        raise _validation(exc) from None


@downie.post("/downloads/batch/add")
@hide
async def batch_add() -> Response:
    items = await _root_body(_BatchAdd)
    results = []
    for item in items:
        url = str(item.get("url", "")) if isinstance(item, dict) else ""
        try:
            body = VideoBody.model_validate(item)
            (task,) = await create([spec_from(body)])
            results.append({"task_id": str(task.id), "url": body.url, "status": "created"})
        except ValidationError as exc:  # the real server refuses the whole array (422); fetchdeck this item
            results.append({"url": url, "status": "error", "error": _validation(exc).message})
        except CompatError as exc:
            results.append({"url": url, "status": "error", "error": exc.message})
    return reply({"results": results})


@downie.post("/downloads/batch/start")
@hide
async def batch_start() -> Response:
    ids = await _root_body(_IdList)
    results = []
    for raw_id in ids:
        try:
            await start_task(await get_task(raw_id))
            results.append({"task_id": raw_id, "status": "started"})
        except CompatError as exc:
            results.append({"task_id": raw_id, "status": "failed", "error_code": exc.dialect_code,
                            "error": exc.message})
    return reply({"results": results})


@downie.post("/downloads/start/<task_id>")
@hide
async def start(task_id: str) -> Response:
    await start_task(await get_task(task_id))
    return reply({"message": "Download started", "task_id": task_id})


@downie.post("/downloads/cancel/<task_id>")
@hide
async def cancel(task_id: str) -> Response:
    task = await get_task(task_id)
    try:
        await engine().stop(task.id)
    except IllegalTransition as exc:
        raise fail(409, "TASK_NOT_RUNNING", str(exc)) from None
    return reply({"message": "Download cancelled", "task_id": task_id})


@downie.get("/downloads/tasks/active")
@hide
async def active_tasks() -> Response:
    return reply([task_json(t, started()) for t in await engine().active() if t.status is TaskStatus.DOWNLOADING])


@downie.get("/downloads/tasks/<task_id>")
@hide
async def one_task(task_id: str) -> Response:
    return reply(task_json(await get_task(task_id), started()))


@downie.delete("/downloads/tasks/<task_id>")
@hide
async def delete_task(task_id: str) -> Response:
    task = await get_task(task_id)
    await engine().delete(task.id)
    return reply({"message": "Task deleted", "task_id": task_id})


class _ListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = 50
    offset: int = 0
    status: Literal["pending", "downloading", "completed", "failed", "cancelled"] | None = None


@downie.get("/downloads/tasks")
@hide
async def list_tasks() -> Response:
    try:
        query = _ListQuery.model_validate(dict(request.args))
    except ValidationError as exc:
        raise _validation(exc) from None
    if query.limit < 0 or query.offset < 0:
        raise fail(422, "VALIDATION_ERROR", "limit and offset must be ≥ 0")
    items = [task_json(t, started()) for t in await all_tasks(engine())]
    if query.status:
        items = [t for t in items if t["status"] == query.status]
    return reply(items[query.offset: query.offset + query.limit])


@downie.get("/downloads/stats")
@hide
async def download_stats() -> Response:
    tasks = await all_tasks(engine())
    statuses = [downie_status(t, started()) for t in tasks]
    return reply({
        "total_tasks": len(tasks),
        "active_tasks": statuses.count("downloading"),
        "completed_tasks": statuses.count("completed"),
        "failed_tasks": statuses.count("failed"),
        "pending_tasks": statuses.count("pending"),
        "total_downloaded_bytes": sum(t.downloaded for t in tasks),
        "current_speed": round(sum(t.speed for t in tasks if t.status is TaskStatus.DOWNLOADING)),
    })


@downie.post("/downloads/cleanup")
@hide
async def cleanup() -> Response:
    raw = request.args.get("max_age_hours", "24")
    try:
        hours = float(raw)
        if hours < 0 or not math.isfinite(hours):  # "nan", "inf", "1e400"
            raise ValueError(raw)
    except ValueError:
        raise fail(422, "VALIDATION_ERROR", f"max_age_hours: {raw!r} is not a number of hours ≥ 0") from None
    cutoff = time.time() - hours * 3600
    removed = 0
    for task in await all_tasks(engine()):
        if downie_status(task, started()) in ("completed", "failed", "cancelled") and task.updated_at <= cutoff:
            await engine().delete(task.id)
            removed += 1
    shown = int(hours) if hours == int(hours) else hours
    return reply({"message": f"Cleaned up tasks older than {shown} hours", "removed": removed})


# ------------------------------------------------------------------ websocket


@downie.websocket("/downloads/ws")
async def progress_ws() -> None:
    """initial (all tasks) on connect, progress per task change, pong for a ping; heartbeat when the
    client has sent nothing for `heartbeat` seconds (the real server's receive timeout, 30 s there)."""
    await websocket.accept()
    eng = engine()
    sub = eng.subscribe()
    idle = server_state().streams.heartbeat
    sending = asyncio.Lock()

    async def send(frame: dict[str, Any]) -> None:
        async with sending:
            await websocket.send(dumps(frame))

    async def push_progress() -> None:
        while (event := await sub.get()) is not None:
            payload = event.payload
            if not isinstance(payload, TaskEvent) or isinstance(payload, TaskDeleted):
                continue
            try:
                task = await eng.get(payload.task_id)
            except LookupError:
                continue
            await send({"type": "progress", "task_id": str(task.id), "progress": progress_json(task, started())})

    pusher: asyncio.Task[None] | None = None
    try:
        await send({"type": "initial", "tasks": [task_json(t, started()) for t in await all_tasks(eng)]})
        pusher = asyncio.create_task(push_progress())
        pusher.add_done_callback(lambda t: t.cancelled() or t.exception())  # a failed send ends the loop below
        while not pusher.done():
            try:
                text = await asyncio.wait_for(websocket.receive(), idle)
            except TimeoutError:
                await send({"type": "heartbeat"})
                continue
            try:
                message = json.loads(text)
            except (ValueError, TypeError):
                continue  # the real server ignores frames it cannot read
            if isinstance(message, dict) and message.get("type") == "ping":
                await send({"type": "pong"})
    finally:
        sub.close()
        if pusher is not None:
            pusher.cancel()


# What server/app.py registers for this dialect.
blueprint = downie
owns_path = is_downie_path

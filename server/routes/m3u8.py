"""The m3u8 task API (shared/seeds/m3u8-task-api.zh.txt): `/api/tasks` and `/ws/progress`.

Every task is an HLS task in the one engine; ids are the engine's, as strings.
Errors are plain text (`text/plain`), like Go's http.Error: 400 parse errors
and a missing id, 404 unknown id, 405 wrong method, 500 store failures.
`advanced: true` turns the advanced fields on; each maps onto a TaskOptions
field the HLS downloader honours.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from quart import Blueprint, Response, request, websocket
from quart_schema import hide

from core.engine import Engine
from core.errors import IllegalTransition, InvalidInput, TaskNotFound
from core.models import Task, TaskKind, TaskOptions, TaskSpec, TaskStatus
from core.validation import has_control_chars, is_header_name
from server.compat import all_tasks, dumps, human_bytes, iso_z, parse_id
from server.errors import CompatError, ErrorCode
from server.state import server_state

log = logging.getLogger("fetchdeck.server")
m3u8 = Blueprint("m3u8", __name__)
PUSH_INTERVAL = 0.1
KEEPALIVE_INTERVAL = 5.0

STATUS_TEXT = {
    TaskStatus.WAITING: "等待中",
    TaskStatus.DOWNLOADING: "下载中",
    TaskStatus.STOPPED: "已暂停",
    TaskStatus.SUCCESS: "已完成",
    TaskStatus.FAILED: "失败",
}


def is_m3u8_path(path: str) -> bool:
    return path == "/api/tasks" or path.startswith("/api/tasks/") or path == "/ws/progress"


def render_error(status: int, code: ErrorCode, dialect_code: str | None, message: str,
                 headers: dict[str, str]) -> Response:
    if dialect_code is None:
        message = {
            ErrorCode.TASK_NOT_FOUND: "任务不存在",
            ErrorCode.METHOD_NOT_ALLOWED: "Method Not Allowed",
            ErrorCode.ROUTE_NOT_FOUND: "404 page not found",
            ErrorCode.INTERNAL_ERROR: "服务器内部错误",
            ErrorCode.MALFORMED_JSON: "解析请求失败",
        }.get(code, message)
    response = Response(message + "\n", status=status, content_type="text/plain; charset=utf-8", headers=headers)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response




def fail(status: int, message: str) -> CompatError:
    return CompatError(status, "m3u8", message)


def engine() -> Engine:
    return server_state().engine


# ------------------------------------------------------------------ bodies


def integral(value: Any) -> Any:
    """4.0 is the integer 4 in JSON (and JSON Schema); 4.5, "4" and true stay type errors."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Integer = Annotated[int, BeforeValidator(integral)]


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    url: str
    filename: str
    use_http_headers: bool = False
    http_headers: dict[str, list[str]] = Field(default_factory=dict)
    advanced: bool = False
    save_location: str = ""
    # The new-download page sends null when its threads box is empty (parseInt → NaN → null): the default.
    download_threads: Integer | None = Field(default=None, ge=0, le=64)
    skip_ts_info: str = ""
    keep_ts_files: bool = False
    no_merge_ts: bool = False
    log_skipped_ts: bool = False
    allow_insecure_https: bool = False
    proxy_type: str = ""
    proxy_host: str = ""
    proxy_port: Integer | None = Field(default=None, ge=0, le=65535)
    proxy_username: str = ""
    proxy_password: str = ""
    use_server_file_time: bool = False
    debug_log: bool = False


class StatusBody(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    status: str


async def parse(model: type[BaseModel]) -> Any:
    raw = await request.get_data(cache=False)
    try:
        return model.model_validate_json(raw or b"")
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise fail(400, f"解析请求失败: {where}: {first.get('msg', '')}") from None


def proxy_url(body: CreateBody) -> str | None:
    """The proxy as a URL; none without a host or with m3u8dweb's proxy_type "none" (its form's default)."""
    if not body.proxy_host.strip() or body.proxy_type.strip().lower() == "none":
        return None
    scheme = (body.proxy_type or "http").strip().lower()
    auth = ""
    if body.proxy_username:
        auth = quote(body.proxy_username, safe="") + (":" + quote(body.proxy_password, safe="") if body.proxy_password
                                                      else "") + "@"
    port = f":{body.proxy_port}" if body.proxy_port else ""
    return f"{scheme}://{auth}{body.proxy_host.strip()}{port}"


def spec_from(body: CreateBody) -> TaskSpec:
    """The task to create; the URL and proxy rules are the engine's (its InvalidInput → 解析请求失败)."""
    if not body.filename.strip():
        raise fail(400, "解析请求失败: filename 不能为空")
    headers: list[tuple[str, str]] = []
    if body.use_http_headers:
        for key, values in body.http_headers.items():
            if not is_header_name(key):
                raise fail(400, f"解析请求失败: 无效的HTTP头 {key[:100]!r}")
            for value in values:
                if has_control_chars(value, allowed="\t"):
                    raise fail(400, f"解析请求失败: 无效的HTTP头 {key!r} 的值: control characters")
                headers.append((key, value))
    options: dict[str, Any] = {"api_type": "m3u8"}
    folder = None
    if body.advanced:
        proxy = proxy_url(body)
        options.update(
            segment_threads=body.download_threads or None, skip=body.skip_ts_info or None,
            keep_segments=body.keep_ts_files, no_merge=body.no_merge_ts, log_skipped=body.log_skipped_ts,
            insecure=body.allow_insecure_https, proxy=proxy, use_server_file_time=body.use_server_file_time,
            debug_log=body.debug_log,
        )
        if body.skip_ts_info:
            from core.downloaders.hls import parse_skip

            try:
                parse_skip(body.skip_ts_info)
            except (InvalidInput, ValueError) as exc:
                raise fail(400, f"解析请求失败: skip_ts_info: {exc}") from None
        folder = body.save_location.strip() or None
    return TaskSpec(url=body.url, kind=TaskKind.HLS, name=body.filename.strip(), folder=folder,
                    headers=tuple(headers), options=TaskOptions(**options))


# ------------------------------------------------------------------ shapes


def progress_of(task: Task) -> float:
    """0-100: bytes when the total is known, else finished segments."""
    if task.status is TaskStatus.SUCCESS or task.total:
        return round(task.percent, 2)
    if task.segments_total:
        return round(100.0 * task.segments_done / task.segments_total, 2)
    return 0.0


def status_bar(task: Task) -> str:
    if task.status is TaskStatus.WAITING:
        return "等待下载"
    if task.status is TaskStatus.SUCCESS:
        return "下载完成"
    if task.status is TaskStatus.FAILED:
        return f"下载失败: {task.error or ''}".rstrip(": ")
    parts = []
    if task.segments_total:
        parts.append(f"{task.segments_done}/{task.segments_total}")
    parts.append(f"{progress_of(task):.2f}%")
    parts.append(human_bytes(task.downloaded) + (f"/{human_bytes(task.total)}" if task.total else ""))
    if task.status is TaskStatus.DOWNLOADING:
        parts.append(f"{human_bytes(task.speed)}/s")
    else:
        parts.insert(0, "已暂停")
    return " ".join(parts)


def size_of(task: Task) -> int:
    if task.status is TaskStatus.SUCCESS and task.file:
        try:
            stat = os.stat(task.file)
            if not os.path.isdir(task.file):
                return stat.st_size
        except OSError:
            pass
    return task.total or task.downloaded


def advanced_settings(task: Task) -> dict[str, Any]:
    o = task.options
    eng = engine()
    proxy = urlsplit(o.proxy) if o.proxy else None
    return {
        "save_location": str((eng.download_root / task.folder).resolve()) if task.folder else str(eng.download_root),
        "download_threads": o.segment_threads or eng.config.download.segment_threads,
        "skip_ts_info": o.skip or "",
        "keep_ts_files": o.keep_segments,
        "no_merge_ts": o.no_merge,
        "log_skipped_ts": o.log_skipped,
        "allow_insecure_https": o.insecure,
        "proxy_type": proxy.scheme if proxy else "",
        "proxy_host": (proxy.hostname or "") if proxy else "",
        "proxy_port": (proxy.port or 0) if proxy else 0,
        "proxy_username": unquote(proxy.username or "") if proxy else "",
        "use_server_file_time": o.use_server_file_time,
        "debug_log": o.debug_log,
    }


def task_json(task: Task) -> dict[str, Any]:
    header_map: dict[str, list[str]] = {}
    for key, value in task.headers:
        header_map.setdefault(key, []).append(value)
    body: dict[str, Any] = {
        "id": str(task.id),
        "url": task.url,
        "filename": task.name,
        "size": size_of(task),
        "progress": progress_of(task),
        "status": STATUS_TEXT[task.status],
        "status_bar": status_bar(task),
        "err_msg": task.error or "",
        "created_at": iso_z(task.created_at),
        "updated_at": iso_z(task.updated_at),
    }
    if task.status is TaskStatus.SUCCESS:
        body["completed_at"] = iso_z(task.updated_at)
    body["header_map"] = header_map
    body["advanced_settings"] = advanced_settings(task)
    return body


def json_response(data: Any, status: int = 200) -> Response:
    return Response(dumps(data), status=status, content_type="application/json")


def required_id() -> int:
    raw = request.args.get("id", "")
    if not raw.strip():
        raise fail(400, "任务ID不能为空")
    task_id = parse_id(raw)
    if task_id is None:
        raise fail(404, "任务不存在")
    return task_id


# ------------------------------------------------------------------ routes


@m3u8.get("/api/tasks")
@hide
async def list_tasks() -> Response:
    return json_response([task_json(t) for t in await all_tasks(engine())])


@m3u8.post("/api/tasks")
@hide
async def create_task() -> Response:
    spec = spec_from(await parse(CreateBody))
    try:
        (task,) = await engine().create([spec], start=True)
    except InvalidInput as exc:
        raise fail(400, f"解析请求失败: {exc}") from None
    except Exception as exc:
        log.warning("m3u8: saving a task failed: %s", exc)
        raise fail(500, "保存任务失败") from exc
    return json_response({"status": "success", "id": str(task.id)})


@m3u8.put("/api/tasks")
@hide
async def update_task() -> Response:
    task_id = required_id()
    body: StatusBody = await parse(StatusBody)
    eng = engine()
    try:
        task = await eng.get(task_id)
        if body.status == "等待中":
            if task.status not in (TaskStatus.WAITING, TaskStatus.DOWNLOADING):
                await eng.start(task_id)
        elif body.status == "已暂停":
            if task.status is not TaskStatus.STOPPED:
                await eng.stop(task_id)
        else:
            raise fail(400, f"无效的状态: {body.status!r} (可选: 等待中, 已暂停)")
    except TaskNotFound:
        raise fail(404, "任务不存在") from None
    except IllegalTransition as exc:
        raise fail(400, f"更新任务失败: {exc}") from None
    except CompatError:
        raise
    except Exception as exc:
        raise fail(500, "更新任务失败") from exc
    return json_response({"status": "success"})


@m3u8.delete("/api/tasks")
@hide
async def delete_task() -> Response:
    """Deleting a task that is not there (already deleted, or never was) succeeds, as m3u8dweb's does."""
    raw = request.args.get("id", "")
    if not raw.strip():
        raise fail(400, "任务ID不能为空")
    task_id = parse_id(raw)
    try:
        if task_id is not None:
            await engine().delete(task_id)
    except TaskNotFound:
        pass
    except Exception as exc:
        raise fail(500, "删除任务失败") from exc
    return json_response({"status": "success"})


@m3u8.websocket("/ws/progress")
async def progress_ws() -> None:
    """What m3u8dweb's task page reads: `{id, status_bar, progress}` per downloading task when it changes
    (checked every 100 ms), and again every 5 s even when nothing changed (`{}` when nothing downloads),
    which keeps proxies and the page's socket alive. The page sends nothing."""
    await websocket.accept()
    eng = engine()
    sent: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    last_push = loop.time()
    while True:
        messages = {str(t.id): progress_message(t) for t in await eng.active()}
        due = loop.time() - last_push >= KEEPALIVE_INTERVAL
        for task_id, message in messages.items():
            if due or sent.get(task_id) != message:
                await websocket.send(message)
        if due and not messages:
            await websocket.send("{}")
        if due:
            last_push = loop.time()
        sent = messages
        await asyncio.sleep(PUSH_INTERVAL)


def progress_message(task: Task) -> str:
    message: dict[str, Any] = {"id": str(task.id), "status_bar": status_bar(task)}
    progress = progress_of(task)
    if progress:
        message["progress"] = progress
    return dumps(message)


# What server/app.py registers for this dialect.
blueprint = m3u8
owns_path = is_m3u8_path

"""The native API: the MediaGo Download API (shared/seeds/mediago-download-api.en.txt).

Routes are thin: validate (server/bodies.py), call the engine, serialize
(server/schemas.py). Engine errors become envelopes in server/errors.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, Response, request
from quart_schema import document_querystring, document_request, document_response

from core.cookies import CookieImportError, CookieStore, DomainCount
from core.engine import Engine
from core.errors import IllegalTransition, InvalidField, InvalidInput, TaskNotFound
from core.models import Priority, TaskOptions, TaskSpec, TaskStatus
from core.queue import parse_move, parse_start_at
from core.store import TaskFilter, TaskPatch
from core.store.base import UNSET, Unset
from server.bodies import parse_body, parse_query
from server.errors import ApiError, ErrorCode
from server.files import FileLinkData, make_link
from server.guards import is_json_type
from server.respond import ok
from server.schemas import (
    ACCEPTED_TYPES,
    FILTER_STATUSES,
    MAX_ID,
    START_WORDS,
    STOP_WORDS,
    CreateRequest,
    DeleteQuery,
    DownloadTask,
    Empty,
    Envelope,
    ErrorEnvelope,
    EventsQuery,
    ExportQuery,
    LimitRequest,
    ListQuery,
    LiveRequest,
    LogsData,
    MoveRequest,
    RelinkRequest,
    StartRequest,
    StatusRequest,
    TaskPageData,
    UpdateRequest,
    canonical_type,
    iso_time,
    parse_mediago_headers,
    task_to_api,
)
from server.state import server_state
from server.wire import ScheduleStatus, encode_schedule

native = Blueprint("native", __name__, url_prefix="/api")
ID = "<int:task_id>"
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
EXPORT_PAGE = 5000


def documented(model: Any, *errors: int) -> Callable[[F], F]:
    """Document the success envelope and the error envelopes a route can answer."""

    def wrap(func: F) -> F:
        func = document_response(model, 200)(func)
        for status in sorted({400, 401, 403, 500, *errors}):
            func = document_response(ErrorEnvelope, status)(func)
        return func

    return wrap


def engine() -> Engine:
    return server_state().engine


@native.before_request
async def _ids_in_range() -> None:
    """Ids beyond SQLite's integer range cannot exist (and must not reach the database)."""
    task_id = (request.view_args or {}).get("task_id")
    if isinstance(task_id, int) and task_id > MAX_ID:
        raise TaskNotFound(task_id)


# ------------------------------------------------------------ input checks


# The engine applies the URL and folder rules and names the field that failed (InvalidField);
# this dialect answers those with its own codes and the field's path in the request.
FIELD_CODES = {"url": ErrorCode.INVALID_URL, "folder": ErrorCode.INVALID_FOLDER, "headers": ErrorCode.INVALID_HEADERS}
FIELD_CODES["notify_urls"] = ErrorCode.VALIDATION_FAILED  # events out: a task's own Apprise URLs
FIELD_CODES["checksum"] = ErrorCode.VALIDATION_FAILED  # integrity: a task's expected digest


@contextmanager
def field_errors(where: Callable[[InvalidField], str]) -> Iterator[None]:
    """Turn the engine's InvalidField for a url/folder/headers into this dialect's 400 naming `where(exc)`."""
    try:
        yield
    except InvalidField as exc:
        code = FIELD_CODES.get(exc.field)
        if code is None:
            raise
        raise ApiError(400, code, f"{where(exc)}: {exc}") from None


def batch_item(exc: InvalidField) -> str:
    return f"tasks[{exc.index}].{exc.field}"


def field_name(exc: InvalidField) -> str:
    return exc.field


def checked(code: ErrorCode, where: str, func: Callable[..., Any], *args: Any) -> Any:
    try:
        return func(*args)
    except InvalidInput as exc:
        raise ApiError(400, code, f"{where}: {exc}") from None


def checked_headers(value: str | list[str] | None, where: str) -> tuple[tuple[str, str], ...] | None:
    """Parse MediaGo's header lines (the wire format: this dialect's own parsing)."""
    if value is None:
        return None
    return checked(ErrorCode.INVALID_HEADERS, where, parse_mediago_headers, value)  # type: ignore[no-any-return]


def no_nul_folder(value: str | None, where: str) -> str | None:
    """MediaGo's folder may not hold a NUL (the engine checks the rest of the folder rule)."""
    if value and "\x00" in value:
        raise ApiError(400, ErrorCode.INVALID_FOLDER, f"{where}: contains a NUL character")
    return value


def start_time(value: str | float | None, where: str) -> float | None:
    """A request's startAt (HH:MM, ISO 8601, unix seconds) as a unix time; a 400 naming `where` if it is none."""
    if value is None:
        return None
    if isinstance(value, str):
        return checked(ErrorCode.VALIDATION_FAILED, where, parse_start_at, value)  # type: ignore[no-any-return]
    return float(value)


def given(value: T | None) -> T | Unset:
    """A request field left out (None) is not part of a patch."""
    return UNSET if value is None else value


def _where_dir(folder: str) -> Path:
    eng = engine()
    return Path(folder).resolve() if Path(folder).is_absolute() else (eng.download_root / folder).resolve()


def _task_filter(filter_name: str | None) -> TaskFilter:
    """The engine filter for ?filter=."""
    return TaskFilter(statuses=FILTER_STATUSES[filter_name] if filter_name else frozenset())


def _client_root(local_path: str | None, *, strict: bool = True) -> Path | None:
    """MediaGo's `localPath`: the client's download root, None when it is fetchdeck's own.

    strict: outside the allowed roots is a 400 (a start would save there); otherwise such a
    root is ignored (a list only looks for finished files, and never outside the roots)."""
    if not local_path:
        return None
    if "\x00" in local_path:
        raise ApiError(400, ErrorCode.INVALID_FOLDER, "localPath: contains a NUL character")
    root = _where_dir(local_path)
    try:
        engine().check_folder(str(root))
    except InvalidInput as exc:
        if strict:
            raise ApiError(400, ErrorCode.INVALID_FOLDER, f"localPath: {exc}") from None
        return None
    return None if root == engine().download_root else root


# ------------------------------------------------------------ list / query


@native.get("/downloads")
@document_querystring(ListQuery)
@documented(Envelope[TaskPageData])
async def list_downloads() -> Response:
    """List tasks, newest first, one page at a time."""
    query = parse_query(ListQuery)
    root = _client_root(query.local_path, strict=False)
    page = await engine().list_tasks(query.current, query.page_size, _task_filter(query.filter))
    return ok({"total": page.total, "list": [task_to_api(t, root) for t in page.items]})


@native.get("/downloads/active")
@documented(Envelope[list[DownloadTask]])
async def active_downloads() -> Response:
    """Tasks that are waiting or downloading, in queue order."""
    return ok([task_to_api(t) for t in await engine().active()])


@native.get("/downloads/folders")
@documented(Envelope[list[str]])
async def download_folders() -> Response:
    """The distinct directories tasks save into (absolute paths)."""
    seen: dict[str, None] = {}
    for folder in await engine().folders():
        seen[str(_where_dir(folder))] = None
    return ok(sorted(seen))


@native.get("/downloads/export")
@document_querystring(ExportQuery)
@documented(Envelope[str])
async def export_urls() -> Response:
    """Every task's URL, one per line, oldest first (text/plain). Honors filter."""
    query = parse_query(ExportQuery)
    _client_root(query.local_path, strict=False)  # as the list takes it: it selects nothing
    flt = TaskFilter(statuses=_task_filter(query.filter).statuses, newest_first=False)
    lines: list[str] = []
    page_no = 1
    while True:
        page = await engine().list_tasks(page_no, EXPORT_PAGE, flt)
        lines.extend(t.url for t in page.items)
        if len(page.items) < EXPORT_PAGE:
            break
        page_no += 1
    body = "".join(f"{url}\n" for url in lines)
    return Response(body, content_type="text/plain; charset=utf-8")


@native.get(f"/downloads/{ID}")
@documented(Envelope[DownloadTask], 404)
async def get_download(task_id: int) -> Response:
    """One task (with `exists`: MediaGo's skill reads it here)."""
    return ok(task_to_api(await engine().get(task_id)))


@native.get(f"/downloads/{ID}/logs")
@documented(Envelope[LogsData], 404)
async def download_logs(task_id: int) -> Response:
    """The task's log, one line per entry, oldest first."""
    lines = await engine().logs(task_id)
    return ok({"id": task_id, "log": "\n".join(f"{iso_time(line.ts)} {line.text}" for line in lines)})


# ------------------------------------------------------------ create / delete


@native.post("/downloads")
@document_request(CreateRequest)
@documented(Envelope[list[DownloadTask]], 413)
async def create_downloads() -> Response:
    """Create tasks in one batch; start them at once with startDownload."""
    body = await parse_body(CreateRequest)
    specs: list[TaskSpec] = []
    # one (never mutated) options object per type name (and playlist expansion)
    options_for: dict[tuple[str | None, bool], TaskOptions] = {}
    for i, item in enumerate(body.tasks):
        where = f"tasks[{i}]"
        options = options_for.get((item.type, item.expand_playlist))
        if options is None:
            options = options_for[(item.type, item.expand_playlist)] = TaskOptions(
                api_type=canonical_type(item.type) if item.type else None, expand_playlist=item.expand_playlist)
        if not item.notify or item.notify_urls:  # events out: this task's own notifications
            options = options.model_copy(update={"notify": item.notify, "notify_urls": item.notify_urls or []})
        if item.checksum is not None:  # checked by the engine (core/integrity.py), named tasks[i].checksum
            options = options.model_copy(update={"checksum": item.checksum})
        if item.quality is not None or item.audio_only:  # yt-dlp video choice, as `fetchdeck get` takes it
            options = options.model_copy(update={"quality": item.quality or ("audio" if item.audio_only else None),
                                                  **({"postprocess": "audio"} if item.audio_only else {})})
        specs.append(
            TaskSpec(
                url=item.url,
                kind=ACCEPTED_TYPES[item.type] if item.type else None,
                name=item.name,
                folder=no_nul_folder(item.folder, f"{where}.folder"),
                headers=checked_headers(item.headers, f"{where}.headers") or (),
                is_live=item.is_live,
                options=options,
                priority=Priority(item.priority or Priority.NORMAL),
                start_at=start_time(item.start_at, f"{where}.startAt"),
            )
        )
    with field_errors(batch_item):
        tasks = await engine().create(specs, start=body.start_download)
    return ok([task_to_api(t) for t in tasks])


@native.delete(f"/downloads/{ID}")
@document_querystring(DeleteQuery)
@documented(Envelope[Empty], 404)
async def delete_download(task_id: int) -> Response:
    """Delete a task (stopping it first). deleteFile=true also removes the downloaded file."""
    query = parse_query(DeleteQuery)
    await engine().delete(task_id, files=query.delete_file)
    return ok({})


# ------------------------------------------------------------ edit / status


@native.put(f"/downloads/{ID}")
@document_request(UpdateRequest)
@documented(Envelope[DownloadTask], 404, 409, 413)
async def update_download(task_id: int) -> Response:
    """Edit name, url, headers, folder (url and folder only while not downloading)."""
    body = await parse_body(UpdateRequest)
    patch = TaskPatch(
        name=given(body.name),
        url=given(body.url),
        headers=given(checked_headers(body.headers, "headers")),
        folder=given(no_nul_folder(body.folder, "folder")),
        is_live=given(body.is_live),
        priority=given(Priority(body.priority) if body.priority else None),
        start_at=given(start_time(body.start_at, "startAt")),
    )
    with field_errors(field_name):
        task = await engine().update(task_id, patch)
    return ok(task_to_api(task))


@native.post(f"/downloads/{ID}/move")
@document_request(MoveRequest)
@documented(Envelope[DownloadTask], 404, 413)
async def move_download(task_id: int) -> Response:
    """Reorder the queue: put the task at the top or bottom of the waiting tasks of its priority, or one
    place up or down (the queue takes high before normal before low; set `priority` with PUT)."""
    body = await parse_body(MoveRequest)
    return ok(task_to_api(await engine().move(task_id, parse_move(body.to))))


@native.put(f"/downloads/{ID}/live")
@document_request(LiveRequest)
@documented(Envelope[DownloadTask], 404, 413)
async def set_live(task_id: int) -> Response:
    """Mark or unmark a task as a live stream."""
    body = await parse_body(LiveRequest)
    return ok(task_to_api(await engine().update(task_id, TaskPatch(is_live=body.is_live))))


@native.put("/downloads/status")
@document_request(StatusRequest)
@documented(Envelope[list[DownloadTask]], 404, 409, 413)
async def set_status() -> Response:
    """Bulk status (all ids are checked before anything changes):
    waiting, pending, downloading: start (queue) the tasks not already active;
    stopped, ready: stop the active ones (a finished task: 409);
    failed: stop and mark failed ("marked as failed by a client"; a finished task: 409);
    success: mark tasks whose file is complete on disk (an active one, or one without its file: 409)."""
    body = await parse_body(StatusRequest)
    eng = engine()
    ids = list(dict.fromkeys(body.ids))
    tasks = [await eng.get(i) for i in ids]  # TaskNotFound → 404 before anything changes
    word = body.status
    if word in STOP_WORDS:
        finished = [t.id for t in tasks if t.status is TaskStatus.SUCCESS]
        if finished:
            raise IllegalTransition(f"task {finished[0]} has finished; only active tasks can be stopped")
    elif word not in START_WORDS:
        for task in tasks:
            Engine.check_mark(task, TaskStatus(word))
    out = []
    for task in tasks:
        try:
            if word in START_WORDS:
                if task.status is not TaskStatus.DOWNLOADING:
                    await eng.start(task.id)
            elif word in STOP_WORDS:
                await eng.stop(task.id)
            else:
                await eng.mark(task.id, TaskStatus(word))
        except IllegalTransition:
            pass  # changed state meanwhile (started or finished on its own): report it as it is
        out.append(task_to_api(await eng.get(task.id)))
    return ok(out)


# ------------------------------------------------------------ bandwidth (core/ratelimit.py, core/schedule.py)


def _speed(body: LimitRequest) -> int | None:
    from core.config import parse_size

    if isinstance(body.speed, int) and body.speed < 0:
        raise ApiError(400, ErrorCode.VALIDATION_FAILED, "speed: must be 0 or more bytes per second")
    return checked(ErrorCode.VALIDATION_FAILED, "speed", parse_size, body.speed)  # type: ignore[no-any-return]


@native.put(f"/downloads/{ID}/limit")
@document_request(LimitRequest)
@documented(Envelope[DownloadTask], 404, 413)
async def set_download_limit(task_id: int) -> Response:
    """The task's own speed limit (on top of the global and per-host ones); a running task obeys it at once."""
    body = await parse_body(LimitRequest)
    return ok(task_to_api(await engine().set_task_speed_limit(task_id, _speed(body))))


@native.put("/hosts/<string:host>/limit")
@document_request(LimitRequest)
@documented(Envelope[Empty], 413)
async def set_host_limit(host: str) -> Response:
    """A host's speed limit on this node (`[hosts."NAME"] speed`; "*": every host not named), until restart."""
    body = await parse_body(LimitRequest)
    checked(ErrorCode.VALIDATION_FAILED, "host", engine().set_host_speed_limit, host, _speed(body))
    return ok({})


@native.get("/schedule")
@documented(Envelope[ScheduleStatus])
async def schedule_status() -> Response:
    """The bandwidth schedule's window in force on this node (`[[schedule]]`), and the global limit now."""
    eng = engine()
    return ok(encode_schedule(eng.schedule_state(), eng.limits.global_rate))


# ------------------------------------------------------------ start / stop


@native.post(f"/downloads/{ID}/start")
@document_request(StartRequest)
@documented(Envelope[DownloadTask], 404, 409, 413)
async def start_download(task_id: int) -> Response:
    """Queue a task to download (again). localPath is the download root the task's folder is under
    (MediaGo's `local`; fetchdeck's download dir when omitted); deleteSegments is for m3u8."""
    body = await parse_body(StartRequest, optional=True)
    root = _client_root(body.local_path)
    folder = None
    if root is not None:
        task = await engine().get(task_id)
        if not Path(task.folder).is_absolute():
            folder = str(root / task.folder)
    with field_errors(lambda exc: "localPath"):
        task = await engine().start(task_id, folder=folder, delete_segments=body.delete_segments)
    return ok(task_to_api(task, root))


@native.post(f"/downloads/{ID}/stop")
@documented(Envelope[Empty], 404, 409)
async def stop_download(task_id: int) -> Response:
    """Stop a task; what was downloaded stays and a later start resumes."""
    await engine().stop(task_id)
    return ok({})


# ------------------------------------------------------------ cookie jars (core/cookies.py)


class CookieDomain(BaseModel):
    domain: str = Field(description="A cookie domain without its leading dot (its subdomains included)")
    cookies: int = Field(description="How many cookies the jar holds (or the import added) for it")


class CookiesData(BaseModel):
    total: int = Field(description="How many cookies in all; the values are never returned")
    domains: list[CookieDomain]


class CookiesUpload(BaseModel):
    """A browser's form of the upload (a body from a web page must be JSON); curl can send the file itself."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="The Netscape cookies.txt text")


def _jar() -> CookieStore:
    jar = engine().cookies
    if jar is None:
        raise ApiError(400, ErrorCode.BAD_REQUEST, "this fetchdeck keeps no cookie jar (set [cookies] dir)")
    return jar


def _cookies_data(domains: tuple[DomainCount, ...]) -> dict[str, Any]:
    return {"total": sum(d.cookies for d in domains),
            "domains": [{"domain": d.domain, "cookies": d.cookies} for d in domains]}


@native.get("/cookies")
@documented(Envelope[CookiesData])
async def list_cookies() -> Response:
    """The cookie jar's domains and how many cookies each has (never a value)."""
    return ok(_cookies_data(_jar().summary()))


@native.post("/cookies")
@document_request(CookiesUpload)
@documented(Envelope[CookiesData], 413)
async def upload_cookies() -> Response:
    """Import cookies: the body is a Netscape cookies.txt (`curl --data-binary @cookies.txt`), or JSON
    `{"text": "<cookies.txt>"}`. Answers with the domains and counts imported, never a value."""
    jar = _jar()
    data = await request.get_data(cache=True)
    raw = data.encode() if isinstance(data, str) else data
    if is_json_type(request.headers.get("Content-Type")) or raw.lstrip()[:1] == b"{":
        text = (await parse_body(CookiesUpload)).text
    else:
        text = raw.decode("utf-8-sig", "replace")
    try:
        report = await asyncio.to_thread(jar.import_text, text, "the uploaded cookies.txt")
    except CookieImportError as exc:
        raise ApiError(400, ErrorCode.BAD_REQUEST, str(exc)) from None
    return ok(_cookies_data(report.domains))


# ------------------------------------------------------------ relink (core/relink.py)


@native.post(f"/downloads/{ID}/relink")
@document_request(RelinkRequest)
@documented(Envelope[DownloadTask], 404, 409, 413)
async def relink_download(task_id: int) -> Response:
    """Give a task a new URL and queue it (a running task is stopped first). A direct download continues
    from its bytes on disk when the new URL serves the same file (size and ETag/Last-Modified), else 409
    says how it differs; restart=true starts over from the new URL instead."""
    body = await parse_body(RelinkRequest)
    with field_errors(field_name):
        task = await engine().relink(task_id, body.url, restart=body.restart)
    return ok(task_to_api(task))


# ------------------------------------------------------------ downloads from the browser (server/files.py)


@native.post(f"/downloads/{ID}/file-link")
@documented(Envelope[FileLinkData], 404, 409)
async def file_link(task_id: int) -> Response:
    """A short-lived link (`[files] link_ttl`, 600 s) that downloads the finished task's file without a
    token: GET it (Range, If-Range, HEAD). 409: the task has no finished file on disk; 403: its file is
    outside the download roots; 404: no such task, or downloads from the browser are off."""
    return ok((await make_link(engine(), task_id)).model_dump())


# ------------------------------------------------------------ events


@native.get("/events")
@document_querystring(EventsQuery)
@documented(Envelope[Empty])
async def events() -> Response:
    """Server-Sent Events: download-create/-start/-progress/-success/-failed/-stop/-delete/-update."""
    query = parse_query(EventsQuery)
    last = query.last_event_id
    header = request.headers.get("Last-Event-ID", "").strip()
    if header.isdigit() and len(header) < 19:
        last = int(header)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if request.method == "HEAD":
        return Response("", content_type="text/event-stream; charset=utf-8", headers=headers)
    response = Response(
        server_state().streams.stream(last),
        content_type="text/event-stream; charset=utf-8",
        headers=headers,
    )
    response.timeout = None  # an endless stream
    return response

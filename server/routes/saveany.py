"""The SaveAny-Bot HTTP API (shared/seeds/saveany-bot-http-api.zh.txt): `/health`, `/api/v1/...`,
answering as SaveAny-Bot's own server (krau/SaveAny-Bot api/*.go) does.

Task types → engine tasks: directlinks (http; several URLs = a group),
ytdlp (yt-dlp with allow-listed flags), aria2 (the aria2 backend), parseditem
(yt-dlp must be able to parse the page), tphpics (every <img> of an article
page, as a group of http tasks), transfer (the transfer backend between
storages). tgfiles needs a Telegram session fetchdeck does not have.

POST /api/v1/tasks checks in the real server's order: the body decodes
(server/saveany_shapes.py decodes as Go's encoding/json does) — else 400
invalid_request `failed to decode request body: …`; `type`, then `storage`
are not empty — else 400 invalid_request; then everything the real server's
task factory refuses is 400 task_creation_failed with its message: the
storage exists, the type is known, the params decode (`invalid params: …`),
the type's own checks (`no URLs provided`, ...), then what only fetchdeck
checks (the URLs, flags, aria2 options and webhook it accepts).
parseditem and tphpics read the page at creation, through download.proxy.
Errors are `{error, message}`. The routes as OpenAPI: server/openapi/saveany.json.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urljoin, urlsplit

import httpx
from flask.sansio.blueprints import BlueprintSetupState
from quart import Blueprint, Response, has_request_context, request
from quart_schema import hide
from werkzeug.routing import BaseConverter

from core.engine import Engine
from core.errors import DownloadError, IllegalTransition, InvalidInput
from core.models import Task, TaskKind, TaskOptions, TaskSpec, TaskStatus
from core.naming import sanitize_folder, sanitize_name
from core.store import TaskPatch
from core.validation import validate_url
from server.compat import all_tasks, group_status, group_tasks, parse_id
from server.errors import CompatError, ErrorCode
from server.saveany_shapes import (
    SAVEANY_TYPES,
    Decoded,
    GoDecodeError,
    decode_body,
    decode_params,
    go_json,
    go_time,
    task_json,
)
from server.state import server_state
from server.storages import SCHEME, Storage, source_path, task_folder

saveany = Blueprint("saveany", __name__)
ARTICLE_MAX_BYTES = 8 << 20  # an article page is read whole into memory: no more than this
# /health answers any method, as the real server's does (no method check); OPTIONS too, unless it is a
# CORS preflight (answered before routing). The other routes have no automatic OPTIONS answer: 405.
HEALTH_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
GET_ONLY_PATHS = frozenset({"/api/v1/storages", "/api/v1/task-types"})


class TaskIdConverter(BaseConverter):
    """Everything after /api/v1/tasks/, slashes included, reaches the task routes (never a redirect or
    another route's 404); which part of it is the id is the real server's rule (`task_id_from_path`)."""

    regex = r"[\s\S]+"  # newlines too
    part_isolating = False


def _register_converter(state: BlueprintSetupState) -> None:
    state.app.url_map.converters.setdefault("saveany_id", TaskIdConverter)


saveany.record_once(_register_converter)


def is_saveany_path(path: str) -> bool:
    return path == "/health" or path == "/api/v1" or path.startswith("/api/v1/")


def task_id_from_path(path: str) -> str:
    """The real server's extractTaskIDFromPath: the 4th segment of the trimmed path, "" when missing
    (`/api/v1/tasks/a/b` → `a`, `/api/v1/tasks//x` → "")."""
    parts = path.strip("/").split("/")
    return parts[3] if len(parts) >= 4 else ""


# ------------------------------------------------------------------ errors


def _auth_message() -> str:
    """The real auth middleware's three messages (fetchdeck also takes X-API-Key, ?token= and Basic)."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        other = request.headers.get("X-API-Key") or request.args.get("token")
        return "invalid token" if other else "missing authorization header"
    scheme, sep, _ = header.partition(" ")
    if not sep or scheme.lower() not in ("bearer", "basic"):
        return "invalid authorization header format"
    return "invalid token"


def _dialect_error(status: int, code: ErrorCode, message: str) -> tuple[str, str]:
    """The real server's code and message for an error fetchdeck's own layers raised."""
    in_request = has_request_context()
    if code is ErrorCode.UNAUTHORIZED:
        return "unauthorized", _auth_message() if in_request else "invalid token"
    if code is ErrorCode.METHOD_NOT_ALLOWED:
        if not in_request:
            return "method_not_allowed", message
        if request.path in GET_ONLY_PATHS:
            return "method_not_allowed", "only GET method is allowed"
        return "method_not_allowed", f"method not allowed: {request.method}"
    if code is ErrorCode.ROUTE_NOT_FOUND:
        return "not_found", f"endpoint not found: {request.path}" if in_request else message
    if code is ErrorCode.TASK_NOT_FOUND:
        return "task_not_found", message
    if status >= 500:
        return "internal_error", "internal server error" if code is ErrorCode.INTERNAL_ERROR else message
    # fetchdeck's own refusals (403 Host/Origin, 413 body too large, 415 not JSON from a browser)
    return "invalid_request", message


def render_error(status: int, code: ErrorCode, dialect_code: str | None, message: str,
                 headers: dict[str, str]) -> Response:
    if dialect_code is None:
        dialect_code, message = _dialect_error(status, code, message)
    body = {"error": dialect_code, "message": message}
    return Response(go_json(body) + "\n", status=status, content_type="application/json", headers=headers)


def fail(status: int, code: str, message: str) -> CompatError:
    return CompatError(status, code, message)


def creation_failed(message: str) -> NoReturn:
    """What the real server answers for any error of its task factory."""
    raise fail(400, "task_creation_failed", message)


def engine() -> Engine:
    return server_state().engine


def storages() -> dict[str, Storage]:
    return server_state().services.storages


def reply(data: Any, status: int = 200) -> Response:
    """JSON as the real server's WriteJSON writes it: encoding/json's Encode, a newline at the end."""
    return Response(go_json(data) + "\n", status=status, content_type="application/json")


# ------------------------------------------------------------------ task types


def _url(url: str, prefix: str = "") -> str:
    """An http(s) URL fetchdeck's HTTP client can request (validate_url refuses control characters
    and host names no resolver takes, which would otherwise fail only when the download runs)."""
    try:
        return validate_url(url)
    except InvalidInput as exc:
        creation_failed(f"{prefix}{exc}")


def _storage(name: str, role: str) -> Storage:
    found = storages().get(name)
    if found is None:
        creation_failed(f"{role}storage not found: {name}")
    return found


def _urls(params: Decoded) -> list[str]:
    urls = params.texts("urls")
    if not urls:
        creation_failed("no URLs provided")
    return urls


async def _build(kind: str, params: Decoded, base: TaskOptions, folder: str) -> list[TaskSpec]:
    """The engine tasks for a SaveAny task, or task_creation_failed with the real server's reason."""
    if kind == "directlinks":
        return [TaskSpec(url=_url(u), kind=TaskKind.HTTP, folder=folder, options=base) for u in _urls(params)]
    if kind == "ytdlp":
        urls = _urls(params)
        opts = base.model_copy(update={"ytdlp_flags": params.texts("flags")})
        return [TaskSpec(url=_url(u), kind=TaskKind.YTDLP, folder=folder, options=opts) for u in urls]
    if kind == "aria2":
        from server.aria2 import check_options, check_url

        urls = _urls(params)
        if not server_state().config.aria2.rpc_url:
            creation_failed("aria2 is not enabled (fetchdeck: set [aria2] rpc_url)")
        try:
            opts = base.model_copy(update={"backend": "aria2",
                                           "backend_options": check_options(params.mapping("options"))})
            return [TaskSpec(url=check_url(u), kind=TaskKind.HTTP, folder=folder, options=opts) for u in urls]
        except InvalidInput as exc:
            creation_failed(str(exc))
    if kind == "parseditem":
        page = params.text("url")
        if not page:
            creation_failed("no URL provided")
        url = _url(page)
        try:
            info = await engine().extract(url)
        except (DownloadError, InvalidInput) as exc:
            if "unsupported url" in str(exc).lower():
                creation_failed(f"no parser found for URL: {page}")
            creation_failed(f"failed to parse URL: {exc}")
        name = sanitize_name(info.title) if info.title and not info.is_playlist else None
        return [TaskSpec(url=url, kind=TaskKind.YTDLP, name=name, folder=folder, options=base)]
    if kind == "tgfiles":
        links = params.texts("message_links")
        if not links:
            creation_failed("no message links provided")
        creation_failed("no files found in provided links (fetchdeck has no Telegram account session, "
                        "so it cannot read Telegram messages)")
    if kind == "tphpics":
        page = params.text("telegraph_url")
        if not page:
            creation_failed("no telegraph URL provided")
        images = await article_images(_url(page, "failed to extract telegraph images: "))
        if not images:
            creation_failed("failed to extract telegraph images: no images found in telegraph page")
        return [TaskSpec(url=u, kind=TaskKind.HTTP, folder=folder, options=base) for u in images]
    # transfer: the task is the target's (its storage and path are target_storage and target_path)
    source = _storage(params.text("source_storage"), "source ")
    target = _storage(params.text("target_storage"), "target ")
    sub, target_path = params.text("source_path"), params.text("target_path")
    src = _transfer_source(source, sub)
    opts = base.model_copy(update={
        "backend": "transfer", "backend_options": {"source": str(src)},
        "storage": target.name, "storage_path": target_path,
    })
    url = f"{SCHEME}{source.name}/{sub.strip('/')}"
    return [TaskSpec(url=url, kind=TaskKind.HTTP, name=src.name, folder=task_folder(target, target_path),
                     options=opts)]


def _transfer_source(storage: Storage, sub: str) -> Path:
    if storage.path is None:
        creation_failed(f"failed to list source files: storage {storage.name} is an S3 storage")
    where = (storage.path / sanitize_folder(sub)).resolve()
    if where.is_dir() and not any(p.is_file() for p in where.rglob("*")):
        root = storage.path.resolve()
        if where == root or root in where.parents:
            creation_failed(f"no files found at source path: {sub}")
    try:
        return source_path(storage, sub)
    except InvalidInput as exc:
        creation_failed(f"failed to list source files: {exc}")


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            src = dict(attrs).get("src")
            if src:
                self.sources.append(src)


async def article_images(page: str) -> list[str]:
    """Absolute URLs of every <img> on an article page (telegra.ph style), in order, once each.

    The page is read like the images will be: with the engine's HTTP client, through download.proxy;
    at most ARTICLE_MAX_BYTES of it, within download.read_timeout seconds in all (name lookup included).
    """
    config = server_state().config.download
    client = engine().clients.get(proxy=config.proxy or None)
    body = bytearray()
    try:
        async with asyncio.timeout(config.read_timeout), client.stream("GET", page) as response:
            response.raise_for_status()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= ARTICLE_MAX_BYTES:
                    break
            base, encoding = str(response.url), response.encoding or "utf-8"
    except (httpx.HTTPError, OSError, ValueError) as exc:  # ValueError: e.g. a host IDNA cannot encode ("a..b")
        why = f"not read within {config.read_timeout:g} s" if isinstance(exc, TimeoutError) else exc
        creation_failed(f"failed to extract telegraph images: failed to get telegraph page: "
                        f"{why or type(exc).__name__}")
    parser = _Images()
    parser.feed(body.decode(encoding, errors="replace"))
    out: dict[str, None] = {}
    for src in parser.sources:
        try:
            url = urljoin(base, src.strip())
            if urlsplit(url).scheme in ("http", "https"):
                out[validate_url(url)] = None
        except (InvalidInput, ValueError):
            continue  # an <img> no download could fetch (no host, a bad IPv6 address...) is skipped, not fatal
    return list(out)


async def create_group(specs: list[TaskSpec]) -> Task:
    """One engine task per spec; the first leads. Members exist before the leader may finish, and the
    group's webhook is armed only once the leader lists them all: until then the group would read as the
    stopped leader alone, "cancelled" to the notifier."""
    eng = engine()
    if len(specs) == 1:
        (leader,) = await eng.create(specs, start=True)
        return leader
    first = specs[0]
    (leader,) = await eng.create([replace(first, options=first.options.model_copy(update={"webhook": None}))],
                                 start=False)
    members = await eng.create(
        [replace(s, options=s.options.model_copy(update={"group": leader.id, "webhook": None})) for s in specs[1:]],
        start=True,
    )
    whole = leader.options.model_copy(update={"members": [m.id for m in members], "webhook": first.options.webhook})
    await eng.update(leader.id, TaskPatch(options=whole))
    return await eng.start(leader.id)


# ------------------------------------------------------------------ routes


@saveany.route("/health", methods=HEALTH_METHODS, provide_automatic_options=False)
@hide
async def health() -> Response:
    return reply({"status": "ok"})


@saveany.get("/api/v1/storages", provide_automatic_options=False)
@hide
async def list_storages() -> Response:
    return reply({"storages": [{"name": s.name, "type": s.type} for s in storages().values()]})


@saveany.get("/api/v1/task-types", provide_automatic_options=False)
@hide
async def task_types() -> Response:
    return reply({"types": list(SAVEANY_TYPES)})


@saveany.post("/api/v1/tasks", provide_automatic_options=False)
@hide
async def create_task() -> Response:
    raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    try:
        body = decode_body(raw)
    except GoDecodeError as exc:
        raise fail(400, "invalid_request", f"failed to decode request body: {exc}") from None
    kind, storage_name = body.text("type"), body.text("storage")
    if not kind:
        raise fail(400, "invalid_request", "task type is required")
    if not storage_name:
        raise fail(400, "invalid_request", "storage is required")
    storage = _storage(storage_name, "")  # before the type, as the real factory checks
    if kind not in SAVEANY_TYPES:
        creation_failed(f"unsupported task type: {kind}")
    try:
        params = decode_params(kind, body.values["params"])
    except GoDecodeError as exc:
        creation_failed(f"invalid params: {exc}")
    path = body.text("path")
    base = TaskOptions(api_type=kind, storage=storage.name, storage_path=path)
    specs = await _build(kind, params, base, task_folder(storage, path))
    webhook = body.text("webhook")
    if webhook:  # the real server takes any text; fetchdeck only POSTs to an http(s) URL it can request
        webhook = _url(webhook, "invalid webhook: ")
        specs[0] = replace(specs[0], options=specs[0].options.model_copy(update={"webhook": webhook}))
    try:
        leader = await create_group(specs)
    except InvalidInput as exc:
        creation_failed(str(exc))
    return reply({"task_id": str(leader.id), "type": kind, "status": "queued",
                  "created_at": go_time(leader.created_at)}, status=201)


@saveany.get("/api/v1/tasks", provide_automatic_options=False)
@hide
async def list_tasks() -> Response:
    tasks = await all_tasks(engine())
    known = {t.id: t for t in tasks}
    out = []
    for task in reversed(tasks):  # oldest first, like a queue
        if task.options.group is not None and task.options.group in known:
            continue  # shown as part of its leader
        out.append(task_json(task, await group_tasks(engine(), task, known)))
    return reply({"tasks": out, "total": len(out)})


async def _leader() -> Task:
    """The task the path names: 400 invalid_request without an id, 404 task_not_found for an unknown one."""
    raw = task_id_from_path(request.path)
    if not raw:
        raise fail(400, "invalid_request", "task ID is required")
    task_id = parse_id(raw)
    try:
        if task_id is not None:
            return await engine().get(task_id)
    except LookupError:
        pass
    raise fail(404, "task_not_found", f"task not found: {raw}")


@saveany.route("/api/v1/tasks/", methods=["GET", "DELETE"], merge_slashes=False, strict_slashes=False,
               provide_automatic_options=False)
@hide
async def missing_id() -> Response:
    if not request.path.endswith("/"):  # DELETE /api/v1/tasks (no redirect to the slash): the mux's 405
        raise fail(405, "method_not_allowed", f"method not allowed: {request.method}")
    raise fail(400, "invalid_request", "task ID is required")


@saveany.get("/api/v1/tasks/<saveany_id:task_id>", merge_slashes=False, provide_automatic_options=False)
@hide
async def get_task(task_id: str) -> Response:
    """`task_id` is all the route matched; the id is the real server's part of it (`_leader`)."""
    leader = await _leader()
    return reply(task_json(leader, await group_tasks(engine(), leader)))


@saveany.delete("/api/v1/tasks/<saveany_id:task_id>", merge_slashes=False, provide_automatic_options=False)
@hide
async def cancel_task(task_id: str) -> Response:
    leader = await _leader()
    eng = engine()
    tasks = await group_tasks(eng, leader)
    status = group_status(tasks)
    if status == "cancelled":  # DELETE is idempotent: cancelling it again changes nothing and is no failure
        return reply({"message": "task cancelled successfully"})
    if status in ("completed", "failed"):  # the real queue has let go of it: its CancelTask error
        raise fail(500, "cancel_failed", f"failed to cancel task: task {leader.id} does not exist")
    try:
        for task in tasks:
            if task.status in (TaskStatus.WAITING, TaskStatus.DOWNLOADING):
                await eng.stop(task.id)
    except (IllegalTransition, LookupError) as exc:
        raise fail(500, "cancel_failed", f"failed to cancel task: {exc}") from None
    notifier = server_state().services.notifier
    if notifier is not None:
        await notifier.poke(leader.id)  # a task stopped before it ran sends no stop event
    return reply({"message": "task cancelled successfully"})


# What server/app.py registers for this dialect.
blueprint = saveany
owns_path = is_saveany_path

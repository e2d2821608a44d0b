"""The SaveAny-Bot HTTP API (shared/seeds/saveany-bot-http-api.zh.txt): `/health`, `/api/v1/...`.

Task types → engine tasks: directlinks (http; several URLs = a group),
ytdlp (yt-dlp with allow-listed flags), aria2 (the aria2 backend), parseditem
(yt-dlp must be able to parse the page, else 400), tphpics (every <img> of an
article page, as a group of http tasks), transfer (the transfer backend
between storages). tgfiles needs a Telegram session fetchdeck does not have.
Each type's params are checked first (400 invalid_request; fields of other
types are ignored), then what the type needs (400 task_creation_failed).
parseditem and tphpics read the page at creation, through download.proxy.
Errors are `{error, message}`. The routes as OpenAPI: server/openapi/saveany.json.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from quart import Blueprint, Response, request
from quart_schema import hide
from werkzeug.routing import BaseConverter

from core.engine import Engine, validate_url
from core.errors import DownloadError, IllegalTransition, InvalidInput
from core.models import Task, TaskKind, TaskOptions, TaskSpec, TaskStatus
from core.naming import sanitize_name
from server.app import server_state
from server.compat import all_tasks, dumps, group_status, group_tasks, iso_z, parse_id
from server.errors import CompatError, ErrorCode, register_dialect_errors
from server.saveany_shapes import SAVEANY_TYPES, task_json
from server.storages import SCHEME, Storage, source_path, task_folder

saveany = Blueprint("saveany", __name__)
ARTICLE_MAX_BYTES = 8 << 20  # an article page is read whole into memory: no more than this


class TaskIdConverter(BaseConverter):
    """Everything after /api/v1/tasks/, slashes included: any such id is a task id (unknown: 404
    task_not_found), never a redirect or another route's 404."""

    regex = r"[\s\S]+"  # newlines too
    part_isolating = False


saveany.record_once(lambda state: state.app.url_map.converters.setdefault("saveany_id", TaskIdConverter))


def is_saveany_path(path: str) -> bool:
    return path == "/health" or path == "/api/v1" or path.startswith("/api/v1/")


_CODES = {
    ErrorCode.UNAUTHORIZED: "unauthorized",
    ErrorCode.METHOD_NOT_ALLOWED: "method_not_allowed",
    ErrorCode.TASK_NOT_FOUND: "task_not_found",
    ErrorCode.ROUTE_NOT_FOUND: "not_found",
    ErrorCode.INTERNAL_ERROR: "internal_error",
}


def render_error(status: int, code: ErrorCode, dialect_code: str | None, message: str,
                 headers: dict[str, str]) -> Response:
    if dialect_code is None:
        dialect_code = _CODES.get(code, "internal_error" if status >= 500 else "invalid_request")
        if code is ErrorCode.UNAUTHORIZED:
            message = "invalid token"
    body = {"error": dialect_code, "message": message}
    return Response(dumps(body), status=status, content_type="application/json", headers=headers)


register_dialect_errors(is_saveany_path, render_error)


def fail(status: int, code: str, message: str) -> CompatError:
    return CompatError(status, code, message)


def engine() -> Engine:
    return server_state().engine


def storages() -> dict[str, Storage]:
    return server_state().compat.storages  # type: ignore[attr-defined, no-any-return]


def reply(data: Any, status: int = 200) -> Response:
    return Response(dumps(data), status=status, content_type="application/json")


# ------------------------------------------------------------------ bodies


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    type: str
    storage: str
    path: str = ""
    webhook: str = ""
    params: dict[str, Any] = Field(default_factory=dict)


class Params(BaseModel):
    """A type's params: the fields of other types (and unknown ones) are ignored, as the seed's bot does."""

    model_config = ConfigDict(extra="ignore", strict=True)


class UrlsParams(Params):
    urls: list[str] = Field(min_length=1)


class YtdlpParams(UrlsParams):
    flags: list[str] = Field(default_factory=list)


class Aria2Params(UrlsParams):
    options: dict[str, str] = Field(default_factory=dict)


class ParsedParams(Params):
    url: str


class TgParams(Params):
    message_links: list[str] = Field(min_length=1)


class TphParams(Params):
    telegraph_url: str


class TransferParams(Params):
    source_storage: str
    source_path: str
    target_storage: str
    target_path: str = ""


def _invalid(exc: ValidationError, prefix: str = "") -> CompatError:
    first = exc.errors(include_url=False)[0]
    where = prefix + ".".join(str(p) for p in first.get("loc", ()))
    return fail(400, "invalid_request", f"{where or 'body'}: {first.get('msg', 'invalid value')}")


def _params(model: type[BaseModel], params: dict[str, Any]) -> Any:
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise _invalid(exc, "params.") from None


def _storage(name: str) -> Storage:
    found = storages().get(name)
    if found is None:
        raise fail(400, "invalid_request", f"storage {name!r} not found (have: {', '.join(storages())})")
    return found


def _urls(urls: list[str], field: str = "params.urls") -> list[str]:
    """http(s) URLs fetchdeck's HTTP client can request (validate_url refuses control characters
    and host names no resolver takes, which would otherwise fail only when the download runs)."""
    out = []
    for url in urls:
        try:
            out.append(validate_url(url))
        except InvalidInput as exc:
            raise fail(400, "invalid_request", f"{field}: {exc}") from None
    return out


# ------------------------------------------------------------------ task types


async def _build(body: CreateBody, base: TaskOptions, folder: str) -> list[TaskSpec]:
    kind = body.type
    params = body.params
    if kind == "directlinks":
        p = _params(UrlsParams, params)
        return [TaskSpec(url=u, kind=TaskKind.HTTP, folder=folder, options=base) for u in _urls(p.urls)]
    if kind == "ytdlp":
        p = _params(YtdlpParams, params)
        opts = base.model_copy(update={"ytdlp_flags": p.flags})
        return [TaskSpec(url=u, kind=TaskKind.YTDLP, folder=folder, options=opts) for u in _urls(p.urls)]
    if kind == "aria2":
        from server.aria2 import check_options, check_url

        p = _params(Aria2Params, params)
        try:
            opts = base.model_copy(update={"backend": "aria2", "backend_options": check_options(p.options)})
            specs = [TaskSpec(url=check_url(u), kind=TaskKind.HTTP, folder=folder, options=opts) for u in p.urls]
        except InvalidInput as exc:
            raise fail(400, "invalid_request", str(exc)) from None
        if not server_state().config.aria2.rpc_url:
            raise fail(400, "task_creation_failed", "aria2 is not configured (set [aria2] rpc_url)")
        return specs
    if kind == "parseditem":
        p = _params(ParsedParams, params)
        url = _urls([p.url], "params.url")[0]
        try:
            info = await engine().extract(url)
        except (DownloadError, InvalidInput) as exc:
            raise fail(400, "task_creation_failed", f"no parser can handle {url}: {exc}") from None
        name = sanitize_name(info.title) if info.title and not info.is_playlist else None
        return [TaskSpec(url=url, kind=TaskKind.YTDLP, name=name, folder=folder, options=base)]
    if kind == "tgfiles":
        _params(TgParams, params)
        raise fail(400, "task_creation_failed",
                   "tgfiles needs a Telegram account session; fetchdeck has no Telegram session, "
                   "so it cannot download Telegram messages")
    if kind == "tphpics":
        p = _params(TphParams, params)
        page = _urls([p.telegraph_url], "params.telegraph_url")[0]
        images = await article_images(page)
        if not images:
            raise fail(400, "task_creation_failed", f"no images found at {page}")
        return [TaskSpec(url=u, kind=TaskKind.HTTP, folder=folder, options=base) for u in images]
    if kind == "transfer":
        p = _params(TransferParams, params)
        source = _storage(p.source_storage)
        target = _storage(p.target_storage)
        try:
            src = source_path(source, p.source_path)
        except InvalidInput as exc:
            raise fail(400, "task_creation_failed", str(exc)) from None
        opts = base.model_copy(update={
            "backend": "transfer", "backend_options": {"source": str(src)},
            "storage": target.name, "storage_path": p.target_path,
        })
        url = f"{SCHEME}{source.name}/{p.source_path.strip('/')}"
        return [TaskSpec(url=url, kind=TaskKind.HTTP, name=src.name, folder=task_folder(target, p.target_path),
                         options=opts)]
    raise fail(400, "invalid_request", f"unknown task type {kind!r} (known: {', '.join(SAVEANY_TYPES)})")


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
        raise fail(400, "task_creation_failed", f"cannot read {page}: {why or type(exc).__name__}") from None
    parser = _Images()
    parser.feed(body.decode(encoding, errors="replace"))
    out: dict[str, None] = {}
    for src in parser.sources:
        try:
            url = urljoin(base, src.strip())
            if urlsplit(url).scheme in ("http", "https"):
                out[_urls([url], "img")[0]] = None
        except (CompatError, ValueError):
            continue  # an <img> no download could fetch (no host, a bad IPv6 address...) is skipped, not fatal
    return list(out)


async def create_group(specs: list[TaskSpec]) -> Task:
    """One engine task per spec; the first leads. Members exist before the leader may finish."""
    eng = engine()
    if len(specs) == 1:
        (leader,) = await eng.create(specs, start=True)
        return leader
    (leader,) = await eng.create(specs[:1], start=False)
    members = await eng.create(
        [replace(s, options=s.options.model_copy(update={"group": leader.id, "webhook": None})) for s in specs[1:]],
        start=True,
    )
    await eng.update(leader.id, options=leader.options.model_copy(update={"members": [m.id for m in members]}))
    return await eng.start(leader.id)


# ------------------------------------------------------------------ routes


@saveany.get("/health")
@hide
async def health() -> Response:
    return reply({"status": "ok"})


@saveany.get("/api/v1/storages")
@hide
async def list_storages() -> Response:
    return reply({"storages": [{"name": s.name, "type": s.type} for s in storages().values()]})


@saveany.get("/api/v1/task-types")
@hide
async def task_types() -> Response:
    return reply({"types": list(SAVEANY_TYPES)})


@saveany.post("/api/v1/tasks")
@hide
async def create_task() -> Response:
    raw = await request.get_data(cache=False)
    try:
        body = CreateBody.model_validate_json(raw or b"")
    except ValidationError as exc:
        raise _invalid(exc) from None
    storage = _storage(body.storage)
    webhook = _urls([body.webhook], "webhook")[0] if body.webhook else None
    base = TaskOptions(api_type=body.type if body.type in SAVEANY_TYPES else None, webhook=webhook,
                       storage=storage.name, storage_path=body.path)
    specs = await _build(body, base, task_folder(storage, body.path))
    try:
        leader = await create_group(specs)
    except InvalidInput as exc:
        raise fail(400, "task_creation_failed", str(exc)) from None
    return reply({"task_id": str(leader.id), "type": body.type, "status": "queued",
                  "created_at": iso_z(leader.created_at)}, status=201)


@saveany.get("/api/v1/tasks")
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


async def _leader(raw: str) -> Task:
    task_id = parse_id(raw)
    if task_id is None:
        raise fail(404, "task_not_found", f"task {raw!r} not found")
    try:
        return await engine().get(task_id)
    except LookupError:
        raise fail(404, "task_not_found", f"task {raw!r} not found") from None


@saveany.route("/api/v1/tasks/", methods=["GET", "DELETE"], merge_slashes=False)
@hide
async def missing_id() -> Response:
    raise fail(400, "invalid_request", "task_id is required in the path")


@saveany.get("/api/v1/tasks/<saveany_id:task_id>", merge_slashes=False)
@hide
async def get_task(task_id: str) -> Response:
    leader = await _leader(task_id)
    return reply(task_json(leader, await group_tasks(engine(), leader)))


@saveany.delete("/api/v1/tasks/<saveany_id:task_id>", merge_slashes=False)
@hide
async def cancel_task(task_id: str) -> Response:
    leader = await _leader(task_id)
    eng = engine()
    tasks = await group_tasks(eng, leader)
    status = group_status(tasks)
    if status == "cancelled":  # DELETE is idempotent: cancelling it again changes nothing and is no failure
        return reply({"message": "task cancelled successfully"})
    if status in ("completed", "failed"):
        raise fail(500, "cancel_failed", f"task {task_id} has already {status}; nothing to cancel")
    try:
        for task in tasks:
            if task.status in (TaskStatus.WAITING, TaskStatus.DOWNLOADING):
                await eng.stop(task.id)
    except (IllegalTransition, LookupError) as exc:
        raise fail(500, "cancel_failed", str(exc)) from None
    notifier = server_state().compat.notifier  # type: ignore[attr-defined]
    if notifier is not None:
        await notifier.poke(leader.id)  # a task stopped before it ran sends no stop event
    return reply({"message": "task cancelled successfully"})


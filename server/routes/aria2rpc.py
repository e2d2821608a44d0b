"""The aria2 dialect: aria2's JSON-RPC interface at `/jsonrpc` (POST, and GET with `?method=&id=&params=`),
on its own listener (`--listen aria2=127.0.0.1:6800`), so aria2 front-ends (aria2p, AriaNg, aria2.js)
drive fetchdeck's engine.

Framing, GIDs, status words and result shapes: server/aria2_shapes.py. This module owns the
methods: each one is a command or query on the engine (core/engine.py).

Auth is aria2's `--rpc-secret`: the first param `token:SECRET`, compared with fetchdeck's
`server.token` (the listener asks no header token; a listener with `token = false`, or no
token configured, takes any or no `token:`). A wrong or missing token is code 1 "Unauthorized".
`system.listMethods` and `system.listNotifications` need no token, as in aria2.

aria2.addUri options honoured: dir (folder), out (name), header, referer, user-agent (headers),
split / max-connection-per-server (connections, up to 64), max-download-limit (speed limit),
all-proxy (proxy), pause (added stopped, "paused"). Other options are accepted and ignored.
The URL's kind (http, HLS, DASH, yt-dlp) is the engine's normal detection.

aria2.remove stops the task and marks its GID removed (in this listener's memory: after a
restart it shows as paused). `aria2.removeDownloadResult` / `purgeDownloadResult` delete stopped
(complete, error, removed) tasks from fetchdeck, keeping their files. addTorrent and addMetalink
answer a code-1 error: fetchdeck has no BitTorrent or Metalink.

WebSocket at `/jsonrpc`: the same calls (one text frame per call or batch, answered in one frame,
`token:` as over HTTP), and the notifications, pushed to every connected client with no token
(as aria2 does), for tasks from every dialect, from the engine's typed events (core/events.py):
TaskStarted → onDownloadStart (also on unpause), TaskStopped → onDownloadPause, or onDownloadStop
when aria2.remove stopped it, TaskSucceeded → onDownloadComplete, TaskFailed → onDownloadError.
A call's answer is sent before the notifications it causes, as aria2 orders them.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Blueprint, Response, current_app, request, websocket
from quart_schema import hide

from core.config import parse_size
from core.errors import FetchdeckError, IllegalTransition, InvalidInput, TaskNotFound
from core.events import Event, TaskFailed, TaskStarted, TaskStopped, TaskSucceeded
from core.models import Task, TaskOptions, TaskSpec, TaskStatus
from core.store import TaskFilter
from server import aria2_shapes as shapes
from server.aria2_shapes import Call, RpcError, failed
from server.auth import token_matches
from server.errors import ErrorCode
from server.state import server_state

blueprint = Blueprint("aria2", __name__)
PATH = "/jsonrpc"
REMOVED_KEY = "fetchdeck.aria2.removed"  # app.extensions: the task ids aria2.remove stopped
SESSION_KEY = "fetchdeck.aria2.session"  # app.extensions: getSessionInfo's id
MAX_LIST = 10_000
NO_TOKEN_METHODS = frozenset({"system.listMethods", "system.listNotifications"})
NOTIFICATIONS = ["aria2.onDownloadStart", "aria2.onDownloadPause", "aria2.onDownloadStop",
                 "aria2.onDownloadComplete", "aria2.onDownloadError", "aria2.onBtDownloadComplete"]

NO_CACHE = {"Cache-Control": "no-cache"}
Method = Callable[[list[Any]], Awaitable[Any]]


def owns_path(path: str) -> bool:
    return path == PATH


def render_error(status: int, code: ErrorCode, dialect_code: str | None, message: str,
                 headers: dict[str, str]) -> Response:
    """fetchdeck's own layers' errors (origin, host, body size) as a JSON-RPC error frame; another path
    than /jsonrpc (404, 405) an empty body, as aria2 answers."""
    if status in (404, 405):
        return Response("", status=status, headers={**headers, **NO_CACHE})
    rpc = RpcError(shapes.CODE_FAILED, shapes.MSG_UNAUTHORIZED if code is ErrorCode.UNAUTHORIZED else message)
    return Response(shapes.dumps(shapes.error_frame(None, rpc)), status=status,
                    content_type="application/json-rpc", headers={**headers, **NO_CACHE})


# ------------------------------------------------------------------ transport


@blueprint.route(PATH, methods=["POST", "GET"])
@hide
async def jsonrpc() -> Response:
    if request.method == "GET":
        try:
            body = shapes.decode_get(request.args.get("method"), request.args.get("id"), request.args.get("params"))
        except RpcError as exc:
            return _answer(shapes.error_frame(None, exc), single=True)
    else:
        try:
            raw = await request.get_data(parse_form_data=False)
            body = shapes.decode_json(raw if isinstance(raw, bytes) else raw.encode())
        except RpcError as exc:
            return _answer(shapes.error_frame(None, exc), single=True)
    if isinstance(body, list):
        return _answer([await _one(item) for item in body], single=False)
    return _answer(await _one(body), single=True)


def _answer(frame: Any, *, single: bool) -> Response:
    """A single call's answer with aria2's HTTP status for it; a batch's is always 200."""
    status = shapes.http_status(frame) if single else 200
    return Response(shapes.dumps(frame), status=status, content_type="application/json-rpc", headers=NO_CACHE)


@blueprint.websocket(PATH)
async def jsonrpc_ws() -> None:
    await websocket.accept()
    sub = server_state().engine.subscribe()
    removed = _removed()
    sending = asyncio.Lock()  # held while a call runs, so its answer precedes the notifications it causes

    async def push() -> None:
        while (event := await sub.get()) is not None:
            frame = _notification(event, removed)
            if frame is not None:
                async with sending:
                    await websocket.send(shapes.dumps(frame))

    pusher = asyncio.create_task(push())
    pusher.add_done_callback(lambda t: t.cancelled() or t.exception())  # a failed send ends the loop below
    try:
        while not pusher.done():
            receiving = asyncio.ensure_future(websocket.receive())
            await asyncio.wait((receiving, pusher), return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                receiving.cancel()
                break
            text = receiving.result()
            async with sending:
                await websocket.send(shapes.dumps(await _frame(text if isinstance(text, bytes) else text.encode())))
    finally:
        sub.close()
        pusher.cancel()


def _notification(event: Event, removed: set[int]) -> dict[str, Any] | None:
    payload = event.payload
    if isinstance(payload, TaskStarted):
        method = "aria2.onDownloadStart"
    elif isinstance(payload, TaskStopped):
        method = "aria2.onDownloadStop" if payload.task_id in removed else "aria2.onDownloadPause"
    elif isinstance(payload, TaskSucceeded):
        method = "aria2.onDownloadComplete"
    elif isinstance(payload, TaskFailed):
        method = "aria2.onDownloadError"
    else:
        return None
    return shapes.notification_frame(method, payload.task_id)


async def _frame(raw: bytes) -> Any:
    """The answer frame to one WebSocket message: a call's, a batch's list, or a parse error."""
    try:
        body = shapes.decode_json(raw)
    except RpcError as exc:
        return shapes.error_frame(None, exc)
    if isinstance(body, list):
        return [await _one(item) for item in body]
    return await _one(body)


async def _one(item: Any) -> dict[str, Any]:
    call_id = item.get("id") if isinstance(item, dict) else None
    try:
        call = shapes.call_of(item)
        return shapes.result_frame(call.id, await dispatch(call))
    except RpcError as exc:
        return shapes.error_frame(call_id, exc)


async def dispatch(call: Call) -> Any:
    """Authorize one call and run its method (RpcError on any failure)."""
    method = METHODS.get(call.method)
    if method is None and call.method != "system.multicall":
        raise failed(f"No such method: {call.method}")
    params = call.params
    if call.method != "system.multicall":
        given, params = shapes.take_token(call.params)
        if call.method not in NO_TOKEN_METHODS:
            _authorize(given)
    if method is None:
        return await _multicall(params)
    try:
        return await method(params)
    except TaskNotFound as exc:
        raise shapes.not_found(shapes.gid_of(exc.task_id)) from exc
    except (InvalidInput, IllegalTransition) as exc:
        raise failed(str(exc)) from exc
    except FetchdeckError as exc:
        raise failed(str(exc)) from exc


def _authorize(given: str | None) -> None:
    secret = server_state().policy.token
    if secret and not token_matches(secret, given):
        raise failed(shapes.MSG_UNAUTHORIZED)


async def _multicall(params: list[Any]) -> list[Any]:
    """system.multicall: [[{methodName, params}, ...]] → [[result] | {code, message}, ...]."""
    calls = shapes.param(params, 0, list, required=True)
    out: list[Any] = []
    for entry in calls:
        try:
            if not isinstance(entry, dict) or not isinstance(entry.get("methodName"), str):
                raise failed("system.multicall expected struct.")
            if entry["methodName"] == "system.multicall":
                raise failed("Recursive system.multicall forbidden.")
            inner = entry.get("params", [])
            if not isinstance(inner, list):
                raise failed("Missing params. Expected array.")
            out.append([await dispatch(Call(id=None, method=entry["methodName"], params=inner))])
        except RpcError as exc:
            out.append({"code": exc.code, "message": exc.message})
    return out


# ------------------------------------------------------------------ helpers


def _removed() -> set[int]:
    removed: set[int] = current_app.extensions.setdefault(REMOVED_KEY, set())
    return removed


async def _all_tasks() -> list[Task]:
    engine = server_state().engine
    page = await engine.list_tasks(1, MAX_LIST, TaskFilter(newest_first=False))
    return list(page.items)


async def _task(gid: Any) -> Task:
    engine = server_state().engine
    text = gid if isinstance(gid, str) else ""
    if len(text) == shapes.GID_DIGITS:
        task_id = shapes.parse_gid(gid)
    else:
        shapes.parse_gid(gid)
        task_id = shapes.resolve_gid(gid, [t.id for t in await _all_tasks()])
    try:
        return await engine.get(task_id)
    except TaskNotFound as exc:
        raise shapes.not_found(str(gid)) from exc


def _struct(task: Task, keys: list[str] | None = None) -> dict[str, Any]:
    engine = server_state().engine
    try:
        folder = engine.folder_path(task.folder)
    except InvalidInput:
        folder = engine.download_root
    return shapes.status_struct(task, folder, task.id in _removed(), keys)


def _keys(params: list[Any], index: int) -> list[str] | None:
    keys = shapes.param(params, index, list)
    if keys is None:
        return None
    if not all(isinstance(k, str) for k in keys):
        raise failed(f"The parameter at {index} has wrong type.")
    return list(keys)


async def _in(words: tuple[str, ...]) -> list[Task]:
    """Every task whose aria2 status is one of words: waiting ones in queue order, the others by id."""
    removed = _removed()
    engine = server_state().engine
    flt = TaskFilter(statuses=shapes.statuses_for(words), newest_first=False)
    tasks = list((await engine.list_tasks(1, MAX_LIST, flt)).items)
    queued = {t.id: i for i, t in enumerate(await engine.active())} if "waiting" in words else {}
    chosen = [t for t in tasks if shapes.aria2_status(t, t.id in removed) in words]
    return sorted(chosen, key=lambda t: (queued.get(t.id, len(queued)), t.id))


# ------------------------------------------------------------------ methods


def _headers(options: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    lines = options.get("header", [])
    if isinstance(lines, str):
        lines = [lines]
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise failed("header must be a string or an array of strings")
    headers: list[tuple[str, str]] = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise failed(f"header {line!r} is not 'Name: value'")
        headers.append((name.strip(), value.strip()))
    for option, name in (("referer", "Referer"), ("user-agent", "User-Agent")):
        if isinstance(options.get(option), str) and options[option]:
            headers.append((name, options[option]))
    return tuple(headers)


def _count(options: dict[str, Any], name: str) -> int | None:
    value = options.get(name)
    if value is None:
        return None
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= 64:
        # aria2's message for a bad option value (fetchdeck's range is 1-64; aria2 caps connections at 16)
        raise failed(f"We encountered a problem while processing the option '--{name}'.")
    return int(text)


def _spec(uri: str, options: dict[str, Any]) -> TaskSpec:
    connections = _count(options, "split") or _count(options, "max-connection-per-server")
    limit = options.get("max-download-limit")
    proxy = options.get("all-proxy")
    task_options = TaskOptions(
        connections=connections,
        speed_limit=parse_size(str(limit)) if limit not in (None, "", "0") else None,
        proxy=proxy if isinstance(proxy, str) and proxy else None,
    )
    out = options.get("out")
    folder = options.get("dir")
    return TaskSpec(url=uri, name=out if isinstance(out, str) and out else None,
                    folder=folder if isinstance(folder, str) and folder else None,
                    headers=_headers(options), options=task_options)


async def add_uri(params: list[Any]) -> str:
    uris = shapes.param(params, 0, list, required=True)
    if not uris or not all(isinstance(u, str) for u in uris):
        raise failed("URI is not provided.")
    options = shapes.param(params, 1, dict, {})
    paused = str(options.get("pause", "false")).lower() == "true"
    # aria2 takes mirrors of one file; fetchdeck downloads the first URI.
    tasks = await server_state().engine.create([_spec(uris[0], options)], start=not paused)
    return shapes.gid_of(tasks[0].id)


async def tell_status(params: list[Any]) -> dict[str, Any]:
    return _struct(await _task(shapes.param(params, 0, str, required=True)), _keys(params, 1))


async def tell_active(params: list[Any]) -> list[dict[str, Any]]:
    keys = _keys(params, 0)
    return [_struct(t, keys) for t in await _in(shapes.ACTIVE_WORDS)]


async def tell_waiting(params: list[Any]) -> list[dict[str, Any]]:
    offset, num, keys = shapes.param(params, 0, int, 0), shapes.param(params, 1, int, 0), _keys(params, 2)
    return [_struct(t, keys) for t in shapes.window(await _in(shapes.WAITING_WORDS), offset, num)]


async def tell_stopped(params: list[Any]) -> list[dict[str, Any]]:
    offset, num, keys = shapes.param(params, 0, int, 0), shapes.param(params, 1, int, 0), _keys(params, 2)
    return [_struct(t, keys) for t in shapes.window(await _in(shapes.STOPPED_WORDS), offset, num)]


async def pause(params: list[Any]) -> str:
    task = await _task(shapes.param(params, 0, str, required=True))
    if task.status not in (TaskStatus.WAITING, TaskStatus.DOWNLOADING):
        raise failed(f"GID#{shapes.gid_of(task.id)} cannot be paused now")
    await server_state().engine.stop(task.id)
    return shapes.gid_of(task.id)


async def unpause(params: list[Any]) -> str:
    task = await _task(shapes.param(params, 0, str, required=True))
    if task.status != TaskStatus.STOPPED or task.id in _removed():
        raise failed(f"GID#{shapes.gid_of(task.id)} cannot be unpaused now")
    await server_state().engine.start(task.id)
    return shapes.gid_of(task.id)


async def remove(params: list[Any]) -> str:
    task = await _task(shapes.param(params, 0, str, required=True))
    status = shapes.aria2_status(task, task.id in _removed())
    if status not in ("active", "waiting", "paused"):
        raise failed(f"Active Download not found for GID#{shapes.gid_of(task.id)}")
    _removed().add(task.id)  # before the stop, so its TaskStopped notifies onDownloadStop
    if task.status != TaskStatus.STOPPED:
        try:
            await server_state().engine.stop(task.id)
        except BaseException:
            _removed().discard(task.id)
            raise
    return shapes.gid_of(task.id)


async def pause_all(params: list[Any]) -> str:
    engine = server_state().engine
    for task in await _in(("active", "waiting")):
        try:
            await engine.stop(task.id)
        except (IllegalTransition, TaskNotFound):
            pass  # it finished or went away meanwhile: nothing to pause
    return "OK"


async def unpause_all(params: list[Any]) -> str:
    engine = server_state().engine
    for task in await _in(("paused",)):
        try:
            await engine.start(task.id)
        except (IllegalTransition, TaskNotFound):
            pass
    return "OK"


async def get_files(params: list[Any]) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = _struct(await _task(shapes.param(params, 0, str, required=True)))["files"]
    return files


async def get_uris(params: list[Any]) -> list[dict[str, str]]:
    task = await _task(shapes.param(params, 0, str, required=True))
    if shapes.aria2_status(task, task.id in _removed()) in shapes.STOPPED_WORDS:
        raise failed(f"No URI data is available for GID#{shapes.gid_of(task.id)}")
    uris: list[dict[str, str]] = _struct(task)["files"][0]["uris"]
    return uris


async def remove_download_result(params: list[Any]) -> str:
    """Forget a stopped download: fetchdeck deletes the task (its file stays on disk)."""
    task = await _task(shapes.param(params, 0, str, required=True))
    if shapes.aria2_status(task, task.id in _removed()) not in shapes.STOPPED_WORDS:
        raise failed(f"Could not remove download result of GID#{shapes.gid_of(task.id)}")
    await server_state().engine.delete(task.id, files=False)
    _removed().discard(task.id)
    return "OK"


async def purge_download_result(params: list[Any]) -> str:
    engine = server_state().engine
    for task in await _in(shapes.STOPPED_WORDS):
        try:
            await engine.delete(task.id, files=False)
        except TaskNotFound:
            pass
        _removed().discard(task.id)
    return "OK"


async def get_session_info(params: list[Any]) -> dict[str, str]:
    """A 40-hex session id, one per listener run (aria2 makes one per process start)."""
    session: str = current_app.extensions.setdefault(SESSION_KEY, secrets.token_hex(20))
    return {"sessionId": session}


async def add_torrent(params: list[Any]) -> str:
    raise failed("fetchdeck does not download torrents (aria2.addTorrent); add the files' URLs with aria2.addUri")


async def add_metalink(params: list[Any]) -> str:
    raise failed("fetchdeck does not read Metalink documents (aria2.addMetalink); add the URLs with aria2.addUri")


async def get_global_stat(params: list[Any]) -> dict[str, str]:
    removed = _removed()
    words = [shapes.aria2_status(t, t.id in removed) for t in await _all_tasks()]
    stats = await server_state().engine.stats()
    return shapes.global_stat(
        stats.speed, sum(w in shapes.ACTIVE_WORDS for w in words), sum(w in shapes.WAITING_WORDS for w in words),
        sum(w in shapes.STOPPED_WORDS for w in words),
    )


async def get_version(params: list[Any]) -> dict[str, Any]:
    return shapes.version_struct()


async def list_methods(params: list[Any]) -> list[str]:
    return [*METHODS, "system.multicall"]


async def list_notifications(params: list[Any]) -> list[str]:
    return list(NOTIFICATIONS)


METHODS: dict[str, Method] = {
    "aria2.addUri": add_uri,
    "aria2.remove": remove,
    "aria2.forceRemove": remove,
    "aria2.pause": pause,
    "aria2.forcePause": pause,
    "aria2.unpause": unpause,
    "aria2.tellStatus": tell_status,
    "aria2.tellActive": tell_active,
    "aria2.tellWaiting": tell_waiting,
    "aria2.tellStopped": tell_stopped,
    "aria2.pauseAll": pause_all,
    "aria2.forcePauseAll": pause_all,
    "aria2.unpauseAll": unpause_all,
    "aria2.getFiles": get_files,
    "aria2.getUris": get_uris,
    "aria2.removeDownloadResult": remove_download_result,
    "aria2.purgeDownloadResult": purge_download_result,
    "aria2.getSessionInfo": get_session_info,
    "aria2.addTorrent": add_torrent,
    "aria2.addMetalink": add_metalink,
    "aria2.getGlobalStat": get_global_stat,
    "aria2.getVersion": get_version,
    "system.listMethods": list_methods,
    "system.listNotifications": list_notifications,
}

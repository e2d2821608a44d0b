"""The aria2 dialect: aria2's JSON-RPC interface at `/jsonrpc` (POST, and GET with `?method=&id=&params=`),
on its own listener (`--listen aria2=127.0.0.1:6800`), so aria2 front-ends (aria2p, AriaNg, aria2.js)
drive fetchdeck's engine.

Framing, GIDs, status words and result shapes: server/aria2_shapes.py. This module owns the
methods: each one is a command or query on the engine (core/engine.py).

Auth is aria2's `--rpc-secret`: the first param `token:SECRET`, compared with fetchdeck's
`server.token` (the listener asks no header token; a listener with `token = false`, or no
token configured, takes any or no `token:`). A wrong or missing token is code 1 "Unauthorized".
`system.listMethods` and `system.listNotifications` need no token, as in aria2.

Options (names and value kinds: aria2_shapes.TASK_OPTIONS / GLOBAL_OPTIONS; other names are accepted and
ignored, as aria2 does): addUri and changeOption take dir (folder), out (name), header, referer,
user-agent (headers), split / max-connection-per-server (connections, up to 64), max-download-limit (the
task's speed limit, live while it runs), all-proxy (proxy), checksum (aria2's sha-256=HEX etc.: verified
at the end, a mismatch is an error with errorCode 32); addUri also pause and position (and its third
param). changeOption's dir/out only before the download starts; the others are stored and used from the
task's next run (the speed limit at once). changeGlobalOption: max-concurrent-downloads (the running-task
cap, live), max-overall-download-limit (the global limit, live), split / max-connection-per-server (the
default connections), all-proxy (the default proxy); dir is refused. Neither is written to the config file.
The URL's kind (http, HLS, DASH, yt-dlp) is the engine's normal detection.

The waiting queue aria2 shows (tellWaiting, changePosition, addUri's position) is the engine's queue view
(core/queue.py): waiting and paused tasks in queue order, the order the queue claims them in.

aria2.remove stops the task and marks it removed (TaskOptions.removed, stored: it still reads "removed"
after a restart; starting it again from another dialect clears it). `aria2.removeDownloadResult` /
`purgeDownloadResult` delete stopped (complete, error, removed) tasks from fetchdeck, keeping their files.
saveSession answers OK: fetchdeck's task store is written as things happen. shutdown / forceShutdown stop
`fetchdeck serve` gracefully (downloads left resumable) when `[aria2_rpc] allow_shutdown = true`, else they
are refused. addTorrent and addMetalink answer a code-1 error: fetchdeck has no BitTorrent or Metalink.

WebSocket at `/jsonrpc`: the same calls (one text frame per call or batch, answered in one frame,
`token:` as over HTTP), and the notifications, pushed to every connected client with no token
(as aria2 does), for tasks from every dialect, from the engine's typed events (core/events.py):
TaskStarted → onDownloadStart (also on unpause), TaskStopped → onDownloadPause, or onDownloadStop
when aria2.remove stopped it, TaskSucceeded → onDownloadComplete, TaskFailed → onDownloadError.
A call's answer is sent before the notifications it causes, as aria2 orders them.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from quart import Blueprint, Response, current_app, request, websocket
from quart_schema import hide

from core.engine import Engine
from core.errors import FetchdeckError, IllegalTransition, InvalidInput, TaskNotFound
from core.events import Event, TaskFailed, TaskStarted, TaskStopped, TaskSucceeded
from core.models import Task, TaskOptions, TaskSpec, TaskStatus
from core.store import TaskFilter, TaskPatch
from core.validation import normalize_proxy
from server import aria2_shapes as shapes
from server.aria2_shapes import Call, RpcError, failed
from server.auth import token_matches
from server.errors import ErrorCode
from server.state import server_state

blueprint = Blueprint("aria2", __name__)
PATH = "/jsonrpc"
SESSION_KEY = "fetchdeck.aria2.session"  # app.extensions: getSessionInfo's id
MAX_LIST = 10_000
NO_TOKEN_METHODS = frozenset({"system.listMethods", "system.listNotifications"})
NOTIFICATIONS = ["aria2.onDownloadStart", "aria2.onDownloadPause", "aria2.onDownloadStop",
                 "aria2.onDownloadComplete", "aria2.onDownloadError", "aria2.onBtDownloadComplete"]

NO_CACHE = {"Cache-Control": "no-cache"}
JSONP_TYPE = "text/javascript"  # aria2's content type for a GET with jsoncallback=NAME
JSONP_NAME = re.compile(r"[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*")  # a JavaScript (dotted) name, nothing else
SHUTDOWN_DELAY = 0.2  # seconds between aria2.shutdown's answer and the server stopping (the answer goes out first)
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
        callback = request.args.get("jsoncallback")
        if callback is not None and not JSONP_NAME.fullmatch(callback):
            rpc = RpcError(shapes.CODE_INVALID_REQUEST, shapes.MSG_INVALID_REQUEST)  # no script but a name
            return _answer(shapes.error_frame(None, rpc), single=True)
        try:
            body = shapes.decode_get(request.args.get("method"), request.args.get("id"), request.args.get("params"))
        except RpcError as exc:
            return _answer(shapes.error_frame(None, exc), single=True, callback=callback)
        if isinstance(body, list):
            return _answer([await _one(item) for item in body], single=False, callback=callback)
        return _answer(await _one(body), single=True, callback=callback)
    else:
        try:
            raw = await request.get_data(parse_form_data=False)
            body = shapes.decode_json(raw if isinstance(raw, bytes) else raw.encode())
        except RpcError as exc:
            return _answer(shapes.error_frame(None, exc), single=True)
    if isinstance(body, list):
        return _answer([await _one(item) for item in shapes.batch_items(body)], single=False)
    return _answer(await _one(body), single=True)


def _answer(frame: Any, *, single: bool, callback: str | None = None) -> Response:
    """A single call's answer with aria2's HTTP status for it; a batch's is always 200. callback: JSONP, the
    frame as `NAME(<json>)` in text/javascript, as aria2 answers a GET with jsoncallback=NAME."""
    status = shapes.http_status(frame) if single else 200
    if callback is not None:
        return Response(f"{callback}({shapes.dumps(frame)})", status=status, content_type=JSONP_TYPE,
                        headers=NO_CACHE)
    return Response(shapes.dumps(frame), status=status, content_type="application/json-rpc", headers=NO_CACHE)


@blueprint.websocket(PATH)
async def jsonrpc_ws() -> None:
    await websocket.accept()
    engine = server_state().engine
    sub = engine.subscribe()
    sending = asyncio.Lock()  # held while a call runs, so its answer precedes the notifications it causes

    async def push() -> None:
        while (event := await sub.get()) is not None:
            frame = await _notification(event, engine)
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


async def _notification(event: Event, engine: Engine) -> dict[str, Any] | None:
    payload = event.payload
    if isinstance(payload, TaskStarted):
        method = "aria2.onDownloadStart"
    elif isinstance(payload, TaskStopped):
        try:
            removed = (await engine.get(payload.task_id)).options.removed
        except TaskNotFound:
            removed = True  # removed and its result deleted at once (aria2p's remove)
        method = "aria2.onDownloadStop" if removed else "aria2.onDownloadPause"
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
        return [await _one(item) for item in shapes.batch_items(body)]
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


def _folder(task: Task) -> Path:
    engine = server_state().engine
    try:
        return engine.folder_path(task.folder)
    except InvalidInput:
        return engine.download_root


def _word(task: Task) -> str:
    return shapes.aria2_status(task, task.options.removed)


def _struct(task: Task, keys: list[str] | None = None) -> dict[str, Any]:
    return shapes.status_struct(task, _folder(task), task.options.removed, keys)


def _keys(params: list[Any], index: int) -> list[str] | None:
    keys = shapes.param(params, index, list)
    if keys is None:
        return None
    if not all(isinstance(k, str) for k in keys):
        raise failed(f"The parameter at {index} has wrong type.")
    return list(keys)


async def _in(words: tuple[str, ...]) -> list[Task]:
    """Every task whose aria2 status is one of words: waiting and paused ones in the engine's queue view
    order (the order the queue claims them in), the others by id."""
    engine = server_state().engine
    if words == shapes.WAITING_WORDS:
        return await engine.queue_view()
    flt = TaskFilter(statuses=shapes.statuses_for(words), newest_first=False)
    tasks = list((await engine.list_tasks(1, MAX_LIST, flt)).items)
    return sorted((t for t in tasks if _word(t) in words), key=lambda t: t.id)


# ------------------------------------------------------------------ methods


def _headers(options: shapes.Options, current: tuple[tuple[str, str], ...] = ()) -> tuple[tuple[str, str], ...]:
    """The task's headers with these options applied: `header` replaces the other lines, referer and
    user-agent their own (in `current`, the task's headers now)."""
    own = {"referer": options.referer, "user-agent": options.user_agent}
    kept = [(k, v) for k, v in current if k.lower() in shapes.READ_BACK_HEADERS or options.headers is None]
    headers = [*kept, *(options.headers or ())]
    for name, value in own.items():
        if value is not None:
            headers = [(k, v) for k, v in headers if k.lower() != name]
            if value:
                headers.append((name.title(), value))
    return tuple(headers)


def _proxy(options: shapes.Options) -> str | None:
    if not options.proxy:
        return None
    try:
        return normalize_proxy(options.proxy)
    except InvalidInput as exc:
        raise shapes.option_error("all-proxy") from exc


def _spec(uri: str, options: shapes.Options) -> TaskSpec:
    task_options = TaskOptions(connections=options.connections, speed_limit=options.speed_limit or None,
                               proxy=_proxy(options), checksum=options.checksum)
    return TaskSpec(url=uri, name=options.out or None, folder=options.dir or None, headers=_headers(options),
                    options=task_options)


async def add_uri(params: list[Any]) -> str:
    """[uris, options?, position?]: one task for the first URI (aria2 takes mirrors of one file), queued at
    `position` of the waiting queue (the param, or the position option) when given."""
    uris = shapes.param(params, 0, list, required=True)
    if not uris or not all(isinstance(u, str) for u in uris):
        raise failed("URI is not provided.")
    options = shapes.parse_options(shapes.param(params, 1, dict, {}), shapes.TASK_OPTIONS, 1)
    position = shapes.param(params, 2, int, exact=True)
    if position is not None and position < 0:
        raise failed(shapes.MSG_NEGATIVE_POSITION)
    position = options.position if position is None else position
    engine = server_state().engine
    task = (await engine.create([_spec(uris[0], options)], start=not options.pause))[0]
    if position is not None:
        try:
            await engine.place(task.id, position)
        except IllegalTransition:
            pass  # a free slot took it at once: it is active, not in the waiting queue
    return shapes.gid_of(task.id)


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
    if task.status != TaskStatus.STOPPED or task.options.removed:
        raise failed(f"GID#{shapes.gid_of(task.id)} cannot be unpaused now")
    await server_state().engine.start(task.id)
    return shapes.gid_of(task.id)


async def remove(params: list[Any]) -> str:
    task = await _task(shapes.param(params, 0, str, required=True))
    if _word(task) not in ("active", "waiting", "paused"):
        raise failed(f"Active Download not found for GID#{shapes.gid_of(task.id)}")
    engine = server_state().engine
    # marked (and stored) before the stop, so its TaskStopped notifies onDownloadStop
    marked = await engine.update(task.id, TaskPatch(options=task.options.model_copy(update={"removed": True})))
    if task.status != TaskStatus.STOPPED:
        try:
            await engine.stop(task.id)
        except BaseException:
            await engine.update(task.id, TaskPatch(options=marked.options.model_copy(update={"removed": False})))
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
    if _word(task) in shapes.STOPPED_WORDS:
        raise failed(f"No URI data is available for GID#{shapes.gid_of(task.id)}")
    uris: list[dict[str, str]] = _struct(task)["files"][0]["uris"]
    return uris


async def get_peers(params: list[Any]) -> list[Any]:
    """BitTorrent peers: fetchdeck has no BitTorrent, so none, as aria2c answers for an HTTP download."""
    await _task(shapes.param(params, 0, str, required=True))
    return []


async def remove_download_result(params: list[Any]) -> str:
    """Forget a stopped download: fetchdeck deletes the task (its file stays on disk)."""
    task = await _task(shapes.param(params, 0, str, required=True))
    if _word(task) not in shapes.STOPPED_WORDS:
        raise failed(f"Could not remove download result of GID#{shapes.gid_of(task.id)}")
    await server_state().engine.delete(task.id, files=False)
    return "OK"


async def purge_download_result(params: list[Any]) -> str:
    engine = server_state().engine
    for task in await _in(shapes.STOPPED_WORDS):
        try:
            await engine.delete(task.id, files=False)
        except TaskNotFound:
            pass
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
    words = [_word(t) for t in await _all_tasks()]
    stats = await server_state().engine.stats()
    return shapes.global_stat(
        stats.speed, sum(w in shapes.ACTIVE_WORDS for w in words), sum(w in shapes.WAITING_WORDS for w in words),
        sum(w in shapes.STOPPED_WORDS for w in words),
    )


async def change_position(params: list[Any]) -> int:
    """[gid, pos, how]: move a waiting or paused download in the waiting queue; the index it ends at (an int,
    as aria2 answers). It stays among the tasks of its fetchdeck priority (core/queue.py `placement`)."""
    task = await _task(shapes.param(params, 0, str, required=True))
    pos = shapes.param(params, 1, int, required=True, exact=True)
    how = shapes.param(params, 2, str, required=True)
    if how not in shapes.POS_HOWS:
        raise failed(shapes.MSG_ILLEGAL_ARGUMENT)
    engine = server_state().engine
    ids = [t.id for t in await engine.queue_view()]
    if task.id not in ids:
        raise shapes.not_waiting(shapes.gid_of(task.id))
    try:
        return await engine.place(task.id, shapes.target_index(ids.index(task.id), len(ids), pos, how))
    except IllegalTransition as exc:  # it started (or stopped) meanwhile
        raise shapes.not_waiting(shapes.gid_of(task.id)) from exc


async def change_option(params: list[Any]) -> str:
    """[gid, options]: the honoured options of a download that has not stopped (aria2_shapes.TASK_OPTIONS)."""
    task = await _task(shapes.param(params, 0, str, required=True))
    options = shapes.parse_options(shapes.param(params, 1, dict, required=True), shapes.TASK_OPTIONS, 1)
    gid = shapes.gid_of(task.id)
    word = _word(task)
    if word in shapes.STOPPED_WORDS:
        raise shapes.cannot_change_option(gid)
    patch = TaskPatch()
    for name, value in (("dir", options.dir), ("out", options.out)):
        if value is not None and (word == "active" or task.downloaded):
            raise shapes.started_option(name, gid)  # fetchdeck does not move a file it is writing
    if options.dir is not None:
        patch = patch.merge(TaskPatch(folder=options.dir))
    if options.out:
        patch = patch.merge(TaskPatch(name=options.out))
    update: dict[str, Any] = {}
    if options.connections is not None:
        update["connections"] = options.connections
    if options.speed_limit is not None:
        update["speed_limit"] = options.speed_limit or None  # live: the engine's task limiter takes it at once
    if options.proxy is not None:
        update["proxy"] = _proxy(options)
    if options.checksum is not None:
        update["checksum"] = options.checksum
    if update:
        patch = patch.merge(TaskPatch(options=task.options.model_copy(update=update)))
    if options.headers is not None or options.referer is not None or options.user_agent is not None:
        patch = patch.merge(TaskPatch(headers=_headers(options, task.headers)))
    if patch:
        await server_state().engine.update(task.id, patch)
    return "OK"


async def get_option(params: list[Any]) -> dict[str, str]:
    task = await _task(shapes.param(params, 0, str, required=True))
    connections = task.options.connections or server_state().engine.config.download.connections
    return shapes.task_option_struct(task, _folder(task), connections)


async def change_global_option(params: list[Any]) -> str:
    """[options]: the honoured global options (aria2_shapes.GLOBAL_OPTIONS), in force at once, not saved."""
    options = shapes.parse_options(shapes.param(params, 0, dict, required=True), shapes.GLOBAL_OPTIONS, 0)
    if options.dir is not None:
        raise failed(shapes.MSG_GLOBAL_DIR)
    proxy = _proxy(options) if options.proxy is not None else None  # every value checked before any is set
    engine = server_state().engine
    if options.max_concurrent is not None:
        engine.set_max_concurrent(options.max_concurrent)
    if options.speed_limit is not None:
        engine.set_speed_limit(options.speed_limit or None)
    if options.connections is not None:
        engine.config.download.connections = options.connections  # new runs read it
    if options.proxy is not None:
        engine.config.download.proxy = proxy or ""
    return "OK"


async def get_global_option(params: list[Any]) -> dict[str, str]:
    engine = server_state().engine
    download = engine.config.download
    return shapes.global_option_struct(engine.download_root, download.max_concurrent, engine.limits.normal_rate,
                                       download.connections, download.proxy)


async def get_servers(params: list[Any]) -> list[dict[str, Any]]:
    task = await _task(shapes.param(params, 0, str, required=True))
    if _word(task) != "active":
        raise shapes.not_active(shapes.gid_of(task.id))
    return shapes.servers_struct(task, task.speed)


async def save_session(params: list[Any]) -> str:
    """OK: fetchdeck's task store is written as things happen; there is no session file to save."""
    return "OK"


async def shutdown(params: list[Any]) -> str:
    """Stop the server gracefully (downloads left resumable, tasks kept), if [aria2_rpc] allow_shutdown."""
    state = server_state()
    if not state.config.aria2_rpc.allow_shutdown:
        raise failed(shapes.MSG_SHUTDOWN_REFUSED)
    stop = state.services.on_shutdown
    if stop is None:
        raise failed(shapes.MSG_SHUTDOWN_UNAVAILABLE)
    asyncio.get_running_loop().call_later(SHUTDOWN_DELAY, stop)  # after this answer is sent
    return "OK"


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
    "aria2.getPeers": get_peers,
    "aria2.removeDownloadResult": remove_download_result,
    "aria2.purgeDownloadResult": purge_download_result,
    "aria2.getSessionInfo": get_session_info,
    "aria2.addTorrent": add_torrent,
    "aria2.addMetalink": add_metalink,
    "aria2.changePosition": change_position,
    "aria2.changeOption": change_option,
    "aria2.getOption": get_option,
    "aria2.changeGlobalOption": change_global_option,
    "aria2.getGlobalOption": get_global_option,
    "aria2.getServers": get_servers,
    "aria2.saveSession": save_session,
    "aria2.shutdown": shutdown,
    "aria2.forceShutdown": shutdown,
    "aria2.getGlobalStat": get_global_stat,
    "aria2.getVersion": get_version,
    "system.listMethods": list_methods,
    "system.listNotifications": list_notifications,
}

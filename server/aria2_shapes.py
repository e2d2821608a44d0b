"""aria2's JSON-RPC 2.0 framing and data shapes, pure (no Quart, no engine): what server/routes/aria2rpc.py speaks.

- Framing: `decode_json` (POST body) and `decode_get` (the GET form `?method=&id=&params=`,
  params as base64 of a JSON array; params alone: a batch) give the request; `call_of` checks
  one call; `result_frame`/`error_frame` build the answers, keys in aria2's order. A batch is a
  JSON array answered with an array (HTTP 200, `[]` for `[]`, members that are not objects left
  unanswered: `batch_items`); a single call's HTTP status is
  `http_status` (observed on aria2c 1.36: 400 for code 1 and -32600, 500 for -32700 and -32602).
- Errors (`RpcError`): aria2 answers every method failure with code 1 and a message (a bad
  token: "Unauthorized", an unknown method: "No such method: NAME"); framing errors use
  JSON-RPC's codes (-32700 parse error, -32600 invalid request: no method or no id, -32602
  params not an array). Their codes and messages are the constants below, defined once.
- GIDs: 16 lowercase hex digits; fetchdeck's GID of task N is N in hex, zero-padded
  (`gid_of(10) == "000000000000000a"`), so it is stable across restarts and across dialects.
  A GID prefix that names exactly one task is accepted, as aria2 accepts one.
- Status words: `aria2_status` maps fetchdeck's statuses once: downloading → active,
  waiting → waiting, stopped → paused (unpause resumes it) or removed (after aria2.remove),
  failed → error, success → complete. A failed download's errorCode is aria2's exit code for its
  reason (`FAILURE_CODES`, one table: HTTP 404 → "3", 401 → "24", refused → "1", ...), its errorMessage
  fetchdeck's readable reason.
- Options: the one table of aria2 option names fetchdeck honours (`TASK_OPTIONS`, `GLOBAL_OPTIONS`) and
  their value rules (`parse_options` → `Options`; aria2's `sha-256=HEX` checksums ↔ fetchdeck's
  "sha256=hex"); getOption/getGlobalOption's string structs. changePosition's `target_index`
  (POS_SET / POS_CUR / POS_END).
- Numbers are strings, as aria2 sends them. Pieces are 1 MiB, aria2's default: `bitfield` has one bit
  per piece (the first completedLength/1 MiB set), sent once the size is known, as aria2 does.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import InvalidInput
from core.models import Task, TaskStatus, parse_header_lines

JSONRPC = "2.0"
ARIA2_VERSION = "1.37.0"  # the aria2 release whose interface this dialect follows (clients check it)
ENABLED_FEATURES = ["Async DNS", "GZip", "HTTPS", "Message Digest"]
GID_DIGITS = 16
PIECE_LENGTH = 1 << 20  # aria2's default piece length; numPieces and bitfield are counted in it

# Error codes and messages (aria2: DL_ABORT_EX in a method → code 1; the JSON-RPC framing codes).
CODE_FAILED = 1
CODE_PARSE = -32700
CODE_INVALID_REQUEST = -32600
CODE_INVALID_PARAMS = -32602
MSG_UNAUTHORIZED = "Unauthorized"
MSG_PARSE = "Parse error."
MSG_INVALID_REQUEST = "Invalid Request."
MSG_INVALID_PARAMS = "Invalid params."
_HTTP_STATUS = {CODE_PARSE: 500, CODE_INVALID_PARAMS: 500}  # every other error: 400
MSG_ILLEGAL_ARGUMENT = "Illegal argument."  # changePosition's `how` is none of POS_HOWS
MSG_NEGATIVE_POSITION = "Position must be greater than or equal to 0."  # addUri's position param
MSG_SHUTDOWN_REFUSED = ("fetchdeck refuses aria2.shutdown and aria2.forceShutdown: set allow_shutdown = true in "
                        "the [aria2_rpc] section of its config to let RPC clients stop the server")
MSG_SHUTDOWN_UNAVAILABLE = "this fetchdeck cannot be shut down over RPC (only `fetchdeck serve` can)"
MSG_GLOBAL_DIR = "fetchdeck's download dir is its config's [download] dir; it cannot be changed over RPC"


def option_error(name: str) -> RpcError:
    """aria2's answer to a bad option value (no download is created, nothing is changed)."""
    return failed(f"We encountered a problem while processing the option '--{name}'.")


def not_waiting(gid: str) -> RpcError:
    """changePosition of a download that is not in the waiting queue (active or stopped)."""
    return failed(f"GID#{gid} not found in the waiting queue.")


def not_active(gid: str) -> RpcError:
    """getServers of a download that is not active."""
    return failed(f"No active download for GID#{gid}")


def cannot_change_option(gid: str) -> RpcError:
    """changeOption of a stopped download (complete, error, removed)."""
    return failed(f"Cannot change option for GID#{gid}")


def started_option(name: str, gid: str) -> RpcError:
    """dir/out of a download that has started writing its file: fetchdeck does not move a file mid-way."""
    return failed(f"The option '--{name}' cannot be changed for GID#{gid}: its download has started")


def unsupported_checksum(kind: str) -> RpcError:
    return failed(f"fetchdeck cannot verify a {kind} checksum (it verifies {', '.join(CHECKSUM_KINDS)})")


# Every status word, and which list each belongs to (tellActive / tellWaiting / tellStopped).
ACTIVE_WORDS = ("active",)
WAITING_WORDS = ("waiting", "paused")
STOPPED_WORDS = ("complete", "error", "removed")
ERROR_CODES = {"complete": "0", "error": "1", "removed": "31"}  # aria2's exit codes: 0 ok, 1 unknown, 31 removed
ERROR_CODE_CHECKSUM = "32"  # aria2's exit code for a checksum that did not match
CHECKSUM_MISMATCH = "checksum mismatch"  # how fetchdeck's error for one begins (core/integrity.py ChecksumMismatch)
# A failed download's errorCode: aria2's exit code for fetchdeck's readable reason (the task's `error`, written by
# core/downloaders/net.py describe_error and the downloaders' DownloadErrors); the first pattern found wins,
# none found: "1" (unknown). The HTTP, refused and name-resolution rows are what aria2c 1.36 answers for the same
# failures (404 "3", 401 "24", 503 "29", any other status "22", connection refused "1", no such host "19");
# the others are aria2's documented exit codes (2 time out, 6 network problem, 8 no resume, 9 disk full,
# 32 checksum). errorMessage is fetchdeck's reason itself.
FAILURE_CODES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bHTTP 404\b"), "3"),
    (re.compile(r"\bHTTP 401\b"), "24"),
    (re.compile(r"\bHTTP 503\b"), "29"),
    (re.compile(r"\bHTTP \d{3}\b"), "22"),
    (re.compile(r"^cannot resolve "), "19"),
    (re.compile(r"^connection refused"), "1"),
    (re.compile(r"^timed out"), "2"),
    (re.compile(r"^the connection (was reset|broke off)|^the server closed the connection"), "6"),
    (re.compile(r"^no space left on device"), "9"),
    (re.compile(r"range request|Content-Range"), "8"),
    (re.compile("^" + re.escape(CHECKSUM_MISMATCH)), ERROR_CODE_CHECKSUM),
)
_WORDS: dict[TaskStatus, str] = {
    TaskStatus.DOWNLOADING: "active",
    TaskStatus.WAITING: "waiting",
    TaskStatus.STOPPED: "paused",
    TaskStatus.FAILED: "error",
    TaskStatus.SUCCESS: "complete",
}


def statuses_for(words: tuple[str, ...]) -> frozenset[TaskStatus]:
    """The fetchdeck statuses whose tasks may have one of these aria2 words (removed: stopped ones)."""
    return frozenset(status for status, word in _WORDS.items()
                     if word in words or (word == "paused" and "removed" in words))


class RpcError(Exception):
    """A JSON-RPC error object: `{"code": code, "message": message}`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def failed(message: str) -> RpcError:
    """aria2's error for everything a method refuses: code 1 with a readable message."""
    return RpcError(CODE_FAILED, message)


@dataclass(frozen=True, slots=True)
class Call:
    """One decoded request: its id (echoed back, any JSON value), method name and params array."""

    id: Any
    method: str
    params: list[Any]


# ------------------------------------------------------------------ framing


def decode_json(raw: bytes) -> Any:
    """A request body. A bare number is a parse error, as aria2c 1.36 answers it (its parser takes none at the
    top level); a string, true or null parses and is then an invalid request (`call_of`)."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RpcError(CODE_PARSE, MSG_PARSE) from exc
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise RpcError(CODE_PARSE, MSG_PARSE)
    return value


def batch_items(batch: list[Any]) -> list[Any]:
    """The members of a batch that get an answer: its objects (aria2c answers `[5, "x", null]` with `[]`)."""
    return [item for item in batch if isinstance(item, dict)]


def decode_get(method: str | None, call_id: str | None, params: str | None) -> Any:
    """The GET form aria2 accepts: params is base64 (standard or URL-safe) of a JSON array.
    `method` absent: the params hold a whole batch (aria2's GET batch form)."""
    if method is None and not params:
        raise RpcError(CODE_INVALID_REQUEST, MSG_INVALID_REQUEST)
    decoded: Any = []
    if params:
        text = params.strip()
        try:
            altchars = b"-_" if ("-" in text or "_" in text) else None  # URL-safe base64 too
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=altchars)
        except (binascii.Error, ValueError) as exc:
            raise RpcError(CODE_PARSE, MSG_PARSE) from exc
        decoded = decode_json(raw)
    if method is None:
        return decoded
    return {"jsonrpc": JSONRPC, "method": method, "id": call_id, "params": decoded}


def call_of(item: Any) -> Call:
    """One request object, checked as aria2 checks it: an object with a string method and an id (a call
    without one is refused, not run silently); params, when given, an array. "jsonrpc" is not required."""
    if not isinstance(item, dict):
        raise RpcError(CODE_INVALID_REQUEST, MSG_INVALID_REQUEST)
    method = item.get("method")
    if not isinstance(method, str) or "id" not in item:
        raise RpcError(CODE_INVALID_REQUEST, MSG_INVALID_REQUEST)
    params = item.get("params", [])
    if not isinstance(params, list):
        raise RpcError(CODE_INVALID_PARAMS, MSG_INVALID_PARAMS)
    return Call(id=item.get("id"), method=method, params=params)


def result_frame(call_id: Any, result: Any) -> dict[str, Any]:
    return {"id": call_id, "jsonrpc": JSONRPC, "result": result}


def error_frame(call_id: Any, error: RpcError) -> dict[str, Any]:
    return {"id": call_id, "jsonrpc": JSONRPC, "error": {"code": error.code, "message": error.message}}


def notification_frame(method: str, task_id: int) -> dict[str, Any]:
    """A WebSocket notification as aria2 frames it: no id, params `[{"gid": ...}]`."""
    return {"jsonrpc": JSONRPC, "method": method, "params": [{"gid": gid_of(task_id)}]}


def http_status(frame: Any) -> int:
    """The HTTP status of a single call's answer (a batch's is always 200)."""
    if isinstance(frame, dict) and "error" in frame:
        return _HTTP_STATUS.get(frame["error"]["code"], 400)
    return 200


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ------------------------------------------------------------------ auth and params


def take_token(params: list[Any]) -> tuple[str | None, list[Any]]:
    """The `token:SECRET` first parameter (removed from the params), or None when there is none."""
    if params and isinstance(params[0], str) and params[0].startswith("token:"):
        return params[0][len("token:"):], params[1:]
    return None, params


def param(params: list[Any], index: int, kind: type, default: Any = None, *, required: bool = False,
          exact: bool = False) -> Any:
    """params[index] checked to be of `kind` (missing: default, or aria2's error when required;
    exact: an int must be a JSON integer, not a string of digits, as aria2c checks changePosition's)."""
    if index >= len(params) or params[index] is None:
        if required:
            raise failed(f"The parameter at {index} is required but missing.")
        return default
    value = params[index]
    if kind is int and not exact and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise failed(f"The parameter at {index} has wrong type.")
    return value


# ------------------------------------------------------------------ GIDs


def gid_of(task_id: int) -> str:
    return f"{task_id:0{GID_DIGITS}x}"


def parse_gid(value: Any) -> int:
    """The task id a full GID names (a prefix is resolved by the caller: `resolve_gid`)."""
    if not isinstance(value, str) or not value:
        raise failed("GID is not provided.")
    text = value.lower()
    if len(text) > GID_DIGITS or any(c not in "0123456789abcdef" for c in text):
        raise failed(f"Invalid GID {value}")
    return int(text, 16)


def resolve_gid(value: Any, known_ids: list[int]) -> int:
    """A full GID or a unique prefix of one among known_ids → the task id (aria2's GroupId::expandUnique)."""
    task_id = parse_gid(value)
    text = str(value).lower()
    if len(text) == GID_DIGITS:
        return task_id
    matches = [i for i in known_ids if gid_of(i).startswith(text)]
    if len(matches) > 1:
        raise failed(f"GID {value} is not unique.")
    if not matches:
        raise not_found(str(value))
    return matches[0]


def not_found(gid: str) -> RpcError:
    return failed(f"GID {gid} is not found")


# ------------------------------------------------------------------ shapes


def aria2_status(task: Task, removed: bool) -> str:
    """fetchdeck's status as aria2's word (the one mapping; `removed`: aria2.remove stopped it)."""
    if task.status == TaskStatus.STOPPED and removed:
        return "removed"
    return _WORDS[task.status]


def _path_of(task: Task, folder: Path) -> str:
    if task.file:
        return task.file if os.path.isabs(task.file) else str(folder / task.file)
    return str(folder / task.name) if task.name else ""


def status_struct(task: Task, folder: Path, removed: bool, keys: list[str] | None = None) -> dict[str, Any]:
    """aria2.tellStatus's struct for one task (only `keys` when given, as aria2 does)."""
    status = aria2_status(task, removed)
    total = task.total if task.total is not None else 0
    completed = total if task.status == TaskStatus.SUCCESS and total else task.downloaded
    connections = (task.options.connections or 1) if status == "active" else 0
    path = _path_of(task, folder)
    pieces = -(-total // PIECE_LENGTH) if total else 0
    uri_status = "waiting" if status in WAITING_WORDS and not task.downloaded else "used"
    struct: dict[str, Any] = {
        "gid": gid_of(task.id),
        "status": status,
        "totalLength": str(total),
        "completedLength": str(completed),
        "uploadLength": "0",
        "downloadSpeed": str(int(task.speed)) if status == "active" else "0",
        "uploadSpeed": "0",
        "connections": str(connections),
        "numPieces": str(pieces),
        "pieceLength": str(PIECE_LENGTH),
        "dir": str(folder),
        "files": [{
            "index": "1",
            "path": path,
            "length": str(total),
            "completedLength": str(completed),
            "selected": "true",
            "uris": [{"uri": task.url, "status": uri_status}],
        }],
    }
    if pieces:  # aria2 sends the piece map once the size is known: one bit per piece, hex
        struct["bitfield"] = bitfield(pieces, pieces if completed >= total else completed // PIECE_LENGTH)
    if status in STOPPED_WORDS:  # aria2 sends these for stopped downloads only
        struct["errorCode"] = failure_code(task.error) if status == "error" else ERROR_CODES[status]
        struct["errorMessage"] = (task.error or "download failed") if status == "error" else ""
    if keys:
        return {key: struct[key] for key in keys if key in struct}
    return struct


def failure_code(reason: str | None) -> str:
    """aria2's errorCode for a failed download's reason (FAILURE_CODES; "1" when none matches)."""
    for pattern, code in FAILURE_CODES:
        if reason and pattern.search(reason):
            return code
    return ERROR_CODES["error"]


def bitfield(pieces: int, done: int) -> str:
    """aria2's bitfield: `pieces` bits, the first `done` set, most significant bit first, as hex bytes."""
    value = 0
    nbytes = -(-pieces // 8)
    for index in range(min(done, pieces)):
        value |= 1 << (nbytes * 8 - 1 - index)
    return f"{value:0{nbytes * 2}x}"


def global_stat(speed: float, active: int, waiting: int, stopped: int) -> dict[str, str]:
    return {
        "downloadSpeed": str(int(speed)), "uploadSpeed": "0", "numActive": str(active),
        "numWaiting": str(waiting), "numStopped": str(stopped), "numStoppedTotal": str(stopped),
    }


def version_struct() -> dict[str, Any]:
    return {"version": ARIA2_VERSION, "enabledFeatures": list(ENABLED_FEATURES)}


def window(items: list[Any], offset: int, num: int) -> list[Any]:
    """aria2's (offset, num) window of a list: a negative offset counts from the end, backwards."""
    if num <= 0:
        return []
    if offset >= 0:
        return items[offset:offset + num]
    start = len(items) + offset
    if start < 0:
        return []
    return list(reversed(items[max(0, start - num + 1):start + 1]))


# ------------------------------------------------------------------ queue positions

POS_HOWS = ("POS_SET", "POS_CUR", "POS_END")


def target_index(current: int, length: int, pos: int, how: str) -> int:
    """aria2.changePosition's destination in a waiting queue of `length` (the download now at `current`):
    POS_SET from the start, POS_CUR from where it is, POS_END from the end; clamped to the queue."""
    if how == "POS_SET":
        dest = pos
    elif how == "POS_CUR":
        dest = current + pos
    elif how == "POS_END":
        dest = length - 1 + pos
    else:
        raise failed(MSG_ILLEGAL_ARGUMENT)
    return max(0, min(dest, length - 1))


# ------------------------------------------------------------------ options

# aria2's option names fetchdeck honours, with the kind of value each takes (every other name is accepted and
# ignored, as aria2 ignores names it does not know). TASK: addUri, changeOption, getOption; GLOBAL:
# changeGlobalOption, getGlobalOption. What each does in fetchdeck: server/routes/aria2rpc.py and docs/api.md.
TEXT, COUNT, SIZE, BOOL, HEADER, CHECKSUM, INDEX = "text", "count", "size", "bool", "header", "checksum", "index"
TASK_OPTIONS: dict[str, str] = {
    "dir": TEXT, "out": TEXT, "header": HEADER, "referer": TEXT, "user-agent": TEXT, "split": COUNT,
    "max-connection-per-server": COUNT, "max-download-limit": SIZE, "all-proxy": TEXT, "checksum": CHECKSUM,
    "pause": BOOL, "position": INDEX,
}
GLOBAL_OPTIONS: dict[str, str] = {
    "dir": TEXT, "max-concurrent-downloads": COUNT, "max-overall-download-limit": SIZE, "split": COUNT,
    "max-connection-per-server": COUNT, "all-proxy": TEXT,
}
MAX_COUNT = 64  # fetchdeck's connections and concurrent downloads go to 64 (aria2 caps connections per server at 16)
# aria2's checksum TYPE → fetchdeck's algorithm (core/integrity.py); aria2's sha-224, sha-384, adler32: refused
CHECKSUM_KINDS = {"md5": "md5", "sha-1": "sha1", "sha-256": "sha256", "sha-512": "sha512"}
_HEX_DIGITS = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
_ARIA2_CHECKSUM_KINDS = ("md5", "sha-1", "sha-224", "sha-256", "sha-384", "sha-512", "adler32")
READ_BACK_HEADERS = ("referer", "user-agent")  # headers getOption shows as their own options, not in `header`


@dataclass(frozen=True, slots=True)
class Options:
    """The honoured options of one addUri / changeOption / changeGlobalOption call, parsed (None: not given)."""

    dir: str | None = None
    out: str | None = None
    headers: tuple[tuple[str, str], ...] | None = None  # `header` lines
    referer: str | None = None
    user_agent: str | None = None
    connections: int | None = None  # split, or else max-connection-per-server
    speed_limit: int | None = None  # max-download-limit / max-overall-download-limit in bytes/s, 0: none
    proxy: str | None = None
    checksum: str | None = None  # fetchdeck's "sha256=hex"
    pause: bool | None = None
    position: int | None = None
    max_concurrent: int | None = None


def parse_options(given: Any, table: dict[str, str], index: int) -> Options:
    """An options struct (params[index]) read through `table`: aria2 values are strings, JSON numbers are taken
    too; a bad value is aria2's option error; names not in the table are ignored."""
    if not isinstance(given, dict):
        raise failed(f"The parameter at {index} has wrong type.")
    values: dict[str, Any] = {}
    for name, raw in given.items():
        kind = table.get(name)
        if kind is None:
            continue
        values.update(_option(name, kind, raw, table is GLOBAL_OPTIONS))
    return Options(**values)


def _option(name: str, kind: str, raw: Any, global_: bool) -> dict[str, Any]:
    if kind == HEADER:
        return {"headers": _header_lines(name, raw)}
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise option_error(name)
    text = str(raw).strip()
    field = {"max-download-limit": "speed_limit", "max-overall-download-limit": "speed_limit",
             "split": "connections", "max-connection-per-server": "connections", "all-proxy": "proxy",
             "user-agent": "user_agent", "max-concurrent-downloads": "max_concurrent"}.get(name, name)
    if kind == COUNT:
        if not text.isdigit() or not 1 <= int(text) <= MAX_COUNT:
            raise option_error(name)
        return {field: int(text)}
    if kind == INDEX:
        if not text.isdigit():
            raise option_error(name)
        return {field: int(text)}
    if kind == SIZE:
        return {field: _size(name, text)}
    if kind == BOOL:
        if text not in ("true", "false"):
            raise option_error(name)
        return {field: text == "true"}
    if kind == CHECKSUM:
        return {field: fetchdeck_checksum(text)}
    return {field: text}


def _size(name: str, text: str) -> int:
    """aria2's size: bytes, or with a K/M suffix (1024, 1024²); 0 is no limit."""
    number, scale = text, 1
    if text[-1:] in ("K", "k", "M", "m"):
        number, scale = text[:-1], 1024 if text[-1] in "Kk" else 1024 * 1024
    if not number.isdigit():
        raise option_error(name)
    return int(number) * scale


def _header_lines(name: str, raw: Any) -> tuple[tuple[str, str], ...]:
    """A list of "Name: value" lines, or one string of them (getOption's read-back "A: 1\\nB: 2\\n" included),
    by fetchdeck's one rule for header lines (core/models.py)."""
    if not isinstance(raw, str | list) or not all(isinstance(line, str) for line in raw):
        raise option_error(name)
    try:
        return parse_header_lines(raw)
    except InvalidInput as exc:
        raise option_error(name) from exc


def fetchdeck_checksum(text: str) -> str:
    """aria2's `TYPE=HEX` (sha-256=…, sha-1=…, md5=…; TYPE in any case) → fetchdeck's "sha256=hex"."""
    kind, sep, digest = text.partition("=")
    kind = kind.strip().lower()
    if not sep or kind not in _ARIA2_CHECKSUM_KINDS:
        raise option_error("checksum")
    algorithm = CHECKSUM_KINDS.get(kind)
    if algorithm is None:
        raise unsupported_checksum(kind)
    digest = digest.strip().lower()
    if len(digest) != _HEX_DIGITS[algorithm] or any(c not in "0123456789abcdef" for c in digest):
        raise option_error("checksum")
    return f"{algorithm}={digest}"


def aria2_checksum(checksum: str) -> str:
    """fetchdeck's "sha256=hex" → aria2's "sha-256=hex"."""
    algorithm, _, digest = checksum.partition("=")
    kind = next((k for k, a in CHECKSUM_KINDS.items() if a == algorithm), algorithm)
    return f"{kind}={digest}"


def task_option_struct(task: Task, folder: Path, connections: int) -> dict[str, str]:
    """aria2.getOption's struct for one task: the options fetchdeck honours, every value a string; one that was
    never set is absent, as in aria2 (`connections`: the task's, or the configured default)."""
    struct = {
        "dir": str(folder),
        "split": str(connections),
        "max-connection-per-server": str(connections),
        "max-download-limit": str(task.options.speed_limit or 0),
    }
    if task.name and not task.options.auto_name:  # a name the client gave (aria2 shows `out` only when set)
        struct["out"] = task.name
    lines = [f"{k}: {v}" for k, v in task.headers if k.lower() not in READ_BACK_HEADERS]
    if lines:
        struct["header"] = "".join(f"{line}\n" for line in lines)  # aria2 reads a header list back like this
    for key, value in task.headers:
        if key.lower() in READ_BACK_HEADERS:
            struct[key.lower()] = value
    if task.options.proxy:
        struct["all-proxy"] = task.options.proxy
    if task.options.checksum:
        struct["checksum"] = aria2_checksum(task.options.checksum)
    return dict(sorted(struct.items()))


def global_option_struct(download_dir: Path, max_concurrent: int, speed_limit: int | None, connections: int,
                         proxy: str) -> dict[str, str]:
    """aria2.getGlobalOption's struct: the global options fetchdeck honours, every value a string."""
    struct = {
        "dir": str(download_dir),
        "max-concurrent-downloads": str(max_concurrent),
        "max-overall-download-limit": str(speed_limit or 0),
        "max-download-limit": "0",
        "split": str(connections),
        "max-connection-per-server": str(connections),
    }
    if proxy:
        struct["all-proxy"] = proxy
    return dict(sorted(struct.items()))


def servers_struct(task: Task, speed: float) -> list[dict[str, Any]]:
    """aria2.getServers for an active download: its one file and the server it reads from."""
    return [{"index": "1", "servers": [{"uri": task.url, "currentUri": task.url, "downloadSpeed": str(int(speed))}]}]

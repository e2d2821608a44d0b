"""SaveAny-Bot's wire shapes: its Go structs as their JSON, both ways.

SaveAny-Bot's server (krau/SaveAny-Bot, api/types.go) is Go: what it writes is
`encoding/json` output, what it reads is `encoding/json` decoding into fixed
structs. This module reproduces both for fetchdeck's SaveAny dialect
(server/routes/saveany.py) and its webhooks (server/webhooks.py):

- `go_json`: compact JSON in struct-field order, `<`, `>`, `&`, U+2028/U+2029
  escaped, floats in Go's shortest form (`50`, not `50.0`); `reply()` adds the
  trailing newline `json.Encoder` writes.
- `go_time`: `time.Time` as JSON: RFC 3339 with the fraction's trailing zeros
  trimmed and the server's local offset (`Z` when it is UTC).
- `decode_body` / `decode_struct`: `json.Decoder.Decode` / `json.Unmarshal`
  into a struct of string, []string, map[string]string and json.RawMessage
  fields: unknown keys ignored, keys matched case-insensitively, `null` leaving
  a string alone and clearing a slice or map, and Go's error texts
  (`json: cannot unmarshal number into Go struct field CreateTaskRequest.type
  of type tasktype.TaskType`, `unexpected end of JSON input`, ...).
- `task_json`: an engine task (or a multi-URL group of them) as
  `TaskInfoResponse`, with `TaskProgress`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from core.models import Task, TaskKind, TaskStatus
from server.compat import group_status

SAVEANY_TYPES = ("directlinks", "ytdlp", "aria2", "parseditem", "tgfiles", "tphpics", "transfer")
_KIND_TYPES = {TaskKind.HTTP: "directlinks", TaskKind.HLS: "directlinks", TaskKind.YTDLP: "ytdlp",
               TaskKind.DASH: "directlinks"}
MIB = 1024 * 1024


# ------------------------------------------------------------------ encoding


_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_HTML_RE = re.compile("[<>&\u2028\u2029]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_encode_string = json.JSONEncoder(ensure_ascii=False).encode


def go_float(value: float) -> str:
    """A float64 as encoding/json writes it: shortest round-trip digits, no `.0`, exponent only
    below 1e-6 or from 1e21 on (`1e-07` written `1e-7`)."""
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"json: unsupported value: {value!r}")
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    size = abs(value)
    if 1e-6 <= size < 1e21:
        return format(Decimal(repr(value)).normalize(), "f")
    mantissa, _, exponent = repr(value).partition("e")  # Python: 1e-07, 1.5e+21 (at least two digits)
    if exponent.startswith("-0"):
        exponent = "-" + exponent[2:]  # Go cleans e-07 up to e-7, but keeps e+21
    return f"{mantissa.removesuffix('.0')}e{exponent}"


def _go_string(text: str) -> str:
    text = _SURROGATE_RE.sub("\ufffd", text)  # Go writes invalid UTF-8 as U+FFFD
    return _HTML_RE.sub(lambda m: _HTML_ESCAPES[m.group()], _encode_string(text))


def go_json(value: Any) -> str:
    """value (dicts in field order, lists, str, int, float, bool, None) as encoding/json's Marshal."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_go_string(str(k))}:{go_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def go_time(ts: float) -> str:
    """A Unix time as Go's time.Time JSON (RFC 3339, nanosecond precision, trailing zeros trimmed,
    the server's local offset, `Z` for UTC): `2026-03-11T10:00:00.123456+08:00`."""
    moment = datetime.fromtimestamp(ts).astimezone()
    fraction = f".{moment.microsecond:06d}".rstrip("0") if moment.microsecond else ""
    offset = moment.utcoffset()
    if not offset:
        zone = "Z"
    else:
        minutes = int(offset.total_seconds()) // 60
        sign = "-" if minutes < 0 else "+"
        zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + zone


# ------------------------------------------------------------------ decoding


class GoKind(Enum):
    STRING = "string"
    STRINGS = "[]string"
    STRING_MAP = "map[string]string"
    RAW = "json.RawMessage"


@dataclass(frozen=True, slots=True)
class GoField:
    name: str  # the json tag
    kind: GoKind
    go_type: str = ""  # as Go names it in errors, if not the kind's own name (tasktype.TaskType)

    @property
    def type_name(self) -> str:
        return self.go_type or self.kind.value


@dataclass(frozen=True, slots=True)
class GoStruct:
    name: str  # e.g. "CreateTaskRequest" (package api)
    fields: tuple[GoField, ...]


def _s(name: str, go_type: str = "") -> GoField:
    return GoField(name, GoKind.STRING, go_type)


def _list(name: str) -> GoField:
    return GoField(name, GoKind.STRINGS)


CREATE_TASK_REQUEST = GoStruct("CreateTaskRequest", (
    _s("type", "tasktype.TaskType"), _s("storage"), _s("path"), _s("webhook"), GoField("params", GoKind.RAW),
))
PARAMS: dict[str, GoStruct] = {
    "directlinks": GoStruct("DirectLinksParams", (_list("urls"),)),
    "ytdlp": GoStruct("YTDLPParams", (_list("urls"), _list("flags"))),
    "aria2": GoStruct("Aria2Params", (_list("urls"), GoField("options", GoKind.STRING_MAP))),
    "parseditem": GoStruct("ParsedParams", (_s("url"),)),
    "tgfiles": GoStruct("TGFilesParams", (_list("message_links"),)),
    "tphpics": GoStruct("TPHPicsParams", (_s("telegraph_url"),)),
    "transfer": GoStruct("TransferParams", (
        _s("source_storage"), _s("source_path"), _s("target_storage"), _s("target_path"),
    )),
}


class JsonObject(list[tuple[str, Any]]):
    """A decoded JSON object as its (key, value) pairs, in order, duplicates kept (Go applies each)."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # a RawMessage field the body did not have (Unmarshal of it: "unexpected end of JSON input")


class GoDecodeError(ValueError):
    """What encoding/json would have returned; str() is Go's error text."""


@dataclass(slots=True)
class Decoded:
    """A struct's fields after decoding: str, list[str] (nil: []), dict[str, str] or a raw JSON value."""

    values: dict[str, Any] = field(default_factory=dict)

    def text(self, name: str) -> str:
        return self.values.get(name) or ""

    def texts(self, name: str) -> list[str]:
        return list(self.values.get(name) or [])

    def mapping(self, name: str) -> dict[str, str]:
        return dict(self.values.get(name) or {})


def _json_kind(value: Any) -> str:
    if isinstance(value, JsonObject):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    return "number"


def _reject_constant(name: str) -> Any:
    raise GoDecodeError("invalid character 'I' in numeric literal" if name.startswith("-")
                        else f"invalid character {_quote_char(name[0])} looking for beginning of value")


_DECODER = json.JSONDecoder(object_pairs_hook=JsonObject, parse_constant=_reject_constant)
_GO_SPACE = " \t\r\n"


def _quote_char(char: str) -> str:
    """Go's quoteChar of the byte that starts `char`."""
    code = char.encode("utf-8", "surrogatepass")[0]
    if code == 0x27:
        return "'\\''"
    if code == 0x22:
        return "'\"'"
    escapes = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 0x5C: "\\\\"}
    if code in escapes:
        return f"'{escapes[code]}'"
    text = chr(code)
    if text.isprintable():
        return f"'{text}'"
    return f"'\\x{code:02x}'" if code < 0x80 else f"'\\u{code:04x}'"


def _inside_array(text: str, pos: int) -> bool:
    """Whether the innermost container open at pos is an array (for Go's `after array element`)."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            stack.append(char)
        elif char in "]}" and stack:
            stack.pop()
    return bool(stack) and stack[-1] == "["


def _syntax_error(text: str, exc: json.JSONDecodeError) -> str:
    pos = exc.pos
    if pos >= len(text) or exc.msg.startswith("Unterminated string"):
        return "unexpected EOF"
    char = _quote_char(text[pos])
    if exc.msg.startswith("Expecting property name"):
        return f"invalid character {char} looking for beginning of object key string"
    if exc.msg.startswith("Expecting ':'"):
        return f"invalid character {char} after object key"
    if exc.msg.startswith("Expecting ','"):
        after = "array element" if _inside_array(text, pos) else "object key:value pair"
        return f"invalid character {char} after {after}"
    if exc.msg.startswith("Invalid control character"):
        return f"invalid character {char} in string literal"
    if exc.msg.startswith("Invalid \\escape") or exc.msg.startswith("Invalid \\u"):
        return f"invalid character {char} in string escape code"
    return f"invalid character {char} looking for beginning of value"


def parse_first_value(data: bytes) -> Any:
    """The first JSON value of data, as json.Decoder.Decode reads it (what follows it is not read);
    GoDecodeError with Go's text (`EOF` for an empty body)."""
    text = data.decode("utf-8", errors="replace")
    start = len(text) - len(text.lstrip(_GO_SPACE))
    if start == len(text):
        raise GoDecodeError("EOF")
    try:
        value, _ = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise GoDecodeError(_syntax_error(text, exc)) from None
    except RecursionError:
        raise GoDecodeError("exceeded max depth") from None
    return value


def _field_for(struct: GoStruct, key: str) -> GoField | None:
    for go_field in struct.fields:  # an exact match first, then Go's case-insensitive one
        if go_field.name == key:
            return go_field
    folded = key.lower()
    return next((f for f in struct.fields if f.name == folded), None)


def decode_struct(value: Any, struct: GoStruct) -> Decoded:
    """json.Unmarshal of an already parsed value into struct (the first type error wins, as in Go)."""
    out = Decoded()
    if value is None:
        return out
    if not isinstance(value, JsonObject):
        raise GoDecodeError(f"json: cannot unmarshal {_json_kind(value)} into Go value of type api.{struct.name}")
    first: str | None = None

    def mismatch(item: Any, go_field: GoField, go_type: str) -> None:
        nonlocal first
        if first is None:
            first = (f"json: cannot unmarshal {_json_kind(item)} into Go struct field "
                     f"{struct.name}.{go_field.name} of type {go_type}")

    for key, item in value:
        go_field = _field_for(struct, key)
        if go_field is None:
            continue
        if go_field.kind is GoKind.RAW:
            out.values[go_field.name] = item
        elif go_field.kind is GoKind.STRING:
            if isinstance(item, str):
                out.values[go_field.name] = item
            elif item is not None:
                mismatch(item, go_field, go_field.type_name)
        elif go_field.kind is GoKind.STRINGS:
            if item is None:
                out.values[go_field.name] = []
            elif isinstance(item, list) and not isinstance(item, JsonObject):
                strings = []
                for element in item:
                    if isinstance(element, str) or element is None:
                        strings.append(element or "")
                    else:
                        mismatch(element, go_field, "string")
                        strings.append("")
                out.values[go_field.name] = strings
            else:
                mismatch(item, go_field, go_field.type_name)
        else:  # STRING_MAP: a second object adds to the first, as Go's map decoding does
            if item is None:
                out.values[go_field.name] = {}
            elif isinstance(item, JsonObject):
                mapping = out.values.setdefault(go_field.name, {})
                for map_key, element in item:
                    if isinstance(element, str) or element is None:
                        mapping[map_key] = element or ""
                    else:
                        mismatch(element, go_field, "string")
            else:
                mismatch(item, go_field, go_field.type_name)
    if first is not None:
        raise GoDecodeError(first)
    return out


def decode_body(data: bytes) -> Decoded:
    """A CreateTaskRequest as json.NewDecoder(r.Body).Decode reads it; `params` stays raw (MISSING when absent)."""
    decoded = decode_struct(parse_first_value(data), CREATE_TASK_REQUEST)
    decoded.values.setdefault("params", MISSING)
    return decoded


def decode_params(task_type: str, raw: Any) -> Decoded:
    """json.Unmarshal(req.Params, &params) for the type's params struct."""
    if raw is MISSING:
        raise GoDecodeError("unexpected end of JSON input")
    return decode_struct(raw, PARAMS[task_type])


# ------------------------------------------------------------------ tasks


def type_of(task: Task) -> str:
    """The SaveAny type a task was created as; tasks from other dialects by kind."""
    label = task.options.api_type
    if label in SAVEANY_TYPES:
        return label
    return _KIND_TYPES[task.kind]


def storage_and_path(task: Task) -> tuple[str, str]:
    if task.options.storage:
        return task.options.storage, task.options.storage_path or ""
    return "local", task.folder


def title_of(leader: Task, tasks: list[Task]) -> str:
    """The task's title in the formats of SaveAny-Bot's task types' Title()
    (`[directlinks](file.zip...->local:downloads)`), from what fetchdeck knows now."""
    kind = type_of(leader)
    storage, path = storage_and_path(leader)
    where = f"->{storage}:{path}"
    if kind == "directlinks":
        return f"[directlinks]({leader.name}...{where})"
    if kind == "ytdlp":
        return f"[ytdlp]({leader.url}{where})" if len(tasks) == 1 else f"[ytdlp]({len(tasks)} URLs{where})"
    if kind == "tphpics":
        return f"[tphpics]({len(tasks)} images{where})"
    return f"[{kind}]({leader.name}{where})"


def _size(task: Task) -> int | None:
    if task.total:
        return task.total
    return task.downloaded if task.status is TaskStatus.SUCCESS else None


def progress_json(leader: Task, tasks: list[Task]) -> dict[str, Any] | None:
    """`TaskProgress` of a task (a group: summed over its engine tasks), every field omitted when 0,
    None (no `progress`) unless total_bytes or total_files is above 0.

    total_bytes: the sum of the sizes once every file's is known; total_files/downloaded_files: the
    files of a multi-URL task (and of tphpics, which SaveAny-Bot counts in files) and how many are
    done; percent: by bytes when total_bytes is known, else by files; speed_mbps: the group's live
    download speed in MiB/s while it runs."""
    sizes = [_size(t) for t in tasks]
    total_bytes = sum(s for s in sizes if s) if all(s is not None for s in sizes) else 0
    downloaded_bytes = sum(t.downloaded for t in tasks)
    counted = len(tasks) > 1 or type_of(leader) == "tphpics"
    total_files = len(tasks) if counted else 0
    downloaded_files = sum(t.status is TaskStatus.SUCCESS for t in tasks) if counted else 0
    if total_bytes <= 0 and total_files <= 0:
        return None
    if total_bytes > 0:
        percent = float(downloaded_bytes) * 100 / float(total_bytes)
    else:
        percent = float(downloaded_files) * 100 / float(total_files)
    speed = sum(t.speed for t in tasks if t.status is TaskStatus.DOWNLOADING and t.speed > 0)
    body = {
        "total_bytes": total_bytes,
        "downloaded_bytes": downloaded_bytes,
        "total_files": total_files,
        "downloaded_files": downloaded_files,
        "percent": min(percent, 100.0),
        "speed_mbps": float(speed) / MIB,
    }
    return {key: value for key, value in body.items() if value}


def task_json(leader: Task, tasks: list[Task]) -> dict[str, Any]:
    """`TaskInfoResponse` of a single engine task or a group, in the struct's field order."""
    storage, path = storage_and_path(leader)
    body: dict[str, Any] = {
        "task_id": str(leader.id),
        "type": type_of(leader),
        "status": group_status(tasks),
        "title": title_of(leader, tasks),
    }
    progress = progress_json(leader, tasks)
    if progress is not None:
        body["progress"] = progress
    body["storage"] = storage
    body["path"] = path
    error = next((t.error for t in tasks if t.error), None)
    if error:
        body["error"] = error
    body["created_at"] = go_time(leader.created_at)
    body["updated_at"] = go_time(max(t.updated_at for t in tasks))
    return body

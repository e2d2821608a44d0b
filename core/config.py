"""config.toml: fetchdeck's settings, declared once as typed pydantic models, read and written with tomlkit.

Owns every setting's type, range and default (the section models below: `Field(ge=..., le=...)`), the
layers that fill them, lowest first: defaults < config.toml < FETCHDECK_<SECTION>_<KEY> environment
variables < command-line flags (`Config.override`), and writing the file back with its comments, layout
and unknown keys kept. The loader, the env layer, the flag layer, assignments at run time
(`config.download.max_concurrent = 5`) and the settings screen (`check_value`) all validate through these
declarations; a bad value is one `BadValue` line naming the key and what it takes (`describe`). Unknown
keys are reported through `report` (the log by default; the CLI prints them), never silently dropped.
The URL and proxy rules are core/validation.py's.

No `from __future__ import annotations` here: pydantic would then evaluate every annotation string when
the models are built, on every command's start-up.
"""

import logging
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import tomlkit
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import core_schema
from tomlkit.container import OutOfOrderTableProxy
from tomlkit.items import Table

from core.errors import InvalidInput
from core.locations import default_download_dir
from core.storage import is_s3_url
from core.validation import normalize_proxy, validate_url

if TYPE_CHECKING:
    from core.store.base import HostCaps

log = logging.getLogger("fetchdeck.config")

Report = Callable[[str], None]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_size(value: str | int | float | None) -> int | None:
    """'5M', '500k', '1.5GiB', 1048576 → bytes; 0/''/None → None (unlimited)."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, int | float):
        return int(value) if value > 0 else None
    match = _SIZE.match(value)
    if not match:
        raise InvalidInput(f"not a size: {value!r} (try 5M, 500K, 1048576)")
    number, unit = float(match.group(1)), match.group(2).lower()
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}[unit]
    return int(number * scale) or None


# ---- listeners ([server.listen], --listen) -----------------------------------------------------------

# The API dialects a listener can serve (server/listeners.py): the main listener
# (server.host:server.port) serves mediago plus the non-colliding downie and saveany routes;
# aria2 (JSON-RPC at /jsonrpc) is only ever on its own listener.
DIALECTS = ("mediago", "m3u8", "downie", "saveany", "aria2")


@dataclass(frozen=True, slots=True)
class Listener:
    """One extra listener: `dialect` served on host:port. host "" = the main listener's host.

    token=False: this listener asks no token even when server.token is set (for
    clients that cannot send one, like Downie's); allowed on loopback only.
    """

    dialect: str
    host: str
    port: int
    token: bool = True

    def bind_host(self, main_host: str) -> str:
        return self.host or main_host

    def to_toml(self) -> str | dict[str, Any]:
        address = (f"[{self.host}]" if ":" in self.host else self.host) + f":{self.port}"
        return address if self.token else {"address": address, "token": False}


def parse_address(text: str, where: str) -> tuple[str, int]:
    """'127.0.0.1:8000', 'localhost:8000', '[::1]:8000', ':8000' or '8000' → (host, port); host '' if omitted."""
    value = text.strip()
    host, port_text = "", value
    if value.startswith("["):
        close = value.find("]")
        if close < 0 or not value[close + 1:].startswith(":"):
            raise InvalidInput(f"{where}: {text!r} is not [HOST:]PORT (an IPv6 host is written [::1]:8000)")
        host, port_text = value[1:close], value[close + 2:]
    elif ":" in value:
        host, _, port_text = value.rpartition(":")
        if ":" in host:
            raise InvalidInput(f"{where}: {text!r} is not [HOST:]PORT (an IPv6 host is written [::1]:8000)")
    if not (port_text.isascii() and port_text.isdigit()) or not 0 <= int(port_text) <= 65535:
        raise InvalidInput(f"{where}: {text!r} is not [HOST:]PORT with a port from 0 to 65535")
    if any(c.isspace() or c in "/?#@" for c in host):
        raise InvalidInput(f"{where}: {host!r} is not a host name or address")
    return host, int(port_text)


def _dialect(name: Any, where: str) -> str:
    dialect = str(name).strip().lower()
    if dialect not in DIALECTS:
        raise InvalidInput(f"{where}: unknown dialect {name!r} (known: {', '.join(DIALECTS)})")
    return dialect


def parse_listener(dialect: Any, value: Any, where: str) -> Listener:
    """One `[server.listen]` entry: `downie = "127.0.0.1:8000"` or `downie = { address = "...", token = false }`."""
    name = _dialect(dialect, where)
    token = True
    if isinstance(value, dict):
        unknown = set(value) - {"address", "token"}
        if unknown:
            raise InvalidInput(f"{where}.{name}: unknown key {sorted(unknown)[0]!r} (known: address, token)")
        if "address" not in value:
            raise InvalidInput(f"{where}.{name}: address is required, e.g. \"127.0.0.1:8000\"")
        token = _word_bool(value.get("token", True))
        if not isinstance(token, bool):
            raise InvalidInput(f"{where}.{name}.token: {token!r} is not true or false")
        value = value["address"]
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidInput(f"{where}.{name}: {value!r} is not an address like \"127.0.0.1:8000\"")
    host, port = parse_address(value, f"{where}.{name}")
    return Listener(dialect=name, host=host, port=port, token=token)


def parse_listen_flag(text: str, where: str = "--listen") -> Listener:
    """`DIALECT=[HOST:]PORT[,token=false]` (the --listen flag and FETCHDECK_SERVER_LISTEN entries)."""
    dialect, sep, rest = text.partition("=")
    if not sep:
        raise InvalidInput(f"{where}: {text!r} is not DIALECT=[HOST:]PORT (e.g. downie=127.0.0.1:8000)")
    address, *extras = rest.split(",")
    table: dict[str, Any] = {"address": address}
    for extra in extras:
        key, eq, val = extra.partition("=")
        if key.strip() != "token" or not eq:
            raise InvalidInput(f"{where}: {extra!r} is not an option (only token=false)")
        table["token"] = val.strip()
    return parse_listener(dialect, table, where)


def parse_listen_table(value: Any, where: str) -> dict[str, Listener]:
    """The whole `[server.listen]` table, or the env form 'downie=127.0.0.1:8000 m3u8=8080' (also ';'-separated)."""
    if isinstance(value, str):
        entries = [e for e in re.split(r"[\s;]+", value) if e]
        listeners = [parse_listen_flag(e, where) for e in entries]
        return {listener.dialect: listener for listener in listeners}
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: must be a table, e.g. [server.listen] downie = \"127.0.0.1:8000\"")
    out: dict[str, Listener] = {}
    for dialect, entry in value.items():
        listener = parse_listener(dialect, entry, where)
        out[listener.dialect] = listener
    return out


# ---- value types: how a TOML value or an environment string becomes a setting -----------------------

_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False,
          "": False}


def _word_bool(value: Any) -> Any:
    """'yes', 'off', '' (an environment variable) → a bool; anything else is left for the bool check."""
    return _WORDS.get(value.strip().lower(), value) if isinstance(value, str) else value


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):  # TOML `true` is not a number
        raise ValueError("a bool is not a number")
    return value


def _comma_list(value: Any) -> Any:
    """'a, b' (an environment variable) → ['a', 'b']; a TOML array is left as it is."""
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value


def _size(value: str) -> str:
    parse_size(value)  # raises InvalidInput: not a size
    return value


def _proxy(value: str) -> str:
    normalize_proxy(value)  # the engine's rule (core/validation.py): raises InvalidInput
    return value


def _url(value: str) -> str:
    return validate_url(value) if value else value


def _listen(value: Any) -> dict[str, Listener]:
    if isinstance(value, dict) and all(isinstance(v, Listener) for v in value.values()):
        return value  # already parsed (Config.override with --listen flags)
    return parse_listen_table(value, "server.listen")


class _ListenTable:
    """`server.listen`'s schema: parse_listen_table and nothing else (no schema for Listener's fields)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Callable[[Any], Any]) -> Any:
        return core_schema.no_info_plain_validator_function(_listen)


@dataclass(frozen=True, slots=True)
class Special:
    """A value a number field takes outside its range, with its own meaning (a port of 0: any free port)."""

    value: int
    meaning: str

    def __get_pydantic_core_schema__(self, source: Any, handler: Callable[[Any], Any]) -> Any:
        ranged = handler(source)

        def check(value: Any, inner: Callable[[Any], Any]) -> Any:
            text = value.strip() if isinstance(value, str) else value
            if not isinstance(value, bool) and text in (self.value, str(self.value)):
                return self.value
            return inner(value)

        return core_schema.no_info_wrap_validator_function(check, ranged)


Int = Annotated[int, BeforeValidator(_not_bool)]
Float = Annotated[float, BeforeValidator(_not_bool)]
Bool = Annotated[bool, BeforeValidator(_word_bool)]
TextList = Annotated[list[str], BeforeValidator(_comma_list)]
Size = Annotated[str, AfterValidator(_size)]
Proxy = Annotated[str, AfterValidator(_proxy)]
Url = Annotated[str, AfterValidator(_url)]


def _store_url(value: str) -> str:
    if value and not value.startswith(STORE_SCHEMES):
        raise InvalidInput(f"not a store URL: {value!r} (empty for SQLite, or postgresql://user@host:port/db)")
    return value


STORE_SCHEMES = ("postgresql://", "postgres://")
StoreUrl = Annotated[str, AfterValidator(_store_url)]
Port = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=65535), Special(0, "any free port")]
Listeners = Annotated[dict[str, Listener], _ListenTable()]


# ---- the sections ----------------------------------------------------------------------------------


class BadValue(InvalidInput):
    """A value a setting does not take. `key` is "section.key"; `rule` says what it takes
    ("must be a whole number from 1 to 64", or a rule's own sentence); `reason` adds the value given."""

    def __init__(self, where: str, key: str, rule: str, reason: str) -> None:
        prefix = "" if reason.startswith(key) else f"{key}: "
        super().__init__(f"{where}: {prefix}{reason}" if where else f"{prefix}{reason}")
        self.key = key
        self.rule = rule
        self.reason = reason


class Section(BaseModel):
    """One `[section]` of config.toml. Assignments are validated (and fail as `BadValue`)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, coerce_numbers_to_str=True,
                              str_strip_whitespace=True)
    name: ClassVar[str]

    def __setattr__(self, key: str, value: Any) -> None:
        try:
            super().__setattr__(key, value)
        except ValidationError as exc:
            raise _bad(exc, type(self), {key: value}, "") from None


class DownloadConfig(Section):
    name = "download"

    dir: str = ""
    max_concurrent: Int = Field(default=3, ge=1, le=64)
    connections: Int = Field(default=8, ge=1, le=64)
    segment_threads: Int = Field(default=16, ge=1, le=64)
    retries: Int = Field(default=8, ge=0)
    speed_limit: Size = ""  # e.g. "5M"; empty = unlimited
    proxy: Proxy = ""
    read_timeout: Float = Field(default=30.0, gt=0)
    allowed_roots: TextList = Field(default_factory=list)

    @property
    def download_dir(self) -> Path:
        """The local download dir (with `dir = "s3://…"`, the default one: absolute local folders are under it)."""
        if not self.dir or is_s3_url(self.dir):
            return default_download_dir()
        return Path(self.dir).expanduser()

    @property
    def speed_limit_bytes(self) -> int | None:
        return parse_size(self.speed_limit)


class ServerConfig(Section):
    name = "server"

    enable: Bool = True
    host: str = "127.0.0.1"
    port: Port = 39719
    token: str = ""
    cors_origins: TextList = Field(default_factory=list)
    # Browser extensions (chrome-extension://, moz-extension://, safari-web-extension://) are the
    # user's own software: allowed like cors_origins unless this is false.
    allow_extensions: Bool = True
    allowed_hosts: TextList = Field(default_factory=list)
    max_body_bytes: Int = Field(default=16 * 1024 * 1024, ge=1)
    # Extra listeners, one per dialect ([server.listen], --listen DIALECT=[HOST:]PORT).
    listen: Listeners = Field(default_factory=dict)


class ApiConfig(Section):
    """The compat dialects (m3u8 task API, Downie, SaveAny-Bot) served next to the native API."""

    name = "api"

    enable: Bool = True
    # SaveAny-Bot storages: "name=dir" entries; a relative dir is under the download dir, an
    # absolute one must be inside it or in download.allowed_roots. None given: local = the download dir.
    storages: TextList = Field(default_factory=list)
    webhook_timeout: Float = Field(default=30.0, gt=0)
    webhook_retry_delays: str = "1,2,3"  # seconds before each retry (3 retries)


class Aria2Config(Section):
    """An aria2 JSON-RPC endpoint that SaveAny-Bot `aria2` tasks are handed to."""

    name = "aria2"

    rpc_url: Url = ""  # e.g. http://127.0.0.1:6800/jsonrpc; empty: aria2 tasks are refused
    secret: str = ""
    poll_interval: Float = Field(default=0.5, gt=0)


class UiConfig(Section):
    name = "ui"

    theme: str = "fetchdeck-dark"
    keys: dict[str, str] = Field(default_factory=dict)


class StoreConfig(Section):
    """Where tasks are kept: empty for the SQLite database in the data dir, or postgresql://… shared by nodes."""

    name = "store"

    url: StoreUrl = ""


class ClusterConfig(Section):
    """This node, when several share one PostgreSQL store."""

    name = "cluster"

    node: str = ""  # empty: the host name
    lease_timeout: Float = Field(default=30.0, gt=0)  # seconds without a heartbeat before a node's tasks move

    @property
    def node_name(self) -> str:
        return self.node or socket.gethostname() or "node"


class HostLimitConfig(BaseModel):
    """One `[hosts."NAME"]` table (0: no cap)."""

    model_config = ConfigDict(extra="forbid")

    connections: Int = Field(default=0, ge=0)
    tasks: Int = Field(default=0, ge=0)
    speed: Size = ""  # this node's speed limit for the host, shared by its tasks (core/ratelimit.py); "": none


def host_key(name: str) -> str:
    """A `[hosts."NAME"]` key as the host a URL is counted under (core/store/rows.py host_of): lower case,
    a port or IPv6 brackets dropped ("Example.com:8080" → "example.com", "[::1]:80" → "::1"); "*" stays."""
    key = name.strip().lower().rstrip(".")
    if key.startswith("["):
        return key[1:].partition("]")[0]
    if key.count(":") == 1:  # host:port (a bare IPv6 address has several colons)
        return key.partition(":")[0]
    return key


class HostsConfig(Section):
    """`[hosts."NAME"] connections = N, tasks = M`: caps per remote host across every node; "*" is the default."""

    name = "hosts"
    free_keys: ClassVar[bool] = True  # the table's keys are host names, not settings

    limits: dict[str, HostLimitConfig] = Field(default_factory=dict)

    def caps(self) -> "HostCaps":
        from core.store.base import HostCaps, HostLimit

        limits = {host_key(name): HostLimit(v.connections, v.tasks) for name, v in self.limits.items()}
        return HostCaps(hosts={k: v for k, v in limits.items() if k != "*"}, default=limits.get("*", HostLimit()))

    def speeds(self) -> dict[str, int | None]:
        """Host name (lower case, "*" for the others) → its speed limit in bytes/s, for hosts that set one."""
        return {name.lower(): parse_size(v.speed) for name, v in self.limits.items() if v.speed}



# The one-line text form of the [hosts."NAME"] tables (the TUI settings screen's Hosts field):
# "example.com connections=4 tasks=2 speed=1M; * connections=16". `format_hosts` writes what `parse_hosts` reads.
_HOST_KEYS = tuple(HostLimitConfig.model_fields)


def format_hosts(limits: Mapping[str, HostLimitConfig]) -> str:
    """The hosts' tables on one line, each host with the keys it sets."""
    parts = []
    for name, limit in limits.items():
        values = [f"{key}={getattr(limit, key)}" for key in _HOST_KEYS
                  if getattr(limit, key) != HostLimitConfig.model_fields[key].default]
        parts.append(" ".join([name, *values]))
    return "; ".join(parts)


def parse_hosts(text: str) -> dict[str, HostLimitConfig]:
    """The one-line form back into `[hosts."NAME"]` tables ('' → none), or InvalidInput naming the host and its
    bad part ("host example.com: tasks: 'two' must be a whole number ...")."""
    limits: dict[str, HostLimitConfig] = {}
    parts = [part.strip() for part in text.split(";")]
    if len(parts) == 1 and not parts[0]:
        return limits
    for number, part in enumerate(parts, 1):
        words = part.split()
        if not words:
            raise InvalidInput(f"host {number} is empty (hosts are separated by ';')")
        name, pairs = words[0], words[1:]
        if "=" in name or any(c in name for c in "/?#@,"):
            raise InvalidInput(f"host {number} ({part}): {name!r} is not a host name (e.g. example.com or *)")
        if host_key(name) in {host_key(n) for n in limits}:
            raise InvalidInput(f"host {name}: named twice")
        table: dict[str, str] = {}
        for pair in pairs:
            key, eq, value = pair.partition("=")
            if not eq or key.lower() not in _HOST_KEYS:
                raise InvalidInput(f"host {name}: {pair!r} is not key=value with a key of {', '.join(_HOST_KEYS)}")
            table[key.lower()] = value
        try:
            limits[name] = HostLimitConfig.model_validate(table)
        except ValidationError as exc:
            error = exc.errors()[0]
            key = str(error["loc"][0]) if error["loc"] else ""
            cause = (error.get("ctx") or {}).get("error")
            reason = str(cause) if isinstance(cause, InvalidInput) else error["msg"]
            raise InvalidInput(f"host {name}: {key}: {table.get(key)!r}: {reason}") from None
    return limits

# ---- [[schedule]]: bandwidth windows (core/schedule.py owns what they mean) -------------------------------


def _window_table(value: Any) -> Any:
    """One `[[schedule]]` table's keys checked (InvalidInput), with `from` as the model's `from_`."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"days", "from", "from_", "to", "speed", "pause", "cap"})
        if unknown:
            raise InvalidInput(f"unknown key {unknown[0]!r} (known: days, from, to, speed, pause, cap)")
        for key in ("days", "from", "to"):
            if key not in value and not (key == "from" and "from_" in value):
                raise InvalidInput(f"{key} is required, e.g. days = \"mon-fri\", from = \"08:00\", to = \"18:00\"")
        table = {("from_" if k == "from" else k): v for k, v in value.items()}
        for key in ("days", "from_", "to"):
            if not isinstance(table[key], str):
                raise InvalidInput(f"{'from' if key == 'from_' else key}: {table[key]!r} is not text")
        return table
    return value


class ScheduleWindowConfig(BaseModel):
    """One `[[schedule]]` table: days, from, to and speed or pause, with an optional data cap."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, coerce_numbers_to_str=True,
                              str_strip_whitespace=True)

    days: str
    from_: str = Field(alias="from")
    to: str
    speed: Size = ""  # the global speed limit while in force ("": unlimited)
    pause: Bool = False  # no downloads while in force
    cap: Size = ""  # bytes per window, then it acts as paused until it ends ("": no cap)

    @property
    def speed_bytes(self) -> int | None:
        return parse_size(self.speed)

    @property
    def cap_bytes(self) -> int | None:
        return parse_size(self.cap)


def _windows(value: Any) -> Any:
    from core.schedule import check_window, window_tables

    if isinstance(value, list) and all(isinstance(v, ScheduleWindowConfig) for v in value):
        return value
    out = []
    for number, table in enumerate(window_tables(value), 1):
        try:
            window = ScheduleWindowConfig.model_validate(_window_table(table))
            check_window(window.days, window.from_, window.to, window.pause, window.speed)
            out.append(window)
        except InvalidInput as exc:
            raise InvalidInput(f"window {number}: {exc}") from None
        except ValidationError as exc:
            error = exc.errors()[0]
            key = ".".join(str(p) for p in error["loc"]).replace("from_", "from")
            cause = (error.get("ctx") or {}).get("error")
            reason = str(cause) if isinstance(cause, InvalidInput) else error["msg"]
            raise InvalidInput(f"window {number}: {key}: {reason}") from None
    return out


class ScheduleConfig(Section):
    """`[[schedule]]` tables: weekly windows with a speed limit or a pause (and an optional data cap)."""

    name = "schedule"
    array_of_tables: ClassVar[bool] = True  # the section is an array of tables, not one table of settings

    windows: Annotated[list[ScheduleWindowConfig], BeforeValidator(_windows)] = Field(default_factory=list)


# ---- [policy]: per-host back-off on 429/503 (core/policy.py) ----
class PolicyConfig(Section):
    """How a host that answers 429 or 503 is backed off: its connections halve at once and double again
    after `quiet_seconds` without another 429/503."""

    name = "policy"

    quiet_seconds: Float = Field(default=30.0, gt=0)


class S3Config(BaseModel):
    """`[storage.s3]`: the S3-compatible store; each empty key falls back to the usual AWS_* variable."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    endpoint_url: str = ""  # AWS_ENDPOINT_URL
    region: str = ""  # AWS_REGION
    access_key_id: str = ""  # AWS_ACCESS_KEY_ID
    secret_access_key: str = ""  # AWS_SECRET_ACCESS_KEY


class StorageConfig(Section):
    name = "storage"

    s3: S3Config = Field(default_factory=S3Config)


# ---- events out ([notify], [webhook], [hooks]: core/notify/ delivers them) ---------------------------

OUTCOMES = ("success", "failed")


def _outcomes(value: list[str]) -> list[str]:
    for outcome in value:
        if outcome not in OUTCOMES:
            raise InvalidInput(f"unknown outcome {outcome!r} (known: {', '.join(OUTCOMES)})")
    return value


_APPRISE_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]{0,31}://\S+$")


def check_apprise_url(url: str) -> str:
    """The shape of an Apprise URL (`[notify] urls`, a task's `notify_urls`): SCHEME://… without spaces or
    control characters, at most 2048 characters. Whether Apprise knows the scheme shows at the first send."""
    if len(url) > 2048 or not _APPRISE_SCHEME.match(url) or any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidInput(f"not an Apprise URL: {url[:100]!r} (e.g. ntfy://ntfy.sh/topic, tgram://token/chat)")
    return url


def _apprise_urls(value: list[str]) -> list[str]:
    for url in value:
        check_apprise_url(url)
    return value


def _argv(value: Any) -> Any:
    """A hook's command: a TOML array as it is, or one string split like a shell would (shlex) into one."""
    if isinstance(value, str):
        import shlex

        try:
            return shlex.split(value)
        except ValueError as exc:
            raise InvalidInput(f"not a command line: {exc}") from None
    return value


def _webhook_url(value: str) -> str:
    if value and not value.lower().startswith(("http://", "https://")):
        raise InvalidInput(f"not an http(s) URL: {value!r}")
    return value


Outcomes = Annotated[list[str], BeforeValidator(_comma_list), AfterValidator(_outcomes)]
AppriseUrls = Annotated[list[str], BeforeValidator(_comma_list), AfterValidator(_apprise_urls)]
Argv = Annotated[list[str], BeforeValidator(_argv)]
WebhookUrl = Annotated[str, AfterValidator(_webhook_url)]


class NotifyConfig(Section):
    """`[notify]`: Apprise notifications when a task finishes or fails, and how every delivery is retried."""

    name = "notify"

    urls: AppriseUrls = Field(default_factory=list)  # ntfy://host/topic, tgram://…, mailto://… (Apprise URLs)
    on: Outcomes = Field(default_factory=lambda: list(OUTCOMES))  # which outcomes are notified
    retries: Int = Field(default=3, ge=0, le=20)  # retries after a failed notification or webhook
    retry_delay: Float = Field(default=1.0, gt=0)  # seconds before the first retry, doubled before each next
    timeout: Float = Field(default=10.0, gt=0)  # seconds per notification or webhook attempt
    grace: Float = Field(default=5.0, ge=0)  # seconds pending deliveries get when fetchdeck stops


class WebhookConfig(Section):
    """`[webhook]`: a JSON POST signed with HMAC-SHA256 (X-Fetchdeck-Signature) for every finished task."""

    name = "webhook"

    url: WebhookUrl = ""  # empty: no webhook
    secret: str = ""  # the HMAC key; empty: the body is sent unsigned
    on: Outcomes = Field(default_factory=lambda: list(OUTCOMES))


class HooksConfig(Section):
    """`[hooks]`: a program run after a task finishes (never through a shell; task data as arguments/env)."""

    name = "hooks"

    on_success: Argv = Field(default_factory=list)  # ["program", "arg", "{file}"] or "program arg {file}"
    on_failure: Argv = Field(default_factory=list)
    timeout: Float = Field(default=60.0, gt=0)  # seconds before the program is killed
    retries: Int = Field(default=0, ge=0, le=20)  # a failing hook is run again this many times


class RelinkConfig(Section):
    """Expired links (core/downloaders/refresh.py): how often a task may re-extract its media URLs after a 403/410."""

    name = "relink"

    refreshes: Int = Field(default=3, ge=0)  # per task per window; 0: an expired link fails the task
    window: Float = Field(default=600.0, gt=0)  # seconds


# Cookie jars (core/cookies.py).
class CookiesConfig(Section):
    """`[cookies]`: where the cookie jars every download sends live (one 0600 cookies.txt per domain)."""

    name = "cookies"

    dir: str = ""  # empty: <data dir>/cookies

    def directory(self, data_dir: Path) -> Path:
        return Path(self.dir).expanduser() if self.dir else data_dir / "cookies"


# ---- checksums and disk safety ([integrity]: core/integrity.py) ----------------------------------------


class IntegrityConfig(Section):
    """Checksums and disk safety (core/integrity.py)."""

    name = "integrity"

    sidecar: Bool = True  # look for URL.sha256 when a direct download has no checksum
    space_check: Bool = True  # a task whose size is known waits while it would not fit on its disk
    min_free: Size = ""  # free space kept on the download disk, e.g. "100M"; empty: none
    disk_retry: Float = Field(default=10.0, gt=0)  # seconds between checks of a task waiting for disk space

    @property
    def min_free_bytes(self) -> int:
        return parse_size(self.min_free) or 0


# ---- downloads from the browser (server/files.py) -----------------------------------------------------


class FilesConfig(Section):
    """`[files]`: short-lived signed links that download a finished task's file (the web page's download button)."""

    name = "files"

    enable: Bool = True  # false: no links are made, /files/ serves nothing
    link_ttl: Int = Field(default=600, ge=10, le=7 * 86400)  # seconds a link stays valid


# ---- the aria2 JSON-RPC dialect ([aria2_rpc]: server/routes/aria2rpc.py; [aria2] is the SaveAny aria2 backend) ----


class Aria2RpcConfig(Section):
    """What RPC clients of the aria2 listener may do beyond downloads."""

    name = "aria2_rpc"

    allow_shutdown: Bool = False  # aria2.shutdown / forceShutdown stop `fetchdeck serve` (else they are refused)


# ---- the web page ([web]: server/web.py) -----------------------------------------------------------------


class WebConfig(Section):
    """fetchdeck's web page at /ui/ of the main listener (server/web.py)."""

    name = "web"

    enable: Bool = True  # false: no page (/ and /ui/ answer 404); the API is unchanged


class Config(BaseModel):
    """All sections. Its own schema is built at the first `Config(...)`: loading and layering assemble
    already validated sections (`model_construct`, `model_copy`), so a command's start-up never needs it."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    download: DownloadConfig = Field(default_factory=DownloadConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    aria2: Aria2Config = Field(default_factory=Aria2Config)
    ui: UiConfig = Field(default_factory=UiConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    hosts: HostsConfig = Field(default_factory=HostsConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    cookies: CookiesConfig = Field(default_factory=CookiesConfig)
    relink: RelinkConfig = Field(default_factory=RelinkConfig)
    integrity: IntegrityConfig = Field(default_factory=IntegrityConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    files: FilesConfig = Field(default_factory=FilesConfig)  # downloads from the browser (server/files.py)
    aria2_rpc: Aria2RpcConfig = Field(default_factory=Aria2RpcConfig)  # the aria2 JSON-RPC dialect
    web: WebConfig = Field(default_factory=WebConfig)  # the web page

    def override(self, section: str, **values: Any) -> "Config":
        """A copy with the given non-None values set in `section` (command-line flags), checked like the file's."""
        current: Section = getattr(self, section)
        model = type(current)
        updates = {k: v for k, v in values.items() if v is not None}
        unknown = sorted(set(updates) - set(model.model_fields))
        if unknown:
            raise InvalidInput(f"{section}.{unknown[0]}: no such setting")
        data = {key: getattr(current, key) for key in model.model_fields} | updates
        try:
            replaced = model.model_validate(data)
        except ValidationError as exc:
            raise _bad(exc, model, data, "") from None
        return self.model_copy(update={section: replaced})


SECTIONS: dict[str, type[Section]] = {model.name: model for model in (
    DownloadConfig, ServerConfig, ApiConfig, Aria2Config, UiConfig, StoreConfig, ClusterConfig, HostsConfig,
    StorageConfig)}
SECTIONS.update({model.name: model for model in (NotifyConfig, WebhookConfig, HooksConfig)})  # events out
SECTIONS.update({CookiesConfig.name: CookiesConfig})  # cookie jars
SECTIONS.update({RelinkConfig.name: RelinkConfig})  # expired links
SECTIONS[IntegrityConfig.name] = IntegrityConfig  # checksums and disk safety
SECTIONS.update({ScheduleConfig.name: ScheduleConfig})  # the bandwidth schedule
SECTIONS.update({PolicyConfig.name: PolicyConfig})  # per-host back-off (core/policy.py)
SECTIONS[FilesConfig.name] = FilesConfig  # downloads from the browser (server/files.py)
SECTIONS.update({Aria2RpcConfig.name: Aria2RpcConfig})  # the aria2 JSON-RPC dialect
SECTIONS[WebConfig.name] = WebConfig  # the web page (server/web.py)


# ---- what a field takes, in words --------------------------------------------------------------------

_KINDS: dict[Any, str] = {int: "a whole number", float: "a number", bool: "true or false", str: "text",
                          list[str]: "a list of text", dict[str, str]: "a table of text values"}


def describe(section: str, key: str) -> str:
    """What a setting takes, from its declaration: 'a whole number from 1 to 64', 'a number above 0'."""
    field = SECTIONS[section].model_fields[key]
    text = _KINDS.get(field.annotation, "a valid value")
    bounds = {name: getattr(m, name) for m in field.metadata for name in ("ge", "gt", "le", "lt")
              if getattr(m, name, None) is not None}
    if "ge" in bounds and "le" in bounds:
        text += f" from {bounds['ge']} to {bounds['le']}"
    elif bounds:
        words = {"ge": "of at least", "gt": "above", "le": "of at most", "lt": "below"}
        text += " " + " and ".join(f"{words[name]} {value}" for name, value in bounds.items())
    for special in (m for m in field.metadata if isinstance(m, Special)):
        text += f", or {special.value} for {special.meaning}"
    return text


def _bad(exc: ValidationError, model: type[Section], values: Mapping[str, Any], where: str | Mapping[str, str],
         ) -> BadValue:
    """The first error of a section's validation as one line: where, section.key, what the key takes."""
    error = exc.errors()[0]
    key = str(error["loc"][0]) if error["loc"] else ""
    dotted = model.name if getattr(model, "array_of_tables", False) else f"{model.name}.{key}"
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, InvalidInput):  # a rule with its own sentence (a size, a proxy, a listener, a URL)
        rule = reason = str(cause)
    elif key in model.model_fields:
        rule = f"must be {describe(model.name, key)}"
        reason = f"{rule}, not {values.get(key)!r}"
    else:
        rule = reason = error["msg"]
    place = where if isinstance(where, str) else where.get(key, "")
    return BadValue(place, dotted, rule, reason)


def check_value(section: str, key: str, value: Any) -> Any:
    """`value` as setting `section.key` takes it (e.g. '7' → 7), or `BadValue` saying what it takes."""
    model = SECTIONS[section]
    probe = model.model_construct()
    setattr(probe, key, value)  # a validated assignment: BadValue if refused
    return getattr(probe, key)


# ---- loading: defaults < config.toml < FETCHDECK_* environment variables ------------------------------


def load_config(path: Path, environ: Mapping[str, str] | None = None, *, report: Report | None = None) -> Config:
    """Read config.toml (missing file = defaults), then apply FETCHDECK_<SECTION>_<KEY> env vars.

    Unknown keys (in the file or as FETCHDECK_<SECTION>_* variables) are passed to `report` (default: the
    log) and ignored; a bad value raises `BadValue` naming the file or variable, the key and what it takes.
    """
    warn = report or log.warning
    values: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    where: dict[str, dict[str, str]] = {name: {} for name in SECTIONS}
    if path.exists():
        try:
            document = tomlkit.parse(path.read_text(encoding="utf-8")).unwrap()
        except tomlkit.exceptions.TOMLKitError as exc:
            raise InvalidInput(f"{path}: {exc}") from None
        for name, table in document.items():
            if name not in SECTIONS:
                warn(f"{path}: unknown key {name} (ignored)")
                continue
            if getattr(SECTIONS[name], "array_of_tables", False):  # [[schedule]]: one setting, the whole array
                values[name]["windows"] = table
                where[name]["windows"] = str(path)
                continue
            if not isinstance(table, dict):
                raise InvalidInput(f"{path}: {name} must be a table ([{name}])")
            if getattr(SECTIONS[name], "free_keys", False):  # [hosts."NAME"]: one setting, the whole table
                values[name]["limits"] = table
                where[name]["limits"] = str(path)
                continue
            known = SECTIONS[name].model_fields
            for key, value in table.items():
                if key not in known:
                    warn(f"{path}: unknown key {name}.{key} (ignored)")
                    continue
                values[name][key] = value
                where[name][key] = str(path)
    env = os.environ if environ is None else environ
    for name, model in SECTIONS.items():
        prefix = f"FETCHDECK_{name.upper()}_"
        for var in sorted(v for v in env if v.startswith(prefix)):
            key = var[len(prefix):].lower()
            if key not in model.model_fields:
                warn(f"{var}: unknown key {name}.{key} (ignored)")
                continue
            values[name][key] = env[var]
            where[name][key] = var
    sections: dict[str, Section] = {}
    for name, model in SECTIONS.items():
        try:
            sections[name] = model.model_validate(values[name])
        except ValidationError as exc:
            raise _bad(exc, model, values[name], where[name]) from None
    return Config.model_construct(None, **sections)


# ---- writing: tomlkit keeps the file's comments, layout and unknown keys -----------------------------

_TEMPLATE = """\
# fetchdeck configuration. Environment variables FETCHDECK_<SECTION>_<KEY>
# and command-line flags override what is set here.

[download]
# Where downloads land (empty: the platform's Downloads/fetchdeck folder).
dir = ""
# How many tasks download at once.
max_concurrent = 3
# Connections per direct HTTP download (1-64).
connections = 8
# Segments fetched at once per HLS or DASH download (1-64).
segment_threads = 16
# Retries per request on 5xx, 429, resets, timeouts and short bodies.
retries = 8
# Global speed limit shared by all downloads, e.g. "5M" (empty: unlimited).
speed_limit = ""
# Proxy for all downloads: http://, https:// or socks5:// (empty: none).
proxy = ""

[server]
enable = true
host = "127.0.0.1"
port = 39719
# API token. Required when host is not a loopback address.
token = ""
# Web pages allowed to call the API from a browser (exact origins or patterns).
# Browser extensions (chrome-extension://...) are allowed unless allow_extensions = false.
cors_origins = []

# One listener per dialect, for clients that expect their own server's port
# (dialects: mediago, m3u8, downie, saveany, aria2; token = false only on loopback):
# [server.listen]
# downie = { address = "127.0.0.1:8000", token = false }
# m3u8 = "127.0.0.1:8080"
# aria2 = "127.0.0.1:6800"   # aria2's JSON-RPC at /jsonrpc (AriaNg, aria2p): its secret is server.token

[ui]
theme = "fetchdeck-dark"

# Events out: when a task finishes or fails (every attempt is in the task's log).
# Notifications through Apprise (ntfy, Gotify, Telegram, e-mail, Discord... https://github.com/caronc/Apprise):
# [notify]
# urls = ["ntfy://ntfy.sh/my-downloads"]
# on = ["success", "failed"]
# retries = 3        # then 1, 2, 4 s apart (retry_delay doubled)
# retry_delay = 1.0
# grace = 5          # seconds pending deliveries (running hooks too) get when fetchdeck stops
# A JSON POST for every task from any API, signed X-Fetchdeck-Signature: sha256=HMAC-SHA256(body, secret):
# [webhook]
# url = "https://example.com/fetchdeck"
# secret = "change-me"
# A program run after a task (no shell: "{file}", "{id}", "{name}", "{url}", "{status}" in an argument are
# replaced, the file path is the last argument otherwise; FETCHDECK_TASK_ID, FETCHDECK_FILE, FETCHDECK_NAME,
# FETCHDECK_URL, FETCHDECK_STATUS, FETCHDECK_ERROR in its environment, the JSON report on its stdin):
# [hooks]
# on_success = ["/usr/bin/notify-send", "fetchdeck: done", "{file}"]
# on_failure = "logger -t fetchdeck failed"
# timeout = 60

# Cookie jars every download sends (direct, HLS, yt-dlp); cookies servers set are kept.
# Import with `fetchdeck cookies import cookies.txt` or `--from-browser firefox`.
[cookies]
# Folder of the per-domain cookies.txt files, 0600 (empty: <data dir>/cookies).
dir = ""

# Expired links: an HLS or yt-dlp task whose media URLs answer 403/410 mid-download
# fetches its playlist/page again and goes on with the new URLs, keeping what it has;
# at most `refreshes` times per task in `window` seconds (0: fail at once).
# [relink]
# refreshes = 3
# window = 600

# Checksums and disk safety. A direct download without --checksum looks for URL.sha256 on its server.
# A task whose size is known waits (note "waiting for disk space") while it would not fit.
# [integrity]
# sidecar = true
# space_check = true   # false: no free-space check (a full disk then fails the write)
# min_free = "100M"    # free space always kept on the download disk
# disk_retry = 10      # seconds between checks of a task waiting for disk space

# Bandwidth schedule, local time; the first window in force wins, outside all of them the
# settings above apply. speed = the global limit while in force; pause = true: nothing
# downloads (running tasks resume when it ends); cap = a data cap per window, then paused.
# A window whose `to` is not after its `from` crosses midnight.
# [[schedule]]
# days = "mon-fri"
# from = "08:00"
# to = "18:00"
# speed = "2M"
#
# [[schedule]]
# days = "sat,sun"
# from = "22:00"
# to = "06:00"
# pause = true

# Caps per remote host, shared by all tasks (and all nodes of a shared store); a key is a
# host name or IP, the port ignored; "*" is every other host. 0 = no cap. speed: a limit
# shared by the host's tasks on this node.
# [hosts."example.com"]
# connections = 4
# tasks = 2
# speed = "1M"
# [hosts."*"]
# connections = 16

# Downloads from the browser: the web page's download button asks for a signed link to a
# finished task's file (POST /api/downloads/ID/file-link), valid for link_ttl seconds and
# only for files inside the download roots. enable = false: no links, /files/ serves nothing.
# [files]
# enable = true
# link_ttl = 600

[policy]
# A host that answers 429 or 503 gets half the connections (8 -> 4 -> 2 -> 1) at once,
# and twice as many again after this many seconds without another 429/503.
quiet_seconds = 30

# The aria2 JSON-RPC listener ([server.listen] aria2): AriaNg's and aria2p's shutdown button.
# [aria2_rpc]
# allow_shutdown = false   # true: aria2.shutdown/forceShutdown stop `fetchdeck serve` (tasks kept, resumable)

# The web page at http://HOST:PORT/ui/ of the main listener (the task table in a browser; a
# token set above is asked for once). false: no page, the API alone.
# [web]
# enable = true
"""


def _unwrap(item: Any) -> Any:
    return item.unwrap() if hasattr(item, "unwrap") else item


def _to_toml(value: Any) -> Any:
    if isinstance(value, dict) and any(isinstance(v, Listener) for v in value.values()):
        table = tomlkit.table()
        for key, listener in value.items():
            form = listener.to_toml()
            if isinstance(form, dict):
                inline = tomlkit.inline_table()
                inline.update(form)
                form = inline
            table[key] = form
        return table
    return value


def _same(section: str, key: str, item: Any, value: Any) -> bool:
    """True if the file's item already means `value` (then it is kept as written, with its comment)."""
    try:
        return bool(check_value(section, key, _unwrap(item)) == value)
    except InvalidInput:
        return False


def _save_tables(document: tomlkit.TOMLDocument, config: Config) -> None:
    """`[hosts."NAME"]` and `[[schedule]]`: rewritten only where they no longer mean what the config says (a
    host's table that still does is kept as written, with its comments); none left: the key is removed."""
    found = document.get("schedule")
    try:
        same = found is not None and check_value("schedule", "windows", _unwrap(found)) == config.schedule.windows
    except InvalidInput:
        same = False
    if not same and (found is not None or config.schedule.windows):
        if found is not None:
            del document["schedule"]
        if config.schedule.windows:
            tables = tomlkit.aot()
            for window in config.schedule.windows:
                table = tomlkit.table()
                table.update({"days": window.days, "from": window.from_, "to": window.to})
                for key, value in (("pause", window.pause), ("speed", window.speed), ("cap", window.cap)):
                    if value:
                        table[key] = value
                tables.append(table)
            document["schedule"] = tables
    wanted = config.hosts.limits
    hosts = document.get("hosts")
    if not isinstance(hosts, Table | OutOfOrderTableProxy):
        if not wanted:
            return
        if hosts is not None:
            del document["hosts"]
        hosts = tomlkit.table(is_super_table=True)
        document["hosts"] = hosts
    for name in [n for n in hosts if n not in wanted]:
        del hosts[name]
    for name, limit in wanted.items():
        item = hosts.get(name)
        try:
            if item is not None and HostLimitConfig.model_validate(_unwrap(item)) == limit:
                continue
        except ValidationError:
            pass
        table = tomlkit.table()
        for key in _HOST_KEYS:
            if getattr(limit, key) != HostLimitConfig.model_fields[key].default:
                table[key] = getattr(limit, key)
        hosts[name] = table
    if not wanted:
        del document["hosts"]


def save_config(path: Path, config: Config) -> None:
    """Write config back, keeping the file's comments, layout and unknown keys (tomlkit)."""
    if path.exists():
        document = tomlkit.parse(path.read_text(encoding="utf-8"))
    else:
        document = tomlkit.parse(_TEMPLATE)
    _save_tables(document, config)
    for name, model in SECTIONS.items():
        if getattr(model, "free_keys", False) or getattr(model, "array_of_tables", False):
            continue  # [hosts."NAME"] and [[schedule]] tables: _save_tables
        section: Section = getattr(config, name)
        found = document.get(name)
        table = found if isinstance(found, Table | OutOfOrderTableProxy) else None
        for key, field in model.model_fields.items():
            value = getattr(section, key)
            if table is None or key not in table:
                if value == field.get_default(call_default_factory=True):
                    continue  # don't litter the file with defaults
            elif _same(name, key, table[key], value):
                continue  # unchanged: keep the item (and its comment) as it is
            if table is None:
                table = tomlkit.table()
                document[name] = table
            table[key] = _to_toml(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(tomlkit.dumps(document), encoding="utf-8")
    tmp.replace(path)


def ensure_config_file(path: Path) -> None:
    """Create a commented config.toml on first run so users have something to edit."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_TEMPLATE, encoding="utf-8")

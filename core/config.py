"""config.toml: typed settings, read and written with tomlkit (comments kept).

Precedence, lowest first: defaults < config.toml < FETCHDECK_<SECTION>_<KEY>
environment variables < command-line flags (`Config.override`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

import tomlkit
from tomlkit.items import Table

from core.errors import InvalidInput
from core.locations import default_download_dir

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


@dataclass(slots=True)
class DownloadConfig:
    dir: str = ""
    max_concurrent: int = 3
    connections: int = 8
    segment_threads: int = 16
    retries: int = 8
    speed_limit: str = ""  # e.g. "5M"; empty = unlimited
    proxy: str = ""
    read_timeout: float = 30.0
    allowed_roots: list[str] = field(default_factory=list)

    @property
    def download_dir(self) -> Path:
        return Path(self.dir).expanduser() if self.dir else default_download_dir()

    @property
    def speed_limit_bytes(self) -> int | None:
        return parse_size(self.speed_limit)


# The API dialects a listener can serve (server/listeners.py): the main listener
# (server.host:server.port) serves mediago plus the non-colliding downie and saveany routes.
DIALECTS = ("mediago", "m3u8", "downie", "saveany")


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
        token = _coerce(value.get("token", True), bool, f"{where}.{name}.token")
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


@dataclass(slots=True)
class ServerConfig:
    enable: bool = True
    host: str = "127.0.0.1"
    port: int = 39719
    token: str = ""
    cors_origins: list[str] = field(default_factory=list)
    # Browser extensions (chrome-extension://, moz-extension://, safari-web-extension://) are the
    # user's own software: allowed like cors_origins unless this is false.
    allow_extensions: bool = True
    allowed_hosts: list[str] = field(default_factory=list)
    max_body_bytes: int = 16 * 1024 * 1024
    # Extra listeners, one per dialect ([server.listen], --listen DIALECT=[HOST:]PORT).
    listen: dict[str, Listener] = field(default_factory=dict)


@dataclass(slots=True)
class ApiConfig:
    """The compat dialects (m3u8 task API, Downie, SaveAny-Bot) served next to the native API."""

    enable: bool = True
    # SaveAny-Bot storages: "name=dir" entries; a relative dir is under the download dir, an
    # absolute one must be inside it or in download.allowed_roots. None given: local = the download dir.
    storages: list[str] = field(default_factory=list)
    webhook_timeout: float = 30.0
    webhook_retry_delays: str = "1,2,3"  # seconds before each retry (3 retries)


@dataclass(slots=True)
class Aria2Config:
    """An aria2 JSON-RPC endpoint that SaveAny-Bot `aria2` tasks are handed to."""

    rpc_url: str = ""  # e.g. http://127.0.0.1:6800/jsonrpc; empty: aria2 tasks are refused
    secret: str = ""
    poll_interval: float = 0.5


@dataclass(slots=True)
class UiConfig:
    theme: str = "fetchdeck-dark"
    keys: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Config:
    download: DownloadConfig = field(default_factory=DownloadConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    aria2: Aria2Config = field(default_factory=Aria2Config)
    ui: UiConfig = field(default_factory=UiConfig)

    def override(self, section: str, **values: Any) -> Config:
        """A copy with the given non-None values set (command-line flags)."""
        current = getattr(self, section)
        updates = {k: v for k, v in values.items() if v is not None}
        return replace(self, **{section: replace(current, **updates)})


SECTIONS = {f.name: f for f in fields(Config)}


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    kind = annotation if isinstance(annotation, type) else getattr(annotation, "__origin__", None)
    try:
        if kind is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            return str(value)
        if kind is list:
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            return [str(v) for v in value]
        if kind is dict:
            return {str(k): str(v) for k, v in dict(value).items()}
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: {value!r} is not a valid {getattr(kind, '__name__', kind)}") from None
    return value


_SPECIAL: dict[tuple[str, str], Any] = {("server", "listen"): parse_listen_table}


def _apply(section_obj: Any, values: dict[str, Any], where: str, section: str) -> None:
    hints = get_type_hints(type(section_obj))
    for key, value in values.items():
        if key not in hints:
            continue  # unknown keys are kept in the file, ignored here
        parse = _SPECIAL.get((section, key))
        parsed = parse(value, f"{where}.{key}") if parse else _coerce(value, hints[key], f"{where}.{key}")
        setattr(section_obj, key, parsed)


def load_config(path: Path, environ: dict[str, str] | None = None) -> Config:
    """Read config.toml (missing file = defaults), then apply FETCHDECK_* env vars."""
    config = Config()
    if path.exists():
        try:
            document = tomlkit.parse(path.read_text(encoding="utf-8"))
        except tomlkit.exceptions.TOMLKitError as exc:
            raise InvalidInput(f"{path}: {exc}") from None
        for name in SECTIONS:
            table = document.get(name)
            if isinstance(table, dict):
                _apply(getattr(config, name), table.unwrap() if hasattr(table, "unwrap") else table, name, name)
    env = os.environ if environ is None else environ
    for name in SECTIONS:
        section_obj = getattr(config, name)
        prefix = f"FETCHDECK_{name.upper()}_"
        values = {k[len(prefix):].lower(): v for k, v in env.items() if k.startswith(prefix)}
        _apply(section_obj, values, f"${prefix}*", name)
    return config


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
# Segments fetched at once per HLS download (1-64).
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
# (dialects: mediago, m3u8, downie, saveany; token = false only on loopback):
# [server.listen]
# downie = { address = "127.0.0.1:8000", token = false }
# m3u8 = "127.0.0.1:8080"

[ui]
theme = "fetchdeck-dark"
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


def save_config(path: Path, config: Config) -> None:
    """Write config back, keeping the file's comments and layout (tomlkit)."""
    if path.exists():
        document = tomlkit.parse(path.read_text(encoding="utf-8"))
    else:
        document = tomlkit.parse(_TEMPLATE)
    for name in SECTIONS:
        section_obj = getattr(config, name)
        table = document.get(name)
        if not isinstance(table, Table):
            table = tomlkit.table()
            document[name] = table
        for f in fields(section_obj):
            value = getattr(section_obj, f.name)
            default = getattr(type(section_obj)(), f.name)
            if f.name not in table and value == default:
                continue  # don't litter the file with defaults
            parse = _SPECIAL.get((name, f.name))
            if f.name in table and (table[f.name] == value or (
                    parse is not None and parse(_unwrap(table[f.name]), f.name) == value)):
                continue  # unchanged: keep the item (and its comment) as it is
            table[f.name] = _to_toml(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(tomlkit.dumps(document), encoding="utf-8")
    tmp.replace(path)


def ensure_config_file(path: Path) -> None:
    """Create a commented config.toml on first run so users have something to edit."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_TEMPLATE, encoding="utf-8")

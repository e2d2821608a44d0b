"""The input rules every entry point shares: URLs, proxies, folders, header names, control characters.

Each rule is written here once. The engine applies them to what it stores; the
API dialects and the settings screen call the same functions to name the bad
field in their own error format. Every function raises `InvalidInput` with a
sentence a person can read.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from core.errors import InvalidInput
from core.naming import resolve_folder, sanitize_folder
from core.storage import S3Location, is_s3_url

# Control characters, line/paragraph separators, lone surrogates: never part of a URL, header or name.
CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token


def has_control_chars(text: str, allowed: str = "") -> bool:
    """True if text holds a control character (other than those in `allowed`)."""
    return any(c not in allowed and unicodedata.category(c) in CONTROL_CATEGORIES for c in text)


def is_header_name(name: str) -> bool:
    return HEADER_NAME.fullmatch(name) is not None


def validate_url(url: str) -> str:
    """The URL to store: an http(s) URL with a valid host, no spaces or control characters."""
    text = (url or "").strip()
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises on a bad port
    except ValueError as exc:
        raise InvalidInput(f"invalid URL {url!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"invalid URL {url!r}: only http:// and https:// URLs with a host are accepted")
    if " " in text or has_control_chars(text):
        # urlsplit silently drops tabs and newlines; the URL would still carry them
        raise InvalidInput(f"invalid URL {url!r}: contains spaces or control characters")
    host = parts.hostname
    import httpx  # lazily: this module is on every command's import path

    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:  # what the resolver will be asked for: "a..b" or a 64-byte label never resolves
            host.encode("idna")
            _ = httpx.URL(text).host  # httpx decodes punycode here
        except (UnicodeError, ValueError, httpx.InvalidURL):
            raise InvalidInput(f"invalid URL {url!r}: {host!r} is not a valid host name") from None
    return text


def normalize_proxy(proxy: str | None) -> str | None:
    """Validate a proxy URL and percent-encode its credentials.

    Credentials may be typed raw (`http://me@home:p:ss/w@host:3128`): everything
    before the last '@' is user[:password], split at the first ':'.
    """
    if not proxy:
        return None
    scheme, sep, rest = proxy.strip().partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https", "socks5", "socks5h", "socks4"):
        raise InvalidInput(f"proxy {proxy!r}: must look like http://, https:// or socks5://host:port")
    creds, at, hostport = rest.rpartition("@")
    hostport = hostport.rstrip("/")
    try:
        parts = urlsplit(f"{scheme}://{hostport}")
        port = parts.port
    except ValueError:
        raise InvalidInput(f"proxy {proxy!r}: bad host or port") from None
    if not parts.hostname or parts.path not in ("", "/"):
        raise InvalidInput(f"proxy {proxy!r}: no host")
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port:
        netloc = f"{netloc}:{port}"
    if at:
        user, colon, password = creds.partition(":")
        encoded = quote(unquote(user), safe="")
        if colon:
            encoded += ":" + quote(unquote(password), safe="")
        netloc = f"{encoded}@{netloc}"
    scheme = "socks5" if scheme == "socks5h" else scheme
    return urlunsplit((scheme, netloc, "", "", ""))


def check_folder(folder: str | None, download_root: Path, allowed_roots: Iterable[Path]) -> str:
    """The folder to store: "" (the download root), a clean relative path, an allowed absolute one, or an
    `s3://bucket/prefix` (normalized; InvalidInput if malformed)."""
    if not folder:
        return ""
    if is_s3_url(folder):
        return S3Location.parse(folder).url
    if Path(folder).is_absolute():
        resolve_folder(download_root, folder, tuple(allowed_roots))  # raises if outside
        return str(Path(folder).resolve())
    return sanitize_folder(folder)

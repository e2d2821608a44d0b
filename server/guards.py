"""Request guards that keep a web page from driving a fetchdeck on 127.0.0.1, and keep the token out of logs.

Installed app-wide by `install_guards(app)` (after the host/token/preflight
guard in server/app.py), so every route of every dialect gets them:

- Origin: a request carrying an `Origin` (every cross-origin fetch/XHR/form
  POST, EventSource, WebSocket) is served only if that origin is the API's own
  (same scheme-less host:port as the Host header), on `server.cors_origins`, or
  a browser extension's (server/auth.py).
  Without an Origin, `Sec-Fetch-Site: cross-site|same-site` (an <img>/<script>
  /<form> from another site; `same-site` covers other ports on localhost) is
  refused too, except for a plain top-level GET navigation; with
  `server.allow_extensions = false`, so is `Sec-Fetch-Site: none` outside a
  navigation (an extension's GETs carry no Origin). → 403, code 40301.
- Content-Type: a request with a body from a browser (it carries `Origin` or
  `Sec-Fetch-Site`) must say `application/json` (or `application/*+json`): the
  three types a browser sends without a CORS preflight (text/plain,
  form-urlencoded, multipart) never reach a route. → 415. A request from no
  browser (curl -d, requests.post(data=...)) is parsed as JSON whatever its
  Content-Type says, as the real servers of every dialect do.
- WebSockets get the Host, token and Origin checks too (browsers let any page
  open a WebSocket to any host; CORS does not apply to them).
- Logging: the configured token, `token=` query values, Bearer and X-API-Key
  values are replaced by `[REDACTED]` in every log record of the process.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import urlsplit

from quart import Quart, Request, Response, Websocket, request, websocket

from server.auth import AccessPolicy
from server.errors import ApiError, ErrorCode
from server.state import server_state, state_of

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REDACTED = "[REDACTED]"
_JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json$", re.IGNORECASE)


# ---- origin -----------------------------------------------------------------


def same_origin(origin: str, host_header: str) -> bool:
    """The page was served by this very server (its own docs page, or a client on the same host:port)."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    default = "80" if parts.scheme == "http" else "443"
    netloc = parts.netloc.lower()
    host = host_header.strip().lower()
    if host == netloc:
        return True
    # "http://h" and "Host: h:80" name the same server.
    return netloc + ":" + default == host or host + ":" + default == netloc


def check_origin(req: Request | Websocket, policy: AccessPolicy) -> None:
    origin = req.headers.get("Origin")
    host = req.headers.get("Host", "")
    if origin is not None:
        if policy.origin_allowed(origin) or same_origin(origin, host):
            return
        raise ApiError(403, ErrorCode.FORBIDDEN_ORIGIN,
                       f"requests from the web page origin {origin[:100]!r} are not allowed; "
                       "add it to server.cors_origins to let that page use the API")
    site = req.headers.get("Sec-Fetch-Site", "").lower()
    if site == "none" and not policy.allow_extensions and req.headers.get("Sec-Fetch-Mode", "").lower() != "navigate":
        # Not typed by a person (that is a navigation): an extension's GET, which carries no Origin.
        raise ApiError(403, ErrorCode.FORBIDDEN_ORIGIN,
                       "requests from browser extensions are not allowed (server.allow_extensions = false)")
    if site in ("cross-site", "same-site"):
        navigation = req.method in ("GET", "HEAD") and req.headers.get("Sec-Fetch-Mode", "").lower() == "navigate"
        if not navigation:
            raise ApiError(403, ErrorCode.FORBIDDEN_ORIGIN,
                           f"a {site} request from a web page is not allowed (no allowed Origin)")


# ---- content type -------------------------------------------------------------


def has_body(req: Request) -> bool:
    length = req.headers.get("Content-Length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "chunked" in req.headers.get("Transfer-Encoding", "").lower()


def is_json_type(value: str | None) -> bool:
    return bool(value) and bool(_JSON_TYPE.match((value or "").split(";", 1)[0].strip()))


def from_browser(req: Request | Websocket) -> bool:
    """Browsers send Origin on every cross-origin and every non-GET request, and Sec-Fetch-Site on all
    (Chrome 76+, Firefox 90+, Safari 16.4+); other clients send neither."""
    return "Origin" in req.headers or "Sec-Fetch-Site" in req.headers


def check_content_type(req: Request) -> None:
    if req.method not in BODY_METHODS or not from_browser(req):
        return
    content_type = req.headers.get("Content-Type")
    if has_body(req) or content_type is not None:
        if not is_json_type(content_type):
            given = (content_type or "none").split(";", 1)[0].strip()[:60]
            raise ApiError(415, ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                           f"request bodies must be JSON with Content-Type: application/json (got {given!r}); "
                           "with curl use --json or -H 'Content-Type: application/json'")


# ---- log redaction ---------------------------------------------------------------

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
_PATTERNS = (
    re.compile(r"(?i)((?:[?&]|\b)(?:token|api_key|apikey|access_token)=)[^&\s\"'#]+"),
    re.compile(r"(?i)(\bbearer\s+)[^\s\"',]+"),
    re.compile(r"(?i)(\bx-api-key[\"']?\s*[:=]\s*[\"']?)[^\s\"',]+"),
)
_installed = False


def redact(text: str) -> str:
    """The text with known secrets and token-bearing fields replaced by [REDACTED]."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:
        return
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)


def install_log_redaction(token: str = "") -> None:
    """Redact this token (and token-like fields) from every log record created from now on."""
    global _installed
    with _SECRETS_LOCK:
        if token and len(token) >= 4:  # a 1-3 character "token" would blank out ordinary words
            _SECRETS.add(token)
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


# ---- wiring -----------------------------------------------------------------------


def _policy() -> AccessPolicy:
    return server_state().policy


def install_guards(app: Quart, *, header_token: bool = True) -> None:
    """Register the guards on app (call after the host/token guard is registered). header_token=False:
    WebSockets ask no header token (the aria2 listener: its calls carry `token:` as their first param)."""
    install_log_redaction(state_of(app).config.server.token)

    @app.before_request
    async def _browser_guard() -> Response | None:
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return None  # preflights are answered by the first guard
        check_origin(request, _policy())
        check_content_type(request)
        return None

    @app.before_websocket
    async def _websocket_guard() -> None:
        policy = _policy()
        policy.check_host(websocket)  # type: ignore[arg-type]
        if header_token:
            policy.check_token(websocket)  # type: ignore[arg-type]
        check_origin(websocket, policy)


__all__ = ["from_browser", "install_guards", "install_log_redaction", "redact", "same_origin"]

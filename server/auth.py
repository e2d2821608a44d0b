"""Who may call the API: token, Host header and browser origins (CORS).

- Token: one shared secret, sent as `Authorization: Bearer <t>`, `X-API-Key: <t>`,
  `?token=<t>` (browser EventSource cannot set headers) or as the password of
  HTTP Basic auth (m3u8dweb's pages; any user name); compared in constant time.
  No token configured, or a listener with `token = false`: no check (loopback
  only, see server/listeners.py).
- Host: without a token, only loopback host names are served, so a web page
  cannot reach the API through DNS rebinding. `server.allowed_hosts` adds more.
- CORS: origins in `server.cors_origins` (exact, `*`, or shell patterns such
  as `http://nas.local:*`) get CORS headers and preflight answers. Browser
  extensions (`chrome-extension://`, `moz-extension://`, `safari-web-extension://`)
  are the user's own software and are allowed too, unless
  `server.allow_extensions = false`.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from quart import Request, Response

from server.errors import ApiError, ErrorCode

# Health checks (SaveAny-Bot's /health, Downie's /api/health) answer without a token.
# The compat dialects' OpenAPI documents (server/openapi/) are public like the native one.
# MediaGo's /healthy (its extension's badge and its SDK's health()) likewise.
PUBLIC_PATHS = frozenset({"/api/openapi.json", "/api/docs", "/api/redoc", "/health", "/api/health", "/healthy",
                          "/api/openapi/m3u8.json", "/api/openapi/downie.json", "/api/openapi/saveany.json"})
# Signed links to a finished task's file (server/files.py): the signature in the URL is the capability.
# The web page (server/web.py): its HTML, scripts and styles hold no data; the page asks for the token.
PUBLIC_PAGE_PATHS = frozenset({"/", "/ui"})
PUBLIC_PREFIXES = ("/files/", "/ui/")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
CORS_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
CORS_HEADERS = "Authorization, X-API-Key, Content-Type, Accept, Last-Event-ID"
EXTENSION_ORIGINS = ("chrome-extension://*", "moz-extension://*", "safari-web-extension://*")


def is_loopback(host: str) -> bool:
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def presented_token(req: Request) -> str | None:
    header = req.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    key = req.headers.get("X-API-Key")
    if key:
        return key.strip()
    return req.args.get("token")


def token_matches(expected: str, given: str | None) -> bool:
    if given is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", "surrogatepass"))


def host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    token: str
    allowed_hosts: frozenset[str]
    cors_origins: tuple[str, ...]
    basic_realm: str | None = None  # 401s ask for Basic auth in this realm (a browser shows its login box)
    allow_extensions: bool = True

    @classmethod
    def build(
        cls, token: str, bind_host: str, allowed_hosts: Iterable[str], cors_origins: Iterable[str], *,
        allow_extensions: bool = True, basic_realm: str | None = None,
    ) -> AccessPolicy:
        hosts = {h.strip().lower() for h in allowed_hosts if h.strip()}
        if hosts or not token:
            hosts |= LOOPBACK_NAMES
            if bind_host and bind_host not in ("0.0.0.0", "::"):
                hosts.add(bind_host.lower())
        origins = (*cors_origins, *(EXTENSION_ORIGINS if allow_extensions else ()))
        return cls(token=token, allowed_hosts=frozenset(hosts), cors_origins=origins, basic_realm=basic_realm,
                   allow_extensions=allow_extensions)

    # -- checks run before every request ----------------------------------
    def check_host(self, req: Request) -> None:
        if not self.allowed_hosts or "*" in self.allowed_hosts:
            return
        name = host_name(req.headers.get("Host", ""))
        if name in self.allowed_hosts or is_loopback(name):
            return
        raise ApiError(403, ErrorCode.FORBIDDEN_HOST,
                       f"host {name!r} is not allowed; add it to server.allowed_hosts or set a token")

    def check_token(self, req: Request) -> None:
        if not self.token or req.path in PUBLIC_PATHS or req.path in PUBLIC_PAGE_PATHS \
                or req.path.startswith(PUBLIC_PREFIXES):
            return
        if not token_matches(self.token, presented_token(req)):
            challenge = f'Basic realm="{self.basic_realm}"' if self.basic_realm else 'Bearer realm="fetchdeck"'
            raise ApiError(401, ErrorCode.UNAUTHORIZED,
                           "missing or wrong token (send Authorization: Bearer <token>, X-API-Key or ?token=)",
                           headers={"WWW-Authenticate": challenge})

    # -- CORS ---------------------------------------------------------------
    def origin_allowed(self, origin: str | None) -> bool:
        if not origin:
            return False
        return any(pattern == "*" or fnmatch.fnmatchcase(origin, pattern) for pattern in self.cors_origins)

    def preflight(self, req: Request) -> Response | None:
        """The answer to a CORS preflight, or None if this is not one."""
        if req.method != "OPTIONS" or "Access-Control-Request-Method" not in req.headers:
            return None
        response = Response("", status=204)
        origin = req.headers.get("Origin")
        if self.origin_allowed(origin):
            response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
            response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
            if req.headers.get("Access-Control-Request-Private-Network") == "true":
                response.headers["Access-Control-Allow-Private-Network"] = "true"
        return response

    def add_cors_headers(self, req: Request, response: Response) -> None:
        origin = req.headers.get("Origin")
        if self.origin_allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = origin or ""
            response.headers["Access-Control-Expose-Headers"] = "Content-Type"
        if self.cors_origins:
            response.vary.add("Origin")

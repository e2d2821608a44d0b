"""create_app(engine, config): the Quart app serving fetchdeck's HTTP API.

The native API is the MediaGo Download API (server/routes/native.py). Other
dialects (m3u8 task API, Downie, SaveAny-Bot) are blueprints in server/routes/
registered here when they exist. Every answer, errors included, is the
`{success, code, message, data}` envelope, except the SSE stream, the plain
text export and the documentation pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quart import Quart, Response, current_app, request
from quart_schema import QuartSchema, hide
from quart_schema.openapi import OpenAPIProvider

from core.config import Config
from core.engine import Engine
from server.auth import AccessPolicy
from server.errors import ApiError, ErrorCode, register_error_handlers
from server.guards import install_guards
from server.sse import HEARTBEAT_SECONDS, EventStreams

API_TITLE = "fetchdeck API"
OPENAPI_DIR = Path(__file__).parent / "openapi"
COMPAT_DIALECTS = ("m3u8", "downie", "saveany")
API_VERSION = "1.0.0"


@dataclass(slots=True)
class ServerState:
    engine: Engine
    config: Config
    streams: EventStreams
    policy: AccessPolicy
    compat: Any = None  # server.compat.CompatServices when the compat dialects are on


def server_state() -> ServerState:
    return current_app.extensions["fetchdeck"]  # type: ignore[no-any-return]


class _Provider(OpenAPIProvider):
    """quart-schema's document, plus what it cannot express: the SSE and text bodies, security."""

    def schema(self) -> dict[str, Any]:
        document = super().schema()
        paths = document.get("paths", {})
        events = paths.get("/api/events", {}).get("get")
        if events is not None:
            events["responses"][200] = {
                "description": "An endless text/event-stream (see docs/api.md for events and payloads)",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        export = paths.get("/api/downloads/export", {}).get("get")
        if export is not None:
            export["responses"][200] = {
                "description": "One URL per line",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        return document


def create_app(engine: Engine, config: Config, *, heartbeat: float = HEARTBEAT_SECONDS) -> Quart:
    server = config.server
    app = Quart("fetchdeck")
    app.config["MAX_CONTENT_LENGTH"] = server.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    policy = AccessPolicy.build(server.token, server.host, server.allowed_hosts, server.cors_origins)
    app.extensions["fetchdeck"] = ServerState(
        engine=engine, config=config, streams=EventStreams(engine, heartbeat=heartbeat), policy=policy
    )
    schema = QuartSchema(
        openapi_path="/api/openapi.json",
        swagger_ui_path="/api/docs",
        redoc_ui_path="/api/redoc",
        scalar_ui_path=None,
        info={"title": API_TITLE, "version": API_VERSION,
              "description": "The MediaGo Download API as served by fetchdeck. Errors: see docs/api.md."},
        security_schemes={
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in_": "header", "name": "X-API-Key"},
            "queryToken": {"type": "apiKey", "in_": "query", "name": "token"},
        },
        security=[{"bearer": []}, {"apiKey": []}, {"queryToken": []}, {}],
        openapi_provider_class=_Provider,
    )
    schema.init_app(app)

    from server.routes.native import native

    app.register_blueprint(native)
    if config.api.enable:
        _register_compat(app, engine, config)
    register_error_handlers(app)

    @app.before_request
    async def _guard() -> Response | None:
        policy = server_state().policy
        policy.check_host(request)
        preflight = policy.preflight(request)
        if preflight is not None:
            return preflight
        policy.check_token(request)
        return None

    @app.after_request
    async def _cors(response: Response) -> Response:
        server_state().policy.add_cors_headers(request, response)
        return response

    install_guards(app)  # Origin, Content-Type, WebSocket and log guards: server/guards.py
    return app


def _register_compat(app: Quart, engine: Engine, config: Config) -> None:
    """The m3u8 task API, Downie Enhanced and SaveAny-Bot dialects, their backends and event consumer."""
    from core.downloaders import register_backend
    from server.aria2 import Aria2Downloader
    from server.aria2 import check_url as aria2_url
    from server.compat import CompatServices
    from server.routes.downie import downie
    from server.routes.m3u8 import m3u8
    from server.routes.saveany import saveany
    from server.storages import TRANSFER, check_transfer_url, parse_storages
    from server.webhooks import WebhookNotifier

    services = CompatServices(engine)
    services.notifier = WebhookNotifier(engine, config.api)
    services.storages = parse_storages(config.api.storages, engine.download_root)
    app.extensions["fetchdeck"].compat = services
    register_backend("transfer", TRANSFER, check_transfer_url)
    register_backend("aria2", Aria2Downloader(config.aria2), aria2_url)
    for blueprint in (m3u8, downie, saveany):
        app.register_blueprint(blueprint)

    @app.get("/api/openapi/<dialect>.json")
    @hide
    async def _dialect_openapi(dialect: str) -> Response:
        """Each compat dialect's routes as OpenAPI 3.1, hand-written from its seed document
        (their clients predate fetchdeck; quart-schema only documents the native API)."""
        if dialect not in COMPAT_DIALECTS:
            raise ApiError(404, ErrorCode.ROUTE_NOT_FOUND, f"no OpenAPI document for {dialect!r}")
        text = (OPENAPI_DIR / f"{dialect}.json").read_text(encoding="utf-8")
        return Response(text, content_type="application/json")

    @app.before_serving
    async def _start_compat() -> None:
        services.start()

    @app.after_serving
    async def _stop_compat() -> None:
        await services.stop()

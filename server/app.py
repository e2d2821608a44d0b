"""create_app(engine, config, surface=...): the Quart app serving one listener of fetchdeck's HTTP API.

The native API is the MediaGo Download API (server/routes/native.py) with MediaGo
core's own routes (server/routes/mediago.py); the compat dialects (m3u8 task API,
Downie Enhanced, SaveAny-Bot, aria2's JSON-RPC) are blueprints in server/routes/. SURFACES says which
a listener serves: the main one MediaGo's plus the Downie and SaveAny routes whose
paths do not collide with it, every other one a single dialect at the paths of its
real server (server/listeners.py starts them). Native answers, errors included, are
the `{success, code, message, data}` envelope, except the SSE stream, the plain text
export and the documentation pages; each compat dialect answers in its own format.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from quart import Quart, Response, request
from quart_schema import QuartSchema, hide
from quart_schema.openapi import OpenAPIProvider

from core.config import Config
from core.engine import Engine
from core.events import ConfigChanged
from server.auth import AccessPolicy
from server.compat import CompatServices
from server.errors import ApiError, ErrorCode, every_path, register_error_handlers, use_dialect_errors
from server.guards import install_guards
from server.sse import HEARTBEAT_SECONDS, EventStreams
from server.state import ServerState, install_state, server_state, state_of

API_TITLE = "fetchdeck API"
OPENAPI_DIR = Path(__file__).parent / "openapi"
COMPAT_DIALECTS = ("m3u8", "downie", "saveany", "aria2")  # off with [api] enable = false
API_VERSION = "1.0.0"
# What each listener serves. "main" is server.host:server.port: the whole MediaGo surface plus the
# Downie and SaveAny routes whose paths do not collide with it. The others serve one dialect each,
# at the paths its real server uses (m3u8's /api/tasks is only there: on main it is MediaGo's).
SURFACES: dict[str, tuple[str, ...]] = {
    "main": ("mediago", "downie", "saveany"),
    "mediago": ("mediago",),
    "m3u8": ("m3u8",),
    "downie": ("downie",),
    "saveany": ("saveany",),
    "aria2": ("aria2",),  # aria2's JSON-RPC at /jsonrpc: its token is the `token:` param, not a header
}


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


def build_services(engine: Engine, config: Config) -> CompatServices:
    """What every listener of one server shares: the engine-event consumer, webhooks, storages, backends."""
    services = CompatServices(engine)
    if config.api.enable:
        from server import aria2, storages
        from server.storages import parse_storages
        from server.webhooks import WebhookNotifier

        services.notifier = WebhookNotifier(engine, config.api)
        services.storages = parse_storages(config.api.storages, engine.download_root)
        storages.register(engine.downloaders)  # this server's engine, not process-wide state
        aria2.register(engine.downloaders, config.aria2)
    return services


def create_app(
    engine: Engine, config: Config, *, heartbeat: float = HEARTBEAT_SECONDS, surface: str = "main",
    token_required: bool = True, services: CompatServices | None = None, bind_host: str | None = None,
    themes_dir: Path | None = None,
) -> Quart:
    """The app for one listener. `services` shared by a server's listeners (server/listeners.py);
    None: this app makes its own and starts/stops it with itself. `themes_dir`: the user's theme files,
    offered by the web page with the bundled ones (the TUI's Locations.themes_dir)."""
    if surface not in SURFACES:
        raise ValueError(f"unknown surface {surface!r}")
    server = config.server
    app = Quart("fetchdeck")
    app.config["MAX_CONTENT_LENGTH"] = server.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    policy = AccessPolicy.build(
        server.token if token_required else "", bind_host or server.host, server.allowed_hosts, server.cors_origins,
        allow_extensions=server.allow_extensions, basic_realm="m3u8dweb" if surface == "m3u8" else None,
    )
    own_services = services is None
    shared = services if services is not None else build_services(engine, config)
    dialects = [d for d in SURFACES[surface] if d not in COMPAT_DIALECTS or config.api.enable]
    config_payload: Callable[[ConfigChanged], dict[str, Any] | None] | None = None
    if "mediago" in dialects:
        from server.routes.mediago import mediago_config_event as config_payload
    install_state(app, ServerState(
        engine=engine, config=config, policy=policy, services=shared,
        streams=EventStreams(engine, heartbeat=heartbeat, config_payload=config_payload), themes_dir=themes_dir,
    ))
    if "mediago" in dialects:
        _register_mediago(app)
        if config.web.enable:
            from server.web import web  # the web page at /ui/ (server/web.py), over the native API

            app.register_blueprint(web)
    for dialect in dialects:
        if dialect != "mediago":
            _register_compat(app, dialect, single=len(SURFACES[surface]) == 1)
    register_error_handlers(app)

    @app.before_request
    async def _guard() -> Response | None:
        policy = server_state().policy
        policy.check_host(request)
        preflight = policy.preflight(request)
        if preflight is not None:
            return preflight
        if surface != "aria2":  # aria2 callers send the token as the first param (server/routes/aria2rpc.py)
            policy.check_token(request)
        return None

    @app.after_request
    async def _cors(response: Response) -> Response:
        server_state().policy.add_cors_headers(request, response)
        return response

    # Origin, Content-Type, WebSocket and log guards: server/guards.py
    install_guards(app, header_token=surface != "aria2")

    if own_services:
        @app.before_serving
        async def _start_services() -> None:
            shared.start()

        @app.after_serving
        async def _stop_services() -> None:
            await shared.stop()

    return app


def _register_mediago(app: Quart) -> None:
    """The native API (MediaGo's Download API), MediaGo core's own routes, and the OpenAPI document."""
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

    from server.routes.mediago import mediago
    from server.routes.native import native

    app.register_blueprint(native)
    app.register_blueprint(mediago)

    from server import files  # downloads from the browser: POST .../file-link's signed /files/ links

    files.install(app, state_of(app).config.files)


def _register_compat(app: Quart, dialect: str, *, single: bool) -> None:
    """One compat dialect's blueprint, its error format (on every path when it is the listener's only
    dialect, else on its own paths) and its OpenAPI document."""
    if dialect == "m3u8":
        from server.routes import m3u8 as module
    elif dialect == "downie":
        from server.routes import downie as module  # type: ignore[no-redef]
    elif dialect == "aria2":
        from server.routes import aria2rpc as module  # type: ignore[no-redef]
    else:
        from server.routes import saveany as module  # type: ignore[no-redef]
    app.register_blueprint(module.blueprint)
    use_dialect_errors(app, every_path if single else module.owns_path, module.render_error)
    if dialect == "aria2":
        return  # JSON-RPC: its methods are documented in docs/api.md, not as OpenAPI paths
    documents: dict[str, str] = app.extensions.setdefault("fetchdeck.openapi", {})
    documents[dialect] = (OPENAPI_DIR / f"{dialect}.json").read_text(encoding="utf-8")
    if len(documents) > 1:
        return  # the route below is registered once per app

    @app.get("/api/openapi/<dialect_name>.json")
    @hide
    async def _dialect_openapi(dialect_name: str) -> Response:
        """Each compat dialect's routes as OpenAPI 3.1, hand-written from its seed document
        (their clients predate fetchdeck; quart-schema only documents the native API)."""
        text = app.extensions["fetchdeck.openapi"].get(dialect_name)
        if text is None:
            raise ApiError(404, ErrorCode.ROUTE_NOT_FOUND, f"no OpenAPI document for {dialect_name!r} here")
        return Response(text, content_type="application/json")

"""What one listener's app holds for its routes: `ServerState`, set by `install_state`, read by `server_state`.

server/app.py builds the state and installs it on the app it creates; the route blueprints
(server/routes/), the guards and the runner read it back through this module, so none of them
imports the app factory (import-linter's acyclic_siblings contract keeps it that way).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from quart import Quart, current_app

from core.config import Config
from core.engine import Engine
from server.auth import AccessPolicy
from server.compat import CompatServices
from server.sse import EventStreams

STATE_KEY = "fetchdeck"  # app.extensions[STATE_KEY]


@dataclass(slots=True)
class ServerState:
    """One listener's engine and config, its event streams and access policy, and the services its
    server's listeners share (engine-event consumer, webhooks, storages, MediaGo settings)."""

    engine: Engine
    config: Config
    streams: EventStreams
    policy: AccessPolicy
    services: CompatServices
    themes_dir: Path | None = None  # the user's theme files (core/locations.py themes_dir), for the web page


def install_state(app: Quart, state: ServerState) -> None:
    app.extensions[STATE_KEY] = state


def state_of(app: Quart) -> ServerState:
    """The state `install_state` put on app."""
    state = app.extensions.get(STATE_KEY)
    if not isinstance(state, ServerState):
        raise RuntimeError(f"{app.name} has no fetchdeck server state (create it with server.app.create_app)")
    return state


def server_state() -> ServerState:
    """The state of the app serving the current request."""
    return state_of(current_app)

"""The HTTP API served inside the TUI's event loop (part of the composition root with tui/cli.py)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from core.config import Config
from core.engine import Engine
from core.locations import Locations
from server.app import create_app
from server.runner import ServerHandle, start_server
from tui.serve_command import refusal


class ServerApi:
    """The native API on host:port, served by Hypercorn in this loop. `start` raises a readable error."""

    def __init__(self, engine: Engine, config: Config, error_log: Path | None = None) -> None:
        self.engine = engine
        self.config = config
        self.error_log = error_log
        self.handle: ServerHandle | None = None

    @classmethod
    def for_profile(cls, engine: Engine, config: Config, locations: Locations) -> ServerApi:
        return cls(engine, config, error_log=locations.log_dir / "server.log")

    @property
    def address(self) -> str:
        server = self.config.server
        host = f"[{server.host}]" if ":" in server.host else server.host
        port = self.handle.port if self.handle is not None else server.port
        return f"{host}:{port}"

    async def start(self) -> None:
        server = self.config.server
        why = refusal(server.host, server.token)
        if why:
            raise RuntimeError(why)
        app = create_app(self.engine, self.config)
        try:
            self.handle = await start_server(app, server.host, server.port, error_log=self.error_log)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise RuntimeError(
                f"Cannot listen on {server.host}:{server.port}: {reason}. Downloads work, the API is off. "
                "Start with --port P to use another port, or --no-server."
            ) from None

    async def stop(self) -> None:
        if self.handle is not None:
            with contextlib.suppress(Exception):
                await self.handle.stop()
            self.handle = None

"""The HTTP API served inside the TUI's event loop (part of the composition root with tui/cli.py)."""

from __future__ import annotations

from pathlib import Path

from core.config import Config
from core.engine import Engine
from core.locations import Locations
from server.listeners import ListenerGroup, start_listeners


class ServerApi:
    """Every listener (main API on host:port, plus [server.listen]) served by Hypercorn in this loop.

    `start` raises a readable error when the main listener cannot start; a dialect listener that
    cannot is one line in `problems`, and the others still serve."""

    def __init__(self, engine: Engine, config: Config, error_log: Path | None = None,
                 themes_dir: Path | None = None) -> None:
        self.engine = engine
        self.config = config
        self.error_log = error_log
        self.themes_dir = themes_dir
        self.group: ListenerGroup | None = None
        self.problems: list[str] = []

    @classmethod
    def for_profile(cls, engine: Engine, config: Config, locations: Locations) -> ServerApi:
        return cls(engine, config, error_log=locations.log_dir / "server.log", themes_dir=locations.themes_dir)

    @property
    def address(self) -> str:
        server = self.config.server
        host = f"[{server.host}]" if ":" in server.host else server.host
        main = self.group.main if self.group is not None else None
        port = main.port if main is not None else server.port
        return f"{host}:{port}"

    @property
    def listeners(self) -> list[str]:
        """'downie on http://127.0.0.1:8000 (no token)', one line per running listener."""
        return self.group.lines() if self.group is not None else []

    async def start(self) -> None:
        self.group = await start_listeners(self.engine, self.config, error_log=self.error_log,
                                           themes_dir=self.themes_dir)
        self.problems = list(self.group.problems)
        if self.group.main is None:
            first, *rest = self.problems or ["the API did not start"]
            await self.group.stop()
            self.group = None
            self.problems = []
            raise RuntimeError("\n".join([
                f"{first[:1].upper()}{first[1:]}. Downloads work, the API is off. "
                "Start with --port P to use another port, or --no-server.", *rest]))

    async def stop(self) -> None:
        if self.group is not None:
            await self.group.stop()
            self.group = None

"""Start the TUI: with the engine and the HTTP API in this loop, or attached to a remote fetchdeck.

The API comes in as a factory from the composition root (tui/cli.py passes
tui/embedded_api.ServerApi), so this module never imports `server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable

from core.config import Config
from core.engine import Engine
from core.locations import Locations
from tui.app import EmbeddedApi, FetchdeckApp
from tui.client import LocalClient
from tui.remote import RemoteClient

log = logging.getLogger("fetchdeck.tui")


def log_to_file(locations: Locations) -> None:
    """Everything fetchdeck logs goes to <data dir>/logs/tui.log: the terminal belongs to the TUI."""
    locations.log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(locations.log_dir / "tui.log", encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _want_file_manager() -> bool:
    if os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_TTY"):
        return False
    return os.name == "nt" or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or (
        os.uname().sysname == "Darwin"
    )


def _on_sigterm(app: FetchdeckApp) -> None:
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, app.exit)
        loop.add_signal_handler(signal.SIGHUP, app.exit)


ApiFactory = Callable[[Engine, Config, Locations], EmbeddedApi]


async def run_local(
    locations: Locations, config: Config, api_factory: ApiFactory | None, api_note: str = "",
    notices: tuple[str, ...] = (),
) -> None:
    """Engine + API + TUI in this loop; downloads stop resumably when the TUI quits.

    api_factory None: no API (api_note says why on the status line).
    """
    log_to_file(locations)
    engine = Engine(locations.database, config)
    await engine.open()
    api = api_factory(engine, config, locations) if api_factory is not None else None
    client = LocalClient(engine)
    app = FetchdeckApp(
        client, config, config_path=locations.config_file, themes_dir=locations.themes_dir, api=api,
        api_note=api_note, notices=notices, open_folders=_want_file_manager(),
    )
    try:
        _on_sigterm(app)
        await app.run_async()
    finally:
        await client.close()
        if api is not None:
            await api.stop()
        await engine.close()


async def run_remote(locations: Locations, config: Config, url: str, token: str | None) -> None:
    """The TUI attached to another fetchdeck over its API."""
    log_to_file(locations)
    client = RemoteClient(url, token)
    app = FetchdeckApp(client, config, config_path=locations.config_file, themes_dir=locations.themes_dir)
    try:
        _on_sigterm(app)
        await app.run_async()
    finally:
        await client.close()

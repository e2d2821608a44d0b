"""Fixtures for the TUI tests: a real engine in a temp dir, app factories, waiting helpers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from core.config import Config, DownloadConfig, ensure_config_file
from core.engine import Engine
from tests.support.fileserver import FileServer
from tui.app import FetchdeckApp
from tui.client import Client, LocalClient

try:  # server/ is built separately; tests that need it skip until it exists
    import server.app
    import server.runner  # noqa: F401

    HAVE_SERVER = True
except ImportError:  # pragma: no cover
    HAVE_SERVER = False

needs_server = pytest.mark.skipif(not HAVE_SERVER, reason="server/app.py and server/runner.py are not there yet")


@pytest.fixture(autouse=True)
def _steady_cursors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blinking cursors make screenshots differ from run to run: keep them on."""
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
    monkeypatch.setattr(TextArea, "_toggle_cursor_blink_visible", lambda self: None, raising=False)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(download=DownloadConfig(dir=str(tmp_path / "downloads"), retries=1))


@pytest.fixture
async def engine(tmp_path: Path, config: Config) -> AsyncIterator[Engine]:
    eng = Engine(tmp_path / "fetchdeck.db", config)
    await eng.open()
    try:
        yield eng
    finally:
        await eng.close()


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    ensure_config_file(path)
    return path


@pytest.fixture
def make_app(tmp_path: Path, config: Config, config_path: Path) -> Callable[..., FetchdeckApp]:
    def make(client: Client, **kwargs: Any) -> FetchdeckApp:
        kwargs.setdefault("config_path", config_path)
        kwargs.setdefault("themes_dir", tmp_path / "themes")
        return FetchdeckApp(client, kwargs.pop("config", config), **kwargs)

    return make


@pytest.fixture
def local_app(engine: Engine, make_app: Callable[..., FetchdeckApp]) -> FetchdeckApp:
    return make_app(LocalClient(engine))


@pytest.fixture
def fileserver() -> Iterator[FileServer]:
    with FileServer() as srv:
        yield srv


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], object], timeout: float = 15.0,
                   what: str = "condition") -> None:
    """Let the app run until predicate() is true (checked every 50 ms)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def screen_text(app: FetchdeckApp) -> str:
    """The plain text on screen now, top screen and overlays included (what a user would read)."""
    compositor = app.screen._compositor
    chops = compositor._render_chops(compositor.size.region, lambda y: True)
    return "\n".join("".join(strip.text for strip in chop.values()) for chop in chops)

"""What the web page's browser tests share: a real fetchdeck (engine, Quart app, Hypercorn on an ephemeral
port), a real FileServer, and one headless Chromium per module (Debian's /usr/bin/chromium driven by
Playwright: no browser is ever downloaded). Module-scoped on the module's event loop, so a module pays for
one browser and one server; each test opens its own browser context (fresh localStorage).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from core.config import Config
from core.engine import Engine
from server.app import create_app
from server.runner import start_server
from tests.api.conftest import Api
from tests.support.chromium import STEP, launch
from tests.support.fileserver import FileServer


@asynccontextmanager
async def running_fetchdeck(root: Path, *, token: str = "", max_concurrent: int = 3,
                            themes_dir: Path | None = None) -> AsyncIterator[Api]:
    """A fetchdeck with the web page on its main listener, stopped (and its log checked) on exit;
    `themes_dir`: the user's theme files (what `fetchdeck serve` passes as Locations.themes_dir)."""
    config = Config()
    config.download.dir = str(root / "downloads")
    config.download.max_concurrent = max_concurrent
    config.download.connections = 2
    config = config.override("server", token=token)
    engine = Engine(root / "fetchdeck.db", config)
    await engine.open()
    app = create_app(engine, config, themes_dir=themes_dir)
    handle = await start_server(app, "127.0.0.1", 0, error_log=root / "logs" / "server.log")
    client = httpx.AsyncClient(base_url=handle.url, timeout=30, trust_env=False,
                               headers={"Authorization": f"Bearer {token}"} if token else {})
    api = Api(engine=engine, config=config, handle=handle, client=client, tmp=root)
    try:
        yield api
    finally:
        await client.aclose()
        await handle.stop()
        await engine.close()
        log = root / "logs" / "server.log"
        if log.exists():
            text = log.read_text()
            assert "Traceback" not in text and "ERROR" not in text, text


@pytest.fixture(scope="module")
def files() -> Iterator[FileServer]:
    with FileServer() as srv:
        yield srv


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await launch(pw)
        yield chromium
        await chromium.close()


OpenPage = Callable[..., Awaitable[Page]]


@pytest_asyncio.fixture(loop_scope="module")
async def open_page(browser: Browser) -> AsyncIterator[OpenPage]:
    """`await open_page(url, width=375)`: the page in a fresh context; fails the test on a script error
    or a JavaScript dialog (alert/confirm)."""
    contexts: list[BrowserContext] = []
    problems: list[str] = []

    async def opener(url: str, *, width: int = 1200, height: int = 800) -> Page:
        context = await browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(STEP * 1000)
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.type} {dialog.message}"))
        response = await page.goto(url)
        assert response is not None and response.ok, url
        return page

    yield opener
    for context in contexts:
        await context.close()
    assert not problems, problems


async def run(page: Page, script: str, arg: Any = None) -> Any:
    """Evaluate a JS function in the page, bounded in time."""
    return await asyncio.wait_for(page.evaluate(script, arg), STEP)


def row(page: Page, name: str) -> Any:
    """The task table's row whose name is exactly `name`."""
    return page.locator(".row:not([hidden])").filter(has=page.locator(".c-name", has_text=name))

"""The web page's HTTP side (server/web.py) without a browser: public files behind a token server, the
headers, the generated theme stylesheet, no way out of server/web/, and `[web] enable = false`.
(The page itself runs in Chromium in tests/browser/.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from quart.typing import TestClientProtocol as QuartClient

from core.config import Config
from core.engine import Engine
from server.app import create_app
from server.web import CSP, WEB_DIR

Client = Callable[..., Awaitable[QuartClient]]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    engines: list[Engine] = []

    async def make(*, token: str = "", web: bool = True) -> QuartClient:
        config = Config().override("server", token=token).override("web", enable=web)
        config.download.dir = str(tmp_path / "downloads")
        engine = Engine(tmp_path / f"db{len(engines)}.sqlite", config)
        await engine.open()
        engines.append(engine)
        return create_app(engine, config).test_client()

    yield make
    for engine in engines:
        await engine.close()


async def test_the_page_is_public_the_api_is_not(client: Client) -> None:
    app = await client(token="t0ken")
    root = await app.get("/", headers={"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate"})
    assert root.status_code == 302 and root.headers["Location"] == "/ui/"
    api_root = await app.get("/")  # an API client: the 404 envelope `/` always answered
    assert api_root.status_code == 404 and (await api_root.get_json())["code"] == 40400
    for path in ("/ui/", "/ui/app.js", "/ui/sse.js", "/ui/style.css", "/ui/themes.css", "/ui/themes.json",
                 "/ui/icon.svg"):
        response = await app.get(path)
        assert response.status_code == 200, path
        assert response.headers["Content-Security-Policy"] == CSP, path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
    page = await (await app.get("/ui/")).get_data(as_text=True)
    assert "<script>" not in page and " on" not in page.replace("\n", " ").split("<body", 1)[1].split(">")[0]
    assert (await app.get("/api/downloads")).status_code == 401
    assert (await app.get("/api/downloads", headers={"Authorization": "Bearer t0ken"})).status_code == 200
    # Only the files of server/web/ by their plain names.
    for path in ("/ui/..%2Fweb.py", "/ui/%2e%2e/app.py", "/ui/.hidden.js", "/ui/nothing.js", "/ui/web.py"):
        response = await app.get(path)
        assert response.status_code == 404, path
        assert response.headers["Content-Security-Policy"] == CSP
    assert sorted(p.name for p in WEB_DIR.iterdir()) == [
        "api.js", "app.js", "fmt.js", "graph.js", "icon.svg", "index.html", "sse.js", "style.css", "vlist.js"]


async def test_the_themes_are_the_tuis(client: Client) -> None:
    app = await client()
    css = await (await app.get("/ui/themes.css")).get_data(as_text=True)
    light = css.split('[data-theme="fetchdeck-light"] {', 1)[1].split("}", 1)[0]
    assert "--background: #f6f7f9;" in light and "--primary: #0369a1;" in light and "color-scheme: light;" in light
    root = css.split(":root {", 1)[1].split("}", 1)[0]
    assert "--background: #11151c;" in root  # [ui] theme = fetchdeck-dark, the TUI's default
    assert "@media (prefers-color-scheme: light)" in css
    listed = (await (await app.get("/ui/themes.json")).get_json())
    assert listed["default"] == "fetchdeck-dark"
    assert {"name": "fetchdeck-light", "dark": False} in listed["themes"]
    assert {t["name"] for t in listed["themes"]} == {p.stem for p in (WEB_DIR.parent.parent / "themes").glob("*.toml")}


async def test_the_users_theme_files_are_offered_too(tmp_path: Path) -> None:
    """The user's themes dir (Locations.themes_dir, passed by `fetchdeck serve` and the TUI's embedded API)
    is read by the same reader as the TUI's (themes/reader.py): its themes are in the stylesheet and the
    picker's list, a broken one is named with its reason, and a name is a CSS string, whatever it holds."""
    themes = tmp_path / "themes"
    themes.mkdir()
    (themes / "rose.toml").write_text('name = "my rose"\ndark = false\n[colors]\nprimary = "#aa3377"\n'
                                      'background = "#fff0f5"\n')
    (themes / "odd.toml").write_text('name = \'x"] {} body\'\n[colors]\nprimary = "#123456"\n')
    (themes / "broken.toml").write_text('[colors]\nprimary = "red; } body { color: red"\n')
    config = Config()
    config.download.dir = str(tmp_path / "downloads")
    engine = Engine(tmp_path / "db.sqlite", config)
    await engine.open()
    try:
        app = create_app(engine, config, themes_dir=themes).test_client()
        css = await (await app.get("/ui/themes.css")).get_data(as_text=True)
        listed = await (await app.get("/ui/themes.json")).get_json()
    finally:
        await engine.close()
    rose = css.split('[data-theme="my rose"] {', 1)[1].split("}", 1)[0]
    assert "--primary: #aa3377;" in rose and "--background: #fff0f5;" in rose and "color-scheme: light;" in rose
    assert "--surface: #ffffff;" in rose  # what it leaves out: the default light theme's
    assert '[data-theme="x\\22 \\5d  \\7b \\7d  body"] {' in css  # escaped: no way out of the selector
    assert "body { color: red" not in css
    assert {"name": "my rose", "dark": False} in listed["themes"]
    assert {"name": 'x"] {} body', "dark": True} in listed["themes"]
    assert listed["errors"] == [{"file": "broken.toml",
                                 "reason": "colors.primary: 'red; } body { color: red' is not a color"}]


async def test_web_enable_false_serves_no_page(client: Client) -> None:
    app = await client(web=False)
    for path in ("/", "/ui/", "/ui/app.js"):
        assert (await app.get(path)).status_code == 404, path
    assert (await app.get("/api/downloads")).status_code == 200


async def test_the_add_forms_quality_and_audio_only(client: Client, tmp_path: Path) -> None:
    """What the page's add form sends for a yt-dlp task (quality, audio only) reaches the task's options."""
    app = await client()
    engine = app.app.extensions["fetchdeck"].engine  # type: ignore[attr-defined]
    sent = {"tasks": [{"url": "http://127.0.0.1:9/a.bin", "type": "direct", "quality": "720p"},
                      {"url": "http://127.0.0.1:9/b.bin", "audioOnly": True, "priority": "high"}]}
    answer = await app.post("/api/downloads", json=sent)
    assert answer.status_code == 200, await answer.get_data(as_text=True)
    first, second = (await answer.get_json())["data"]
    assert (await engine.get(first["id"])).options.quality == "720p"
    audio = await engine.get(second["id"])
    assert (audio.options.quality, audio.options.postprocess, second["priority"]) == ("audio", "audio", "high")
    bad = await app.post("/api/downloads", json={"tasks": [{"url": "http://127.0.0.1:9/c.bin", "quality": "8k"}]})
    assert bad.status_code == 400 and (await bad.get_json())["code"] == 40002

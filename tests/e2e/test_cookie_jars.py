"""Cookie jars (core/cookies.py) through the real engine: a jar's cookies reach a real server on 127.0.0.1
for every task kind (direct HTTP, HLS playlist and segments, yt-dlp's generic extractor), the cookies the
server sets land in the jar's 0600 file, and no value shows up in a task's log or record."""

from __future__ import annotations

import asyncio
import http.cookiejar
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from core.cookies import CookieStore, parse_netscape
from core.engine import Engine
from core.models import Task, TaskKind, TaskOptions, TaskSpec, TaskStatus
from tests.support.engine import engine_config
from tests.support.media_fixtures import MediaSet, get_media

JAR_TEXT = (
    "# Netscape HTTP Cookie File\n"
    "127.0.0.1\tFALSE\t/\tFALSE\t0\tsid\tjar-s3cret\n"
    "#HttpOnly_127.0.0.1\tFALSE\t/m/\tFALSE\t4102444800\tpathed\tonly-under-m\n"
    "127.0.0.1\tFALSE\t/elsewhere/\tFALSE\t0\tnot_here\tnever-sent\n"
    ".example.com\tTRUE\t/\tFALSE\t0\tother_site\tnever-sent-either\n"
)


class CookieSite:
    """aiohttp on 127.0.0.1 serving the media set: records each request's Cookie header by path, and
    answers with `Set-Cookie: seen_fetchdeck=…` (fetchdeck's own client) or `seen_ytdlp=…` (yt-dlp's)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cookies: dict[str, list[str]] = {}
        self.runner: web.AppRunner | None = None
        self.base = ""

    @web.middleware
    async def _record(self, request: web.Request, handler: object) -> web.StreamResponse:
        self.cookies.setdefault(request.path, []).append(request.headers.get("Cookie", ""))
        response: web.StreamResponse = await handler(request)  # type: ignore[operator]
        who = "fetchdeck" if request.headers.get("User-Agent", "").startswith("fetchdeck/") else "ytdlp"
        response.set_cookie(f"seen_{who}", f"set-by-server-{who}", path="/", max_age=3600)
        return response

    async def __aenter__(self) -> CookieSite:
        app = web.Application(middlewares=[self._record])
        app.router.add_static("/m", self.root)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    def url(self, path: str) -> str:
        return self.base + path

    def sent(self, prefix: str) -> list[str]:
        return [c for path, values in self.cookies.items() if path.startswith(prefix) for c in values]


@pytest.fixture(scope="module")
def media() -> MediaSet:
    return get_media()


@pytest.fixture
async def site(media: MediaSet) -> AsyncIterator[CookieSite]:
    async with CookieSite(media.dir) as srv:
        yield srv


async def run(engine: Engine, url: str, kind: TaskKind, **options: object) -> Task:
    spec = TaskSpec(url=url, kind=kind, options=TaskOptions(**options))  # type: ignore[arg-type]
    (task,) = await engine.create([spec])
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id]), 60)
    assert done.status is TaskStatus.SUCCESS, done.error
    return done


async def wait_for_file_with(path: Path, text: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in (content := path.read_text()):
            return content
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} never reached {path}")


async def test_jar_cookies_reach_every_kind_and_set_cookies_are_kept(tmp_path: Path, site: CookieSite) -> None:
    jar_dir = tmp_path / "cookies"
    report = CookieStore.open(jar_dir).import_text(JAR_TEXT, "cookies.txt")  # as `cookies import` does
    assert [(d.domain, d.cookies) for d in report.domains] == [("127.0.0.1", 3), ("example.com", 1)]
    async with Engine(tmp_path / "db.sqlite", engine_config(tmp_path, retries=2)) as engine:
        direct = await run(engine, site.url("/m/v360.mp4"), TaskKind.HTTP, connections=2)
        hls = await run(engine, site.url("/m/hls360/index.m3u8"), TaskKind.HLS)
        ytdlp = await run(engine, site.url("/m/v720.mp4"), TaskKind.YTDLP, cookies="own=task-option", debug_log=True)
        info = await engine.extract(site.url("/m/page.html"))  # info extraction sends the jar's cookies too
        assert info.title.startswith("Sample Clip") and any("sid=jar-s3cret" in h for h in site.sent("/m/page.html"))
        logs = [line.text for t in (direct, hls, ytdlp) for line in await engine.logs(t.id)]
        records = [repr(await engine.get(t.id)) for t in (direct, hls, ytdlp)]

    for prefix, least in (("/m/v360.mp4", 2), ("/m/hls360/index.m3u8", 1), ("/m/hls360/seg", 3),
                          ("/m/v720.mp4", 1)):
        sent = site.sent(prefix)
        assert len(sent) >= least, (prefix, site.cookies)
        for header in sent:
            assert "sid=jar-s3cret" in header and "pathed=only-under-m" in header, (prefix, header)
            assert "never-sent" not in header, (prefix, header)  # another path, another site
    assert all("own=task-option" in h for h in site.sent("/m/v720.mp4"))  # the task's own cookies too
    # What the server set on fetchdeck's requests is sent from then on (the HLS and yt-dlp runs came later).
    assert all("seen_fetchdeck=set-by-server-fetchdeck" in h for h in site.sent("/m/hls360/"))
    assert all("seen_fetchdeck=set-by-server-fetchdeck" in h for h in site.sent("/m/v720.mp4"))

    # The server's cookies are kept in the jar's file, yt-dlp's run included; the task's own are not.
    jar_file = jar_dir / "127.0.0.1.txt"
    text = await wait_for_file_with(jar_file, "seen_ytdlp")
    names = {c.name: c.value for c in parse_netscape(text)}
    assert names["seen_fetchdeck"] == "set-by-server-fetchdeck" and names["seen_ytdlp"] == "set-by-server-ytdlp"
    assert names["sid"] == "jar-s3cret" and "own" not in names
    assert jar_file.stat().st_mode & 0o777 == 0o600 and jar_dir.stat().st_mode & 0o777 == 0o700
    assert {p.name for p in jar_dir.iterdir()} == {"127.0.0.1.txt", "example.com.txt"}

    for secret in ("jar-s3cret", "only-under-m", "set-by-server", "task-option"):
        assert not [line for line in logs if secret in line], secret
    for secret in ("jar-s3cret", "only-under-m", "set-by-server"):
        assert not [r for r in records if secret in r], secret


def test_domain_matching_and_another_process_changes() -> None:
    """A browser's rules (a dotted domain reaches its subdomains, secure only over https), and a jar that
    another process (the CLI) changes is read again by the engine's."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        jar = CookieStore.open(Path(tmp) / "cookies")
        jar.import_text(".example.com\tTRUE\t/\tFALSE\t0\twide\t1\n"
                        "host.example.com\tFALSE\t/\tTRUE\t0\tnarrow\t2\n"
                        "localhost\tFALSE\t/\tFALSE\t0\tdev\t4\n")

        def header(url: str, store: http.cookiejar.CookieJar = jar) -> str:
            request = urllib.request.Request(url)
            store.add_cookie_header(request)
            return "; ".join(sorted((request.get_header("Cookie") or "").split("; "))).strip("; ")

        assert header("http://example.com/") == "wide=1"
        assert header("http://a.b.example.com/x") == "wide=1"
        assert header("https://host.example.com/") == "narrow=2; wide=1"
        assert header("http://host.example.com/") == "wide=1"  # secure: https only
        assert header("http://notexample.com/") == "" and header("http://example.org/") == ""
        assert header("http://localhost:8080/") == "dev=4"  # as browsers do (http.cookiejar alone would not)

        other = CookieStore.open(Path(tmp) / "cookies")  # `fetchdeck cookies …` in another process
        assert other.remove("host.example.com") == 1
        other.import_text("new.example.com\tFALSE\t/\tFALSE\t0\tfresh\t3\n")
        jar._checked = 0.0  # as if a second had passed since its last look
        assert header("https://host.example.com/") == "wide=1"
        assert header("http://new.example.com/") == "fresh=3; wide=1"

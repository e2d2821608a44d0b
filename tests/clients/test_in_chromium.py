"""The browser clients in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

tests/clients/test_mediago_clients.py and test_downie_clients.py replay what the browser sends;
here the browser itself sends it, so the Origin, Sec-Fetch-* and CORS preflights are Chromium's own:

- an MV3 extension of ours, written into tmp_path, whose service worker makes the calls of MediaGo's
  extension background (mediago-client.ts probeHttp/importViaHttp, host_permissions <all_urls>);
- a page like Downie's SimpleApp on another origin (the FileServer's port), POSTing JSON to a Downie
  listener with token = false: a preflight when its origin is listed, a failed fetch when it is not;
- foreign pages (same-site on another port, and cross-site `http://evil.example` mapped to 127.0.0.1)
  opening the SSE stream and reading/writing the task list: refused, nothing readable.

Every request fetchdeck receives is recorded by an ASGI middleware around the listener's app (Quart's
documented `app.asgi_app` wrapping), so the tests assert on the bytes Chromium really sent and on the
status fetchdeck answered, not only on what the page could see.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, Playwright, Worker, async_playwright

from tests.api.conftest import ApiFactory
from tests.support.asgi_recorder import Recorder
from tests.support.chromium import ARGS, CHROMIUM, STEP, needs_chromium
from tests.support.fileserver import FileServer, random_bytes

EVIL = "evil.example"  # a web site on the internet, as far as Chromium knows (mapped to 127.0.0.1)

pytestmark = needs_chromium


# ---------------------------------------------------------------- the browser


@pytest.fixture
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as pw:
        yield pw


Launch = Callable[..., Awaitable[BrowserContext]]


@pytest.fixture
async def chromium(playwright: Playwright, tmp_path: Path) -> AsyncIterator[Launch]:
    """`await chromium(extension=dir)`: a headless Chromium with a fresh profile (and that unpacked extension)."""
    contexts: list[BrowserContext] = []

    async def launch(extension: Path | None = None) -> BrowserContext:
        args = [*ARGS, f"--host-resolver-rules=MAP {EVIL} 127.0.0.1"]
        if extension is not None:
            args += [f"--disable-extensions-except={extension}", f"--load-extension={extension}"]
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / f"profile{len(contexts)}", executable_path=str(CHROMIUM), headless=True, args=args,
            timeout=STEP * 1000)
        contexts.append(context)
        context.set_default_timeout(STEP * 1000)
        return context

    yield launch
    for context in contexts:
        await context.close()


async def run(target: Page | Worker, script: str, arg: Any = None) -> Any:
    """Evaluate a JS function in a page or a service worker, bounded in time."""
    return await asyncio.wait_for(target.evaluate(script, arg), STEP)


async def open_page(context: BrowserContext, url: str) -> Page:
    page = await context.new_page()
    response = await page.goto(url)
    assert response is not None and response.ok, url
    return page


# ---------------------------------------------------------------- 1. MediaGo's extension (MV3 service worker)

MANIFEST = {
    "manifest_version": 3,
    "name": "fetchdeck test: MediaGo-like extension",
    "version": "1.0",
    "host_permissions": ["<all_urls>"],  # as MediaGo's manifest.config.ts grants
    "background": {"service_worker": "background.js"},
}
# mediago-client.ts: probeHttp() reads res.ok; importViaHttp() POSTs the tasks and, on !res.ok,
# shows (await res.json()).message.
BACKGROUND_JS = """
self.probeHttp = async (base) => {
  const res = await fetch(`${base}/healthy`, {method: "GET", headers: {Accept: "application/json"}});
  return {ok: res.ok, status: res.status};
};
self.importViaHttp = async (base, tasks) => {
  const res = await fetch(`${base}/api/downloads`, {
    method: "POST",
    headers: {"Content-Type": "application/json", Accept: "application/json"},
    body: JSON.stringify({tasks, startDownload: true}),
  });
  let body = null;
  try { body = await res.json(); } catch (e) { body = String(e); }
  return {ok: res.ok, status: res.status, body};
};
"""


def write_extension(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "manifest.json").write_text(json.dumps(MANIFEST))
    (root / "background.js").write_text(BACKGROUND_JS)
    return root


async def service_worker(context: BrowserContext) -> Worker:
    workers = context.service_workers
    return workers[0] if workers else await context.wait_for_event("serviceworker")


async def test_extension_service_worker_imports_a_download(make_api: ApiFactory, files: FileServer,
                                                           chromium: Launch, tmp_path: Path) -> None:
    api = await make_api()
    seen = Recorder(api)
    data = random_bytes(2_000_000, seed=31)
    media = files.add("/media/clip.mp4", data, content_type="video/mp4")

    context = await chromium(extension=write_extension(tmp_path / "extension"))
    worker = await service_worker(context)
    assert worker.url.startswith("chrome-extension://") and worker.url.endswith("/background.js"), worker.url
    origin = worker.url.removesuffix("/background.js")

    probe = await run(worker, "base => probeHttp(base)", api.url)
    assert probe == {"ok": True, "status": 200}
    # sniffer.ts formatHeaders: the media request's headers as a JSON object string.
    user_agent = await run(worker, "() => navigator.userAgent")
    sniffed = {"User-Agent": user_agent, "Referer": "https://video.example/watch/42", "X-From": "extension"}
    tasks = [{"name": "Clip title from the tab", "url": media, "type": "direct",
              "headers": json.dumps(sniffed), "folder": ""}]
    imported = await run(worker, "([base, tasks]) => importViaHttp(base, tasks)", [api.url, tasks])
    assert imported["ok"] is True and imported["status"] == 200, imported
    (task,) = imported["body"]["data"]

    # What Chromium really sent: the extension's origin, and Sec-Fetch-Site: none (host permissions).
    post = seen.one("POST", "/api/downloads")
    assert post.headers["origin"] == origin, post
    assert post.headers["sec-fetch-site"] == "none" and post.headers["sec-fetch-mode"] == "cors", post
    assert post.headers["content-type"] == "application/json" and post.status == 200, post
    assert post.response_headers["access-control-allow-origin"] == origin
    assert not seen.requests("OPTIONS", "/api/downloads")  # host permissions: no preflight
    # Its GETs carry no Origin at all (Chromium adds one to an extension's fetch only for other methods).
    health = seen.one("GET", "/healthy")
    assert "origin" not in health.headers and health.headers["sec-fetch-site"] == "none", health
    assert health.status == 200, health

    done = await api.wait_status(task["id"], "success", timeout=STEP)
    assert Path(done["file"]).read_bytes() == data
    received = [{k.lower(): v for k, v in h.items()} for h in files.stats.get("/media/clip.mp4").headers]
    assert received and all(h["referer"] == sniffed["Referer"] and h["x-from"] == "extension"
                            and h["user-agent"] == user_agent for h in received), received

    # The same extension against a server with allow_extensions = false: the import is refused.
    closed = await make_api(allow_extensions=False)
    seen_closed = Recorder(closed)
    refused = await run(worker, "([base, tasks]) => importViaHttp(base, tasks)", [closed.url, tasks])
    assert refused["ok"] is False and refused["status"] == 403, refused
    assert refused["body"]["code"] == 40301 and origin in refused["body"]["message"], refused
    assert seen_closed.one("POST", "/api/downloads").headers["origin"] == origin
    assert (await closed.call("GET", "/api/downloads"))["total"] == 0
    # Its reads too, though they carry no Origin (Sec-Fetch-Site: none outside a navigation gives them away).
    for path in ("/api/downloads", "/api/config"):
        read = await run(worker, "async (url) => (await fetch(url)).status", closed.url + path)
        assert read == 403, (path, read)
    events = await run(worker, """(url) => new Promise((resolve) => {
        const source = new EventSource(url);
        source.onopen = () => { source.close(); resolve("open"); };
        source.onerror = () => { source.close(); resolve("error"); };
    })""", closed.url + "/api/events")
    assert events == "error"


# ---------------------------------------------------------------- 2. Downie's SimpleApp page

# frontend/src/SimpleApp.tsx handleDownload(): POST /api/downloads/add, then response.json().
SIMPLEAPP_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Downie SimpleApp (test)</title></head><body>
<script>
window.handleDownload = async (base, url) => {
  try {
    const response = await fetch(`${base}/api/downloads/add`, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({url, quality: "best", post_processing: "none", cookies: ""}),
    });
    return {ok: response.ok, status: response.status, json: await response.json()};
  } catch (e) {
    return {error: `${e.name}: ${e.message}`};
  }
};
</script></body></html>"""


async def test_simpleapp_page_through_a_cors_preflight(make_api: ApiFactory, files: FileServer,
                                                       chromium: Launch) -> None:
    page_url = files.add("/simpleapp.html", SIMPLEAPP_HTML.encode(), content_type="text/html; charset=utf-8")
    page_origin = files.base_url
    video = files.add("/v.mp4", b"\0" * 1000, content_type="video/mp4")
    listed = await (await make_api(token="t", cors_origins=[page_origin])).listener("downie", token_required=False)
    unlisted = await (await make_api(token="t")).listener("downie", token_required=False)
    seen_listed, seen_unlisted = Recorder(listed), Recorder(unlisted)

    page = await open_page(await chromium(), page_url)
    added = await run(page, "([base, url]) => handleDownload(base, url)", [listed.url, video])
    assert added.get("ok") is True, added
    result = added["json"]
    assert isinstance(result["task_id"], str) and result["task_id"] and result["status"] == "created", result

    preflight = seen_listed.one("OPTIONS", "/api/downloads/add")
    assert preflight.headers["origin"] == page_origin, preflight
    assert preflight.headers["access-control-request-method"] == "POST"
    assert preflight.headers["access-control-request-headers"] == "content-type"
    assert preflight.status == 204 and preflight.response_headers["access-control-allow-origin"] == page_origin
    post = seen_listed.one("POST", "/api/downloads/add")
    assert post.headers["origin"] == page_origin and post.headers["sec-fetch-site"] == "same-site", post
    assert post.status == 200 and post.response_headers["access-control-allow-origin"] == page_origin
    tasks = (await listed.client.get("/api/downloads/tasks")).json()
    assert [t["id"] for t in tasks] == [result["task_id"]] and tasks[0]["url"] == video

    # The same page against a listener whose server does not list its origin: the preflight is
    # answered without CORS headers, so Chromium never sends the POST and the page sees a failed fetch.
    failed = await run(page, "([base, url]) => handleDownload(base, url)", [unlisted.url, video])
    assert failed == {"error": "TypeError: Failed to fetch"}, failed
    preflight = seen_unlisted.one("OPTIONS", "/api/downloads/add")
    assert preflight.headers["origin"] == page_origin, preflight
    assert "access-control-allow-origin" not in preflight.response_headers, preflight
    assert not seen_unlisted.requests("POST", "/api/downloads/add"), seen_unlisted.seen
    assert (await unlisted.client.get("/api/downloads/tasks")).json() == []


# ---------------------------------------------------------------- 3. a foreign page

FOREIGN_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>some web page</title></head><body>
<script>
window.openEvents = (url) => new Promise((resolve) => {
  const events = new EventSource(url);
  const got = [];
  for (const name of ["message", "config", "download-start", "download-success"]) {
    events.addEventListener(name, (e) => got.push(e.data));
  }
  events.onopen = () => { events.close(); resolve({opened: true, got}); };
  events.onerror = () => {
    const readyState = events.readyState;
    events.close();
    resolve({opened: false, readyState, got});
  };
});
window.read = async (url, init) => {
  try {
    const response = await fetch(url, init);
    let text = null;
    try { text = await response.text(); } catch (e) { text = String(e); }
    return {type: response.type, status: response.status, text};
  } catch (e) {
    return {error: `${e.name}: ${e.message}`};
  }
};
</script></body></html>"""


async def test_a_foreign_page_reads_and_writes_nothing(make_api: ApiFactory, files: FileServer,
                                                       chromium: Launch) -> None:
    """No token on the main listener: the Origin guard alone keeps both pages out."""
    api = await make_api()
    seen = Recorder(api)
    files.add("/page.html", FOREIGN_HTML.encode(), content_type="text/html; charset=utf-8")
    context = await chromium()
    body = json.dumps({"tasks": [{"type": "direct", "url": files.url("/x.bin")}], "startDownload": True})
    for page_origin, site in ((files.base_url, "same-site"), (f"http://{EVIL}:{files.port}", "cross-site")):
        seen.seen.clear()
        page = await open_page(context, f"{page_origin}/page.html")

        events = await run(page, "url => openEvents(url)", f"{api.url}/api/events")
        assert events == {"opened": False, "readyState": 2, "got": []}, events  # CLOSED: no reconnect
        stream = seen.one("GET", "/api/events")
        assert stream.headers["origin"] == page_origin and stream.headers["sec-fetch-site"] == site, stream
        assert stream.headers["sec-fetch-mode"] == "cors" and stream.status == 403, stream

        listing = await run(page, "url => read(url)", f"{api.url}/api/downloads")
        assert listing == {"error": "TypeError: Failed to fetch"}, listing
        get = seen.one("GET", "/api/downloads")
        assert get.headers["origin"] == page_origin and get.status == 403, get
        assert "access-control-allow-origin" not in get.response_headers

        # What a page may send without a preflight: a no-cors "simple" POST. It reaches the server,
        # which refuses it; the page gets an opaque response.
        blind = await run(page, "([url, body]) => read(url, {method: 'POST', mode: 'no-cors', body})",
                          [f"{api.url}/api/downloads", body])
        assert blind == {"type": "opaque", "status": 0, "text": ""}, blind
        # And a JSON POST: stopped at the preflight.
        cors = await run(page, "([url, body]) => read(url, {method: 'POST', body, headers: "
                               "{'Content-Type': 'application/json'}})", [f"{api.url}/api/downloads", body])
        assert cors == {"error": "TypeError: Failed to fetch"}, cors
        (simple,) = seen.requests("POST", "/api/downloads")  # the preflighted one never came
        assert simple.headers["origin"] == page_origin and simple.headers["content-type"].startswith("text/plain")
        assert simple.status == 403, simple
        preflight = seen.one("OPTIONS", "/api/downloads")
        assert "access-control-allow-origin" not in preflight.response_headers, preflight
        await page.close()
    assert (await api.call("GET", "/api/downloads"))["total"] == 0
    assert "/x.bin" not in files.stats

"""fetchdeck's web page (server/web.py, server/web/) in a real headless Chromium against a real fetchdeck.

One browser and two servers for the module: `deck` without a token (and a user theme file in its themes
dir), `locked` with one. Every request
the page sends is recorded at the server (tests/support/asgi_recorder.py), so the tests assert what
Chromium really sent (one SSE stream, the token as a header and never in a URL), not only what it shows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Page, expect

import server.sse
from core.models import Task, TaskKind, TaskOptions, TaskStatus
from server.web import CSP
from tests.api.conftest import Api
from tests.browser.conftest import OpenPage, row, run, running_fetchdeck
from tests.support.asgi_recorder import Recorder
from tests.support.chromium import STEP, needs_chromium
from tests.support.fileserver import FileServer, random_bytes

pytestmark = [needs_chromium, pytest.mark.asyncio(loop_scope="module")]
TOKEN = "s3cret-web-token"
XSS = "<img src=x onerror=alert(1)>"
USER_THEME = 'name = "my rose"\ndark = false\n[colors]\nprimary = "#aa3377"\nbackground = "#fff0f5"\n'


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deck(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    root = tmp_path_factory.mktemp("deck")
    (root / "themes").mkdir()
    (root / "themes" / "rose.toml").write_text(USER_THEME)  # the user's own theme (Locations.themes_dir)
    async with running_fetchdeck(root, themes_dir=root / "themes") as api:
        yield api


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def locked(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with running_fetchdeck(tmp_path_factory.mktemp("locked"), token=TOKEN) as api:
        yield api


async def wait_for(predicate: object, what: str, timeout: float = STEP) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def add_through_form(page: Page, urls: list[str], *, name: str = "", start: bool = True) -> None:
    await page.click("#add-open")
    await page.fill("#add-urls", "\n".join(urls))
    if name:
        await page.fill("#add-name", name)
    if not start:
        await page.uncheck("#add-start")
    await page.click("#add-submit")
    await expect(page.locator("#add")).not_to_be_visible()


async def open_details(page: Page, name: str) -> None:
    await row(page, name).locator(".c-name").click()
    await expect(page.locator("#d-name")).to_have_text(name)


# ---------------------------------------------------------------- add, watch, one stream, CSP


async def test_add_a_task_and_watch_it_finish(deck: Api, files: FileServer, open_page: OpenPage) -> None:
    seen = Recorder(deck)
    data = random_bytes(3_000_000, seed=16)
    url = files.add("/web/first.bin", data)
    page = await open_page(deck.url + "/")  # `/` redirects to the page
    assert page.url == deck.url + "/ui/"
    await expect(page.locator("#main")).to_be_visible()
    await expect(page.locator("#login")).to_be_hidden()

    await page.click("#add-open")
    await page.fill("#add-urls", url)
    await expect(page.locator("#add-detected")).to_have_text("Detected: direct (HTTP)")
    await page.fill("#add-name", "first.bin")
    await page.click("#add-submit")
    done = row(page, "first.bin")
    await expect(done.locator(".c-status")).to_have_text("Finished")
    await expect(done.locator(".pct")).to_have_text("100 %")
    assert await done.locator(".fill").evaluate("el => el.style.transform") == "scaleX(1)"
    (task,) = (await deck.call("GET", "/api/downloads"))["list"]
    assert task["status"] == "success" and task["name"] == "first.bin"
    assert Path(task["file"]).read_bytes() == data

    # The theme picker: the TUI's themes, kept in the browser.
    background = "() => getComputedStyle(document.body).backgroundColor"
    assert await run(page, background) == "rgb(17, 21, 28)"  # fetchdeck-dark, [ui] theme's default
    await page.select_option("#theme", "fetchdeck-light")
    assert await run(page, background) == "rgb(246, 247, 249)"
    assert await run(page, "() => localStorage.getItem('fetchdeck.theme')") == "fetchdeck-light"

    # One page, one SSE stream: the server's load is a remote TUI's. Nothing polls.
    assert len(seen.requests("GET", "/api/events")) == 1
    assert deck.handle.app.extensions["fetchdeck"].streams.open_streams == 1
    lists = [s.query for s in seen.requests("GET", "/api/downloads") if "sec-fetch-site" in s.headers]
    assert lists == ["pageSize=1", "current=1&pageSize=10000"], lists  # the probe and the one load
    assert seen.one("POST", "/api/downloads").headers["content-type"] == "application/json"

    # The page and its files carry the CSP; an inline script is refused by it.
    for path in ("/ui/", "/ui/app.js", "/ui/style.css", "/ui/themes.css"):
        served = [s for s in seen.seen if s.path == path]
        assert served and served[0].status == 200, path
        assert served[0].response_headers["content-security-policy"] == CSP, path
    assert "script-src 'self'" in CSP and "'unsafe-inline'" not in CSP and "object-src 'none'" in CSP
    assert "frame-ancestors 'none'" in CSP
    refused = await run(page, """() => new Promise((resolve) => {
        document.addEventListener("securitypolicyviolation",
            (e) => resolve({directive: e.effectiveDirective, ran: window.__inline === 1}), {once: true});
        const script = document.createElement("script");
        script.textContent = "window.__inline = 1";
        document.body.appendChild(script);
    })""")
    assert refused == {"directive": "script-src-elem", "ran": False}, refused
    assert await run(page, "() => window.__inline") is None


# ---------------------------------------------------------------- the stream drops


async def test_a_dropped_stream_resumes_from_its_last_event_id(deck: Api, files: FileServer,
                                                               open_page: OpenPage) -> None:
    seen = Recorder(deck)
    streams = deck.handle.app.extensions["fetchdeck"].streams
    page = await open_page(deck.url + "/ui/")
    await wait_for(lambda: streams.open_streams == 1, "the page's stream")
    await expect(page.locator("#counts")).to_contain_text("tasks")
    before = deck.engine.bus.last_seq
    for sub in list(streams._subs):  # the connection drops (a proxy restart, a laptop waking up)
        sub.close()
    (task,) = await deck.create({"url": files.add("/web/meanwhile.bin", b"m" * 5000), "name": "meanwhile.bin"},
                                start=False)  # happens while the page is not listening
    await expect(row(page, "meanwhile.bin")).to_have_count(1, timeout=STEP * 1000)
    first, second = seen.requests("GET", "/api/events")
    assert "last-event-id" not in first.headers
    assert int(second.headers["last-event-id"]) >= before, second.headers  # replayed from there: no resync
    assert second.headers.get("accept") == first.headers.get("accept") == "text/event-stream"
    assert [s.path for s in seen.seen if s.path.startswith("/api/downloads/")] == [f"/api/downloads/{task['id']}"]
    assert len([s for s in seen.requests("GET", "/api/downloads") if "sec-fetch-site" in s.headers]) == 2
    await wait_for(lambda: streams.open_streams == 1, "one stream again")


# ---------------------------------------------------------------- stop, start, delete with files


async def test_stop_start_a_throttled_task_then_delete_it_with_its_file(
        deck: Api, files: FileServer, open_page: OpenPage) -> None:
    data = random_bytes(1_500_000, seed=17)
    url = files.add("/web/slow.bin", data)
    files.faults.throttle("/web/slow.bin", 100_000)
    page = await open_page(deck.url + "/ui/")
    await add_through_form(page, [url], name="slow.bin")
    slow = row(page, "slow.bin")
    await expect(slow.locator(".c-status")).to_have_text("Downloading")
    await expect(slow.locator(".c-speed")).not_to_have_text("")
    await expect(page.locator("#total-speed")).to_have_text(re.compile(r"^[0-9.]+ (B|KiB|MiB)/s$"))
    await expect(page.locator("#total-speed")).not_to_have_text("0 B/s")
    await open_details(page, "slow.bin")
    (task,) = [t for t in (await deck.call("GET", "/api/downloads"))["list"] if t["name"] == "slow.bin"]

    await page.click("#d-stop")
    await expect(slow.locator(".c-status")).to_have_text("Stopped")
    await expect(page.locator("#d-status")).to_have_text("Stopped")
    assert (await deck.task(task["id"]))["status"] == "stopped"
    await page.click("#d-start")
    await expect(slow.locator(".c-status")).to_have_text("Downloading")
    files.faults.throttle("/web/slow.bin", None)
    await expect(slow.locator(".c-status")).to_have_text("Finished")
    await expect(page.locator("#d-log")).to_contain_text("slow.bin")
    finished = await deck.task(task["id"])
    path = Path(finished["file"])
    assert path.read_bytes() == data

    await page.click("#d-delete-files")
    await expect(page.locator("#d-delete-files")).to_have_text("Click again: delete the file too")
    await page.click("#d-delete-files")
    await expect(slow).to_have_count(0)
    await expect(page.locator("#details")).to_be_hidden()
    await wait_for(lambda: not path.exists(), "the file to be deleted")
    await deck.fail("GET", f"/api/downloads/{task['id']}", 404, 40401)


# ---------------------------------------------------------------- filter


async def test_filter_by_text_and_status(deck: Api, files: FileServer, open_page: OpenPage) -> None:
    first = files.add("/web/one.bin", random_bytes(10_000, seed=18))
    second = files.add("/web/two.bin", random_bytes(10_000, seed=20))
    missing = files.url("/web/missing.bin")
    await deck.create({"url": first, "name": "alpha-report.bin"}, {"url": second, "name": "beta-report.bin"},
                      start=False)
    (broken,) = await deck.create({"url": missing, "name": "gamma-broken.bin"}, start=True)
    await deck.wait_status(broken["id"], "failed")
    page = await open_page(deck.url + "/ui/")
    await expect(row(page, "gamma-broken.bin").locator(".c-status")).to_have_text("Failed")
    visible = page.locator(".row:not([hidden]) .c-name")

    await page.fill("#filter-text", "ALPHA")
    await expect(visible).to_have_text(["alpha-report.bin"])
    await page.fill("#filter-text", "report")
    await expect(visible).to_have_text(["beta-report.bin", "alpha-report.bin"])
    await page.fill("#filter-text", "")
    await page.select_option("#filter-status", "failed")
    await expect(visible).to_have_text(["gamma-broken.bin"])
    await open_details(page, "gamma-broken.bin")
    await expect(page.locator("#d-error")).to_contain_text("404")
    await expect(page.locator("#d-retry")).to_be_visible()
    seen = Recorder(deck)
    await page.click("#d-retry")  # runs again (and fails again: the URL is still a 404)
    start = f"/api/downloads/{broken['id']}/start"
    await wait_for(lambda: [s.status for s in seen.requests("POST", start)] == [200], "the retry")
    await expect(page.locator("#d-status")).to_have_text("Failed")
    await expect(page.locator("#d-log")).to_contain_text("404")
    await page.select_option("#filter-status", "stopped")
    await page.fill("#filter-text", "-report")  # both filters at once (other tests' tasks are stopped too)
    await expect(visible).to_have_text(["beta-report.bin", "alpha-report.bin"])


# ---------------------------------------------------------------- text, never markup


async def test_a_task_named_like_markup_shows_as_text(deck: Api, files: FileServer, open_page: OpenPage) -> None:
    """The engine's name rule would turn `<` into `_`, so the task is written to the store as it is
    (what another node or an older version could have stored): the page must show it as text anyway,
    and its error and log lines."""
    now = time.time()
    (task,) = await deck.engine.store.insert_many([Task(
        id=0, kind=TaskKind.HTTP, url=files.url("/web/markup.bin"), name=XSS, folder="", headers=(),
        options=TaskOptions(),
        status=TaskStatus.FAILED, error="<b>bold</b> <script>alert(2)</script>", created_at=now, updated_at=now)])
    await deck.engine.store.append_logs([(task.id, now, "log line <img src=y onerror=alert(3)>")])
    page = await open_page(deck.url + "/ui/")
    await page.fill("#filter-text", "onerror")
    await expect(page.locator(".row:not([hidden]) .c-name")).to_have_text([XSS])
    await open_details(page, XSS)
    await expect(page.locator("#d-error")).to_have_text("<b>bold</b> <script>alert(2)</script>")
    await expect(page.locator("#d-log")).to_contain_text("log line <img src=y onerror=alert(3)>")
    counts = await run(page, """() => ({img: document.querySelectorAll("img").length,
        b: document.querySelectorAll("b").length, scripts: document.querySelectorAll("script").length,
        named: document.querySelector("#d-name").textContent})""")
    assert counts == {"img": 0, "b": 0, "scripts": 1, "named": XSS}, counts  # the one script: app.js
    # open_page's teardown fails the test if any dialog (alert) opened or a script error happened


# ---------------------------------------------------------------- token


async def test_log_in_with_the_token(locked: Api, files: FileServer, open_page: OpenPage) -> None:
    seen = Recorder(locked)
    await locked.create({"url": files.add("/web/locked.bin", b"x" * 1000), "name": "behind-the-token.bin"},
                        start=False)
    page = await open_page(locked.url + "/ui/", width=375, height=700)  # a phone
    await expect(page.locator("#login")).to_be_visible()
    await expect(page.locator("#main")).to_be_hidden()

    await page.fill("#login-token", "not-the-token")
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#login-message")).to_contain_text("Wrong token")
    assert await run(page, "() => localStorage.getItem('fetchdeck.token')") is None

    await page.fill("#login-token", TOKEN)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#main")).to_be_visible()
    await expect(row(page, "behind-the-token.bin")).to_have_count(1)
    assert await run(page, "() => localStorage.getItem('fetchdeck.token')") == TOKEN
    assert TOKEN not in page.url

    fits = "() => document.documentElement.scrollWidth <= window.innerWidth"
    assert await run(page, fits), "the page scrolls sideways at a phone's width"
    assert await row(page, "behind-the-token.bin").evaluate("el => el.getBoundingClientRect().height") == 64
    await page.reload()  # kept in the browser: no second login
    await expect(row(page, "behind-the-token.bin")).to_have_count(1)
    await expect(page.locator("#login")).to_be_hidden()

    events = seen.requests("GET", "/api/events")
    assert len(events) == 2 and all(e.headers["authorization"] == f"Bearer {TOKEN}" for e in events), events
    assert all(e.status == 200 for e in events)
    assert all(TOKEN not in s.query and TOKEN not in s.path for s in seen.seen)
    refused = [s for s in seen.seen if s.status == 401]
    assert [s.headers.get("authorization") for s in refused] == [None, "Bearer not-the-token"], refused


# ---------------------------------------------------------------- a finished file from the browser


async def test_download_a_finished_file(deck: Api, files: FileServer, open_page: OpenPage) -> None:
    """The details panel's Download file: POST .../file-link (server/files.py), then the signed link."""
    data = random_bytes(200_000, seed=19)
    (task,) = await deck.create({"url": files.add("/web/keep.bin", data), "name": "keep.bin"}, start=True)
    await deck.wait_status(task["id"], "success")
    page = await open_page(deck.url + "/ui/")
    await open_details(page, "keep.bin")
    async with page.expect_download() as waiting:
        await page.click("#d-file-link")
    download = await waiting.value
    saved = await download.path()
    assert saved is not None and Path(saved).read_bytes() == data
    assert download.suggested_filename == "keep.bin"
    assert Path((await deck.task(task["id"]))["file"]).read_bytes() == data  # a download leaves the file in place


# ---------------------------------------------------------------- the user's own theme


async def test_the_users_own_theme_is_in_the_picker(deck: Api, open_page: OpenPage) -> None:
    page = await open_page(deck.url + "/ui/")
    labels = await page.locator("#theme option").all_text_contents()
    assert "My rose" in labels and "Light" in labels and "System" in labels, labels
    await page.select_option("#theme", "my rose")
    assert await run(page, "() => getComputedStyle(document.body).backgroundColor") == "rgb(255, 240, 245)"
    assert await run(page, "() => getComputedStyle(document.documentElement).colorScheme") == "light"


# ---------------------------------------------------------------- a row's own button, plain delete


async def test_a_rows_own_button_stops_and_starts_and_delete_keeps_the_file(
        deck: Api, files: FileServer, open_page: OpenPage) -> None:
    data = random_bytes(1_000_000, seed=21)
    url = files.add("/web/row.bin", data)
    files.faults.throttle("/web/row.bin", 100_000)
    (task,) = await deck.create({"url": url, "name": "row-button.bin"}, start=True)
    page = await open_page(deck.url + "/ui/")
    mine = row(page, "row-button.bin")
    button = mine.locator("button.act")
    await expect(mine.locator(".c-status")).to_have_text("Downloading")
    await expect(button).to_have_text("Stop")
    await button.click()
    await expect(mine.locator(".c-status")).to_have_text("Stopped")
    await expect(button).to_have_text("Start")
    assert (await deck.task(task["id"]))["status"] == "stopped"
    await expect(page.locator("#details")).to_be_hidden()  # the row's button is not a click on the row
    await button.click()
    await expect(mine.locator(".c-status")).to_have_text("Downloading")
    files.faults.throttle("/web/row.bin", None)
    await expect(mine.locator(".c-status")).to_have_text("Finished")
    await expect(button).to_have_text("File")
    path = Path((await deck.task(task["id"]))["file"])
    assert path.read_bytes() == data

    await open_details(page, "row-button.bin")
    await page.click("#d-delete")  # plain Delete: the task goes, its file stays
    await expect(mine).to_have_count(0)
    await expect(page.locator("#details")).to_be_hidden()
    await deck.fail("GET", f"/api/downloads/{task['id']}", 404, 40401)
    assert path.read_bytes() == data


# ---------------------------------------------------------------- keyboard


FOCUSED = """() => {
    const el = document.activeElement;
    const row = el && el.closest(".row");
    if (!row) return {row: null, tag: el ? el.tagName : null};
    return {row: row.querySelector(".c-name").textContent, tag: el.tagName, text: el.textContent};
}"""


async def test_rows_by_keyboard(deck: Api, files: FileServer, open_page: OpenPage) -> None:
    names = ["key-one.bin", "key-two.bin", "key-three.bin"]
    await deck.create(*({"url": files.add(f"/web/{n}", n.encode() * 100), "name": n} for n in names), start=False)
    page = await open_page(deck.url + "/ui/")
    await page.fill("#filter-text", "key-")
    await expect(page.locator(".row:not([hidden]) .c-name")).to_have_text(names[::-1])
    await page.focus("#filter-status")
    await page.keyboard.press("Tab")  # one row in the tab order: the first in view
    assert await run(page, FOCUSED) == {"row": "key-three.bin", "tag": "DIV", "text": await row(
        page, "key-three.bin").text_content()}
    for key, expected in (("ArrowDown", "key-two.bin"), ("ArrowDown", "key-one.bin"), ("ArrowDown", "key-one.bin"),
                          ("ArrowUp", "key-two.bin"), ("Home", "key-three.bin"), ("End", "key-one.bin"),
                          ("ArrowUp", "key-two.bin")):
        await page.keyboard.press(key)
        assert (await run(page, FOCUSED))["row"] == expected, key
    await page.keyboard.press("Enter")
    await expect(page.locator("#details")).to_be_visible()
    await expect(page.locator("#d-name")).to_have_text("key-two.bin")
    await page.keyboard.press("Escape")
    await expect(page.locator("#details")).to_be_hidden()
    assert (await run(page, FOCUSED))["row"] == "key-two.bin"
    await page.keyboard.press("Tab")  # the row's own button, then out of the list
    assert await run(page, FOCUSED) == {"row": "key-two.bin", "tag": "BUTTON", "text": "Start"}
    await page.keyboard.press("Enter")
    await expect(row(page, "key-two.bin").locator(".c-status")).to_have_text("Finished")
    await expect(page.locator("#details")).to_be_hidden()
    await page.keyboard.press("Tab")
    assert (await run(page, FOCUSED))["row"] is None


# ---------------------------------------------------------------- the token changes under an open page


async def test_the_token_changes_while_the_page_is_open(locked: Api, files: FileServer, open_page: OpenPage,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The server restarts with another token while the page's stream is open: the page's reconnect is
    refused once, and the page goes back to its login form with a readable message, forgets the refused
    token and does not try again with it; the new token logs in again."""
    monkeypatch.setattr(server.sse, "RETRY_MS", 200)  # the page reconnects after the server's `retry:`
    state = locked.handle.app.extensions["fetchdeck"]
    await locked.create({"url": files.add("/web/t.bin", b"t" * 1000), "name": "token-change.bin"}, start=False)
    page = await open_page(locked.url + "/ui/")
    await page.fill("#login-token", TOKEN)
    await page.click("#login-form button[type=submit]")
    await expect(row(page, "token-change.bin")).to_have_count(1)
    await wait_for(lambda: state.streams.open_streams == 1, "the page's stream")
    seen = Recorder(locked)
    console: list[str] = []  # from here on
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    old, new_token = state.policy, "the-new-token"
    state.policy = dataclasses.replace(old, token=new_token)
    try:
        for sub in list(state.streams._subs):  # the restart drops the stream
            sub.close()
        state.streams._flush()  # now, not at the next heartbeat
        await expect(page.locator("#login")).to_be_visible()
        await expect(page.locator("#main")).to_be_hidden()
        await expect(page.locator("#login-message")).to_have_text(
            "The server refused the token (it was changed or revoked); log in with the new one.")
        assert await run(page, "() => localStorage.getItem('fetchdeck.token')") is None
        refused = [s for s in seen.requests("GET", "/api/events") if s.status == 401]
        assert len(refused) == 1 and refused[0].headers["authorization"] == f"Bearer {TOKEN}"
        deadline = asyncio.get_running_loop().time() + 5 * 0.2  # five retry delays: no reconnect
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
            assert len(seen.requests("GET", "/api/events")) == 1, "the page reconnects with a refused token"
        assert state.streams.open_streams == 0

        await page.fill("#login-token", new_token)
        await page.click("#login-form button[type=submit]")
        await expect(row(page, "token-change.bin")).to_have_count(1)
        await wait_for(lambda: state.streams.open_streams == 1, "the page's new stream")
    finally:
        state.policy = old
    assert [(s.status, s.headers["authorization"]) for s in seen.requests("GET", "/api/events")] == [
        (401, f"Bearer {TOKEN}"), (200, f"Bearer {new_token}")]
    assert all("401" in line for line in console) and len(console) <= 1, console  # the one refused request

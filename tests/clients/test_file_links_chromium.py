"""Downloads from the browser in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

A page of fetchdeck's own origin asks for a file link with the token and follows it without one, as the
web page's download button does: Chromium saves the file under the name fetchdeck chose, byte for byte,
a hostile name never runs as markup, a file named `….html` is downloaded rather than shown, and a ranged
fetch (what a <video> sends) gets its 206.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.api.conftest import ApiFactory
from tests.support.chromium import STEP, launch, needs_chromium
from tests.support.fileserver import FileServer, random_bytes

TOKEN = "browser-token"

pytestmark = needs_chromium

LINK_AND_FETCH = """async ([id, token]) => {
  const made = await fetch(`/api/downloads/${id}/file-link`,
                           {method: "POST", headers: {Authorization: `Bearer ${token}`}});
  const link = (await made.json()).data;
  const part = await fetch(link.url, {headers: {Range: "bytes=0-9"}});
  return {link, status: part.status, length: (await part.arrayBuffer()).byteLength};
}"""
CLICK = """(url) => { const a = document.createElement("a"); a.href = url; a.download = ""; document.body.append(a);
  a.click(); }"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await launch(pw)
        yield launched
        await launched.close()


async def test_the_browser_downloads_through_a_link(make_api: ApiFactory, files: FileServer, browser: Browser,
                                                    tmp_path: Path) -> None:
    api = await make_api(token=TOKEN)
    api.client.headers["Authorization"] = f"Bearer {TOKEN}"
    specs = [("<img src=x onerror=alert(1)>.mp4", random_bytes(50_000, seed=7)),
             ('a"b\r\nX-Evil: 1;.html', b"<script>alert(2)</script><img src=x onerror=alert(3)>")]
    tasks = await api.create(*({"type": "direct", "url": files.add(f"/b{i}", data), "name": name}
                               for i, (name, data) in enumerate(specs)), start=True)
    done = [await api.wait_status(t["id"], "success") for t in tasks]

    context = await browser.new_context(accept_downloads=True)
    context.set_default_timeout(STEP * 1000)
    page = await context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    assert (await page.goto(f"{api.url}/healthy")) is not None  # a page of fetchdeck's own origin

    for task, (_, data) in zip(done, specs, strict=True):
        result = await asyncio.wait_for(page.evaluate(LINK_AND_FETCH, [task["id"], TOKEN]), STEP)
        assert (result["status"], result["length"]) == (206, 10)
        name = Path(task["file"]).name
        assert result["link"]["name"] == name
        async with page.expect_download() as started:
            await page.evaluate(CLICK, result["link"]["url"])
        download = await started.value
        assert download.suggested_filename == name
        saved = tmp_path / f"saved{task['id']}"
        await download.save_as(saved)
        assert saved.read_bytes() == data

    # opened as a page (a typed or pasted link): still a download, nothing rendered, nothing run
    html_link = (await api.call("POST", f"/api/downloads/{done[1]['id']}/file-link"))["url"]
    async with page.expect_download() as started:
        with pytest.raises(Exception, match="Download is starting"):
            await page.goto(f"{api.url}{html_link}")
    assert (await started.value).suggested_filename == Path(done[1]["file"]).name
    assert page.url == f"{api.url}/healthy"
    assert dialogs == []
    await context.close()

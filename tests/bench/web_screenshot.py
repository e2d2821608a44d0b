#!/usr/bin/env python3
"""Regenerate docs/web-page.png (and docs/web-page-phone.png): the web page with tasks in every state.

    .venv/bin/python tests/bench/web_screenshot.py [--out docs]

A real fetchdeck (engine, API, the page) and a real local file server on 127.0.0.1: a few files finish,
two throttled ones are still downloading when the picture is taken, one URL answers 404 (failed), one task
is stopped and one waits. Debian's /usr/bin/chromium takes the screenshots through Playwright.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from playwright.async_api import async_playwright  # noqa: E402

from tests.browser.conftest import running_fetchdeck  # noqa: E402
from tests.support.chromium import launch  # noqa: E402
from tests.support.fileserver import FileServer, random_bytes  # noqa: E402


async def main(out: Path) -> None:
    with FileServer() as files, tempfile.TemporaryDirectory() as tmp:
        async with running_fetchdeck(Path(tmp), max_concurrent=4) as api:
            finished = [("Quarterly report.pdf", 2_400_000), ("ubuntu-24.04-netboot.tar.gz", 8_000_000),
                        ("Holiday photos.zip", 5_200_000)]
            for i, (name, size) in enumerate(finished):
                (task,) = await api.create({"url": files.add(f"/done/{i}.bin", random_bytes(size, seed=i)),
                                            "name": name}, start=True)
                await api.wait_status(task["id"], "success")
            (failed,) = await api.create({"url": files.url("/gone/lecture-07.mp4"), "name": "lecture-07.mp4"},
                                         start=True)
            await api.wait_status(failed["id"], "failed")
            await api.create({"url": files.add("/later.iso", random_bytes(1000, seed=9)),
                              "name": "debian-13-amd64-netinst.iso"}, start=False)
            for i, (name, rate) in enumerate((("Big Buck Bunny 1080p.mp4", 700_000),
                                              ("Podcast episode 212.mp3", 300_000))):
                path = f"/slow/{i}.bin"
                files.add(path, random_bytes(60_000_000, seed=20 + i))
                files.faults.throttle(path, rate)
                await api.create({"url": files.url(path), "name": name}, start=True)
            (stopped,) = await api.create({"url": files.add("/stop.bin", random_bytes(50_000_000, seed=30)),
                                           "name": "dataset-part-03.parquet"}, start=False)
            files.faults.throttle("/stop.bin", 2_000_000)
            await api.call("POST", f"/api/downloads/{stopped['id']}/start")
            # stopped part-way: once some megabytes are in (a state, not a time)
            await api.wait_until(stopped["id"], lambda t: t["downloaded"] >= 5_000_000, 60)
            await api.call("POST", f"/api/downloads/{stopped['id']}/stop")
            async with async_playwright() as pw:
                browser = await launch(pw)
                for name, viewport in (("web-page.png", {"width": 1280, "height": 560}),
                                       ("web-page-phone.png", {"width": 375, "height": 720})):
                    page = await browser.new_page(viewport=viewport, device_scale_factor=1)
                    await page.goto(api.url + "/ui/")
                    await page.wait_for_selector(".row.st-downloading")
                    if name == "web-page.png":  # the graph plots wall time: these waits ARE the picture's content
                        await asyncio.sleep(10)
                        files.faults.throttle("/slow/0.bin", 1_000_000)
                        await asyncio.sleep(12)
                    await asyncio.sleep(2)
                    await page.screenshot(path=str(out / name))
                    await page.close()
                await browser.close()
            files.faults.throttle(None, None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    asyncio.run(main(parser.parse_args().out))

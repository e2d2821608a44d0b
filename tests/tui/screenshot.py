"""Regenerate docs/screenshot.svg (the README's picture of the main screen).

    python -m tests.tui.screenshot [docs/screenshot.svg] [--size 130x32]
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from core.config import Config, DownloadConfig
from tests.tui.fakes import MemoryClient, sample_tasks
from tui.app import FetchdeckApp


async def shoot(path: Path, size: tuple[int, int]) -> None:
    app = FetchdeckApp(MemoryClient(sample_tasks()), Config(download=DownloadConfig(dir="/home/ada/Downloads")),
                       api_note="API 127.0.0.1:39719")
    async with app.run_test(size=size) as pilot:
        while not app.sync.loaded.is_set():
            await pilot.pause(0.02)
        await pilot.pause(0.4)
        await pilot.press("down")  # the HLS download: segments, speed, ETA in the details
        await pilot.pause(0.4)
        app.save_screenshot(filename=path.name, path=str(path.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", nargs="?", default="docs/screenshot.svg")
    parser.add_argument("--size", default="130x32")
    args = parser.parse_args()
    cols, rows = (int(v) for v in args.size.split("x"))
    asyncio.run(shoot(Path(args.path), (cols, rows)))
    print(args.path)


if __name__ == "__main__":
    main()

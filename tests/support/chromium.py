"""Debian's Chromium for the browser tests, driven by Playwright (never a downloaded browser).

One owner of: where the browser is, the skip mark for a machine without it, the time any one browser step
may take, and how a headless browser is launched (`launch`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Playwright

CHROMIUM = Path("/usr/bin/chromium")
STEP = 10  # seconds for any one thing the browser does
ARGS = ("--headless=new", "--no-sandbox")  # --no-sandbox: CI runs as root

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium; .ci/run installs it)",
)


async def launch(pw: Playwright) -> Browser:
    """A headless Chromium (close it when done)."""
    return await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=list(ARGS),
                                    timeout=STEP * 1000)

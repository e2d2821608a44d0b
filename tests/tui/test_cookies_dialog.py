"""The cookies dialog against a real engine: a pasted cookies.txt lands in the jar, the dialog says how many
cookies for which domains, and no value stays on screen."""

from __future__ import annotations

from collections.abc import Callable

from core.engine import Engine
from tests.tui.conftest import screen_text, wait_for
from tui.app import FetchdeckApp
from tui.client import LocalClient
from tui.screens.cookies import CookiesScreen
from tui.screens.main import MainScreen

PASTE = ("# Netscape HTTP Cookie File\n"
         ".example.com\tTRUE\t/\tFALSE\t0\tsid\tpasted-s3cret\n"
         "cdn.example.net\tFALSE\t/\tTRUE\t4102444800\ttoken\tpasted-s3cret-2\n")


async def test_paste_import_shows_domains_and_counts_only(
    engine: Engine, make_app: Callable[..., FetchdeckApp]
) -> None:
    app = make_app(LocalClient(engine))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("C")
        await wait_for(pilot, lambda: isinstance(app.screen, CookiesScreen), what="the cookies dialog")
        screen = app.screen
        assert isinstance(screen, CookiesScreen)
        await pilot.press("ctrl+s")  # nothing pasted yet
        await wait_for(pilot, lambda: "Paste a cookies.txt first" in str(screen.result.render()), what="hint")

        screen.text_area.load_text("not a cookies file\n")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "line 1" in str(screen.result.render()), what="the error")
        assert isinstance(app.screen, CookiesScreen)

        screen.text_area.load_text(PASTE)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: screen.report is not None, what="the import")
        shown = screen_text(app)
        assert "Imported 2 cookie(s) for 2 domain(s): cdn.example.net (1), example.com (1)" in shown
        assert "s3cret" not in shown and screen.text_area.text == ""
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="closed")
    assert engine.cookies is not None
    assert {(d.domain, d.cookies) for d in engine.cookies.summary()} == {("example.com", 1), ("cdn.example.net", 1)}
    assert (engine.cookies.directory / "example.com.txt").stat().st_mode & 0o777 == 0o600

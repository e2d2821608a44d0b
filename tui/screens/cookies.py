"""The cookies dialog: paste a Netscape cookies.txt, import it into the engine's jar (core/cookies.py).

What it shows afterwards is how many cookies for which domains, never a value; the pasted text is cleared
from the box once imported. Errors (a line that is no cookies.txt, no jar) are shown under the box and
the dialog stays open.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static, TextArea

from core.cookies import ImportReport
from tui.client import ClientError

HINT = ("Paste a cookies.txt (Netscape format, as browser extensions export it). "
        "Every download to those domains sends them; from the command line: fetchdeck cookies import FILE "
        "or --from-browser firefox.")


class CookiesScreen(ModalScreen[ImportReport | None]):
    """Returns the last import's report (None if nothing was imported)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="cookies-close"),
        Binding("ctrl+s", "import_cookies", "Import", id="cookies-import"),
    ]

    def __init__(self, submit: Callable[[str], Awaitable[ImportReport]]) -> None:
        super().__init__()
        self.submit = submit
        self.report: ImportReport | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="cookies-dialog", classes="dialog") as dialog:
            dialog.border_title = "Cookies"
            yield Static(HINT, id="cookies-hint", markup=False)
            yield TextArea(id="cookies-text", soft_wrap=False, show_line_numbers=False)
            yield Static("", id="cookies-result", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Import", variant="primary", id="cookies-ok", compact=True)
                yield Button("Close", id="cookies-cancel", compact=True)

    @property
    def text_area(self) -> TextArea:
        return self.query_one("#cookies-text", TextArea)

    @property
    def result(self) -> Static:
        return self.query_one("#cookies-result", Static)

    def on_mount(self) -> None:
        self.text_area.focus()

    @on(Button.Pressed, "#cookies-ok")
    def action_import_cookies(self) -> None:
        self._import(self.text_area.text)

    @work(exclusive=True)
    async def _import(self, text: str) -> None:
        if not text.strip():
            self._show("Paste a cookies.txt first.", error=True)
            return
        try:
            report = await self.submit(text)
        except ClientError as exc:
            self._show(str(exc), error=True)
            return
        self.report = report
        self.text_area.clear()  # the values do not stay on screen
        said = report.describe()
        self._show(said[:1].upper() + said[1:] + ".", error=not report.domains)

    def _show(self, text: str, error: bool) -> None:
        self.result.update(text)
        self.result.set_class(error, "-error")

    @on(Button.Pressed, "#cookies-cancel")
    def action_close(self) -> None:
        self.dismiss(self.report)

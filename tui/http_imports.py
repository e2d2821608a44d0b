"""How the command line imports httpx: without the command-line client httpx imports into itself.

httpx's `__init__` imports its own CLI (`httpx._main`, with click, rich and pygments' lexer tables)
whenever those packages are installed, as they are here: about 0.05 s of CPU on this project's
machines, before the first byte of a download, for a function fetchdeck never calls.
`import_httpx()` imports httpx with that import failing, which httpx handles itself (`httpx.main`
becomes its "dependencies not installed" stub). Guarded: nothing happens if httpx was already
imported. aiohttp's import-time cost (its SSL contexts' CA bundles) is core/downloaders/net.py's.

The commands that use httpx call it before importing core or the remote client; importing them
without it is fine, just slower. Other processes (the test suite, a server imported as a library)
are unaffected.
"""

from __future__ import annotations

import sys


def import_httpx() -> None:
    """Import httpx (once per process) without its command-line client."""
    if "httpx" in sys.modules:
        return
    # httpx does `try: from ._main import main / except ImportError: <a stub main>`; a None entry in
    # sys.modules makes that import fail.
    blocked = "httpx._main" not in sys.modules
    if blocked:
        sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx  # noqa: F401
    finally:
        if blocked and sys.modules.get("httpx._main", 0) is None:
            del sys.modules["httpx._main"]  # a later explicit import of httpx._main works as usual

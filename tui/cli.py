"""The `fetchdeck` entry point (pyproject's console script, and `python -m tui.cli`).

It imports nothing heavy itself: `fetchdeck --version` answers from the standard library
alone, a plainly spelled `fetchdeck get URL...` runs without click (tui/get_cli.py), and every
other command line goes to the click command tree in tui/commands.py, whose commands import
what they need when they run.
"""

from __future__ import annotations

import os
import sys

from tui import __version__


def main() -> None:
    """Run the fetchdeck command line on sys.argv."""
    if sys.argv[1:] == ["--version"]:  # what click's version_option prints, without importing click
        sys.stdout.write(f"{_prog_name()}, version {__version__}\n")
        return
    # httpx's __init__ imports its own command-line client (httpx._main: click, rich and pygments' lexer
    # tables, ~0.05 s of CPU) when those are installed; fetchdeck never calls it, and httpx falls back to
    # its "not installed" stub when that import fails, as a None entry makes it.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    if sys.argv[1:2] == ["get"]:  # a plainly spelled `get` runs without click (tui/get_cli.py)
        from tui.get_cli import parse_plain_get, run_plain

        args = parse_plain_get(sys.argv[1:])
        if args is not None:
            run_plain(args)
    from tui.commands import main as commands

    commands()


def _prog_name() -> str:
    """The program name as click shows it: the script's file name, or `python -m tui.cli`."""
    package = getattr(sys.modules["__main__"], "__package__", None)
    if not package:
        return os.path.basename(sys.argv[0])
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    return f"python -m {package if name == '__main__' else f'{package}.{name}'}"


if __name__ == "__main__":
    main()

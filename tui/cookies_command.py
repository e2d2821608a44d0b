"""`fetchdeck cookies import|list|clear`: the cookie jar of a data dir (core/cookies.py), from the command line.

Works on the files directly, so it needs no running fetchdeck; a running one notices the change within a
second. What it prints is domains and counts, never a cookie's value.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from core.cookies import CookieImportError, CookieStore
from tui.cli_support import fail, load_profile


def open_jar(data_dir: str | None) -> CookieStore:
    locations, config = load_profile(data_dir, None)
    return CookieStore.open(config.cookies.directory(locations.data_dir))


def run_import(data_dir: str | None, file: str | None, browser: str | None) -> None:
    if (file is None) == (browser is None):
        fail("give a cookies.txt FILE (or - for standard input), or --from-browser BROWSER[:PROFILE]")
    jar = open_jar(data_dir)
    try:
        if browser is not None:
            report = jar.import_browser(browser)
        elif file == "-":
            report = jar.import_text(sys.stdin.read(), "standard input")
        else:
            report = jar.import_file(Path(file or ""))
    except CookieImportError as exc:
        fail(str(exc), 1)
    click.echo(report.describe())
    if not report.domains:
        raise SystemExit(1)


def run_list(data_dir: str | None) -> None:
    jar = open_jar(data_dir)
    summary = jar.summary()
    if not summary:
        click.echo(f"no cookies (jar: {jar.directory})")
        return
    width = max(len(d.domain) for d in summary)
    for entry in summary:
        click.echo(f"{entry.domain:<{width}}  {entry.cookies}")


def run_clear(data_dir: str | None, domain: str | None) -> None:
    jar = open_jar(data_dir)
    gone = jar.remove(domain)
    where = f" for {domain} and its subdomains" if domain else ""
    click.echo(f"removed {gone} cookie(s){where}")

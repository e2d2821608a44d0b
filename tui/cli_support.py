"""What every local command does before its work, without click: report a failure, load the profile
(data dir, config file), layer command-line values over the config.

tui/commands.py (the click tree) and tui/get_cli.py (`get`'s fast path, which runs without click) share
these. Messages go through click.echo, imported only when there is something to say, so they look the
same whichever path printed them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from core.errors import InvalidInput

if TYPE_CHECKING:
    from core.config import Config
    from core.locations import Locations

# `get --connect-timeout`'s default: seconds before `get` gives up on a server it cannot reach at all
# (tui/get_command.py's GetRequest; here so that both command-line paths read it without the engine).
CONNECT_TIMEOUT = 5.0


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `fetchdeck: message` on stderr and exit with code."""
    warn(message)
    sys.exit(code)


def warn(message: str) -> None:
    """Print `fetchdeck: message` on stderr (as click.echo does: ANSI codes stripped off a terminal)."""
    import click

    click.echo(f"fetchdeck: {message}", err=True)


def load_profile(data_dir: str | None, download_dir: str | None) -> tuple[Locations, Config]:
    from core.config import ensure_config_file, load_config
    from core.locations import Locations

    locations = Locations.resolve(data_dir)
    locations.ensure()
    ensure_config_file(locations.config_file)
    try:
        config = load_config(locations.config_file, report=warn)
    except InvalidInput as exc:
        fail(str(exc))
    if download_dir:
        where = download_dir if download_dir.startswith("s3://") else str(Path(download_dir).expanduser().resolve())
        config = with_flags(config, "download", dir=where)
    return locations, config


def with_flags(config: Config, section: str, **flags: object) -> Config:
    """config with the given (non-None) command-line values layered over `section`, checked like the file's."""
    try:
        return config.override(section, **flags)
    except InvalidInput as exc:
        fail(str(exc))

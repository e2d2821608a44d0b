"""Themes from TOML files: the bundled `themes/*.toml` plus the user's themes dir.

A theme file::

    name = "my-theme"          # optional, defaults to the file name
    dark = true
    [colors]                   # primary is required; the rest are optional
    primary = "#38bdf8"
    background = "#11151c"     # ... secondary accent foreground surface panel
                               #     boost success warning error
    [variables]                # optional Textual design variables
    footer-key-foreground = "#38bdf8"

A file that cannot be read or has a bad color is reported, never fatal.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

DEFAULT_THEME = "fetchdeck-dark"
LIGHT_THEME = "fetchdeck-light"
COLOR_KEYS = (
    "primary", "secondary", "accent", "foreground", "background", "surface", "panel", "boost",
    "success", "warning", "error",
)


class ThemeFileError(ValueError):
    pass


@dataclass(slots=True)
class ThemeSet:
    themes: dict[str, Theme] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)


def theme_from_toml(text: str, fallback_name: str) -> Theme:
    """Parse one theme file's text; raise ThemeFileError with a readable reason."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ThemeFileError(f"not valid TOML: {exc}") from None
    name = data.get("name", fallback_name)
    if not isinstance(name, str) or not name.strip():
        raise ThemeFileError("name must be a non-empty string")
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ThemeFileError("dark must be true or false")
    colors = data.get("colors", {})
    if not isinstance(colors, dict):
        raise ThemeFileError("[colors] must be a table")
    unknown = set(colors) - set(COLOR_KEYS)
    if unknown:
        raise ThemeFileError(f"unknown color(s): {', '.join(sorted(unknown))}")
    if "primary" not in colors:
        raise ThemeFileError("[colors] needs at least primary")
    checked: dict[str, Any] = {}
    for key, value in colors.items():
        checked[key] = _color(value, f"colors.{key}")
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        raise ThemeFileError("[variables] must be a table")
    for key, value in variables.items():
        if not isinstance(value, str):
            raise ThemeFileError(f"variables.{key} must be a string")
    theme = Theme(name=name.strip(), dark=dark, variables=dict(variables), **checked)
    try:
        theme.to_color_system().generate()
    except Exception as exc:  # Textual rejects it: report, don't crash later
        raise ThemeFileError(f"Textual cannot use it: {exc}") from None
    return theme


def _color(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ThemeFileError(f"{where} must be a color string like \"#38bdf8\"")
    try:
        Color.parse(value)
    except ColorParseError:
        raise ThemeFileError(f"{where}: {value!r} is not a color") from None
    return value


def bundled_theme_files() -> list[tuple[str, str]]:
    """(file name, text) of the themes shipped in the `themes` package."""
    out = []
    for entry in sorted(resources.files("themes").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml") and entry.is_file():
            out.append((entry.name, entry.read_text(encoding="utf-8")))
    return out


def user_theme_files(directory: Path | None) -> list[tuple[str, str]]:
    if directory is None or not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.toml")):
        try:
            out.append((str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            out.append((str(path), f"\x00{exc}"))  # reported by load_themes
    return out


def load_themes(user_dir: Path | None = None) -> ThemeSet:
    """Bundled themes, then the user's (a user theme may replace a bundled one)."""
    result = ThemeSet()
    for source, text in [*bundled_theme_files(), *user_theme_files(user_dir)]:
        label = Path(source).name
        if text.startswith("\x00"):
            result.errors.append((label, f"cannot read: {text[1:]}"))
            continue
        try:
            theme = theme_from_toml(text, Path(source).stem)
        except ThemeFileError as exc:
            result.errors.append((label, str(exc)))
            continue
        result.themes[theme.name] = theme
    return result

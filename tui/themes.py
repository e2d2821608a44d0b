"""The TUI's themes: the theme files (read by themes/reader.py, the one reader of the format) as Textual Themes.

themes/reader.py owns the file format and where the files are (bundled `themes/*.toml`, then the user's
themes dir); this module adds what only Textual can say (a color name Textual knows, a color system it can
generate) and builds the `Theme`s the app registers. A file that cannot be used is reported, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

from themes.reader import COLOR_KEYS, ThemeFileError, ThemeSpec, parse_theme, read_theme_files

__all__ = ["COLOR_KEYS", "DEFAULT_THEME", "LIGHT_THEME", "ThemeFileError", "ThemeSet", "load_themes",
           "textual_theme", "theme_from_toml"]

DEFAULT_THEME = "fetchdeck-dark"
LIGHT_THEME = "fetchdeck-light"


@dataclass(slots=True)
class ThemeSet:
    themes: dict[str, Theme] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)


def textual_theme(spec: ThemeSpec) -> Theme:
    """A checked theme file as a Textual Theme; raise ThemeFileError when Textual cannot use it."""
    for key, value in spec.colors.items():
        try:
            Color.parse(value)
        except ColorParseError:
            raise ThemeFileError(f"colors.{key}: {value!r} is not a color") from None
    colors: dict[str, Any] = dict(spec.colors)  # Theme's keyword arguments by COLOR_KEYS name
    theme = Theme(name=spec.name, dark=spec.dark, variables=dict(spec.variables), **colors)
    try:
        theme.to_color_system().generate()
    except Exception as exc:  # Textual rejects it: report, don't crash later
        raise ThemeFileError(f"Textual cannot use it: {exc}") from None
    return theme


def theme_from_toml(text: str, fallback_name: str) -> Theme:
    """Parse one theme file's text; raise ThemeFileError with a readable reason."""
    return textual_theme(parse_theme(text, fallback_name))


def load_themes(user_dir: Path | None = None) -> ThemeSet:
    """Bundled themes, then the user's (a user theme may replace a bundled one)."""
    result = ThemeSet()
    for read in read_theme_files(user_dir):
        if read.spec is None:
            result.errors.append((read.file.label, read.reason))
            continue
        try:
            theme = textual_theme(read.spec)
        except ThemeFileError as exc:
            result.errors.append((read.file.label, str(exc)))
            continue
        result.themes[theme.name] = theme
    return result

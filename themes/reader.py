"""The one reader of fetchdeck's theme files: the bundled `themes/*.toml` plus the user's themes dir.

A theme file::

    name = "my-theme"          # optional, defaults to the file name
    dark = true
    [colors]                   # primary is required; the rest are optional
    primary = "#38bdf8"
    background = "#11151c"     # ... secondary accent foreground surface panel
                               #     boost success warning error
    [variables]                # optional Textual design variables
    footer-key-foreground = "#38bdf8"

This module owns the file format and where the files are (`theme_files`); it knows no Textual and no
web framework, and returns typed data (`ThemeSpec`) or a readable reason per file. Its consumers turn a
spec into what they draw with: tui/themes.py into Textual Themes (Textual's own checks on top),
server/web.py into the web page's CSS. A file that cannot be read or has a bad value is reported, never
fatal.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

COLOR_KEYS = (
    "primary", "secondary", "accent", "foreground", "background", "surface", "panel", "boost",
    "success", "warning", "error",
)
# What a color value may look like: #RGB[A] / #RRGGBB[AA], rgb()/rgba()/hsl()/hsla() of numbers, or a
# color name (whether the name is known is the consumer's to say: Textual's names include ansi_*).
_NUMBER = r"\s*-?\d+\.?\d*%?\s*"
_COLOR = re.compile(
    r"^(#([0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})"
    rf"|(rgb|rgba|hsl|hsla)\({_NUMBER}(,{_NUMBER}){{2,3}}\)"
    r"|[a-zA-Z][a-zA-Z_]{1,40})$"
)


class ThemeFileError(ValueError):
    """A theme file's text that is no usable theme; the message is the readable reason."""


@dataclass(frozen=True, slots=True)
class ThemeSpec:
    """One theme file's content, checked: colors by COLOR_KEYS name (primary always there)."""

    name: str
    dark: bool
    colors: Mapping[str, str]
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ThemeFile:
    """One theme file found: `label` is its file name; `text` is None when it cannot be read (`unreadable`)."""

    label: str
    stem: str
    text: str | None
    unreadable: str = ""
    bundled: bool = False


@dataclass(frozen=True, slots=True)
class ThemeRead:
    """One file's outcome: a spec, or the reason it is none."""

    file: ThemeFile
    spec: ThemeSpec | None
    reason: str = ""


@dataclass(slots=True)
class ThemeSpecs:
    """Every usable theme by name (a user theme replaces a bundled one of the same name), and the problems."""

    themes: dict[str, ThemeSpec] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)


def parse_theme(text: str, fallback_name: str) -> ThemeSpec:
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
    checked = {key: _color(value, f"colors.{key}") for key, value in colors.items()}
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        raise ThemeFileError("[variables] must be a table")
    for key, value in variables.items():
        if not isinstance(value, str):
            raise ThemeFileError(f"variables.{key} must be a string")
    return ThemeSpec(name=name.strip(), dark=dark, colors=checked, variables=dict(variables))


def _color(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ThemeFileError(f"{where} must be a color string like \"#38bdf8\"")
    if not _COLOR.match(value.strip()):
        raise ThemeFileError(f"{where}: {value!r} is not a color")
    return value.strip()


def theme_files(user_dir: Path | None = None) -> list[ThemeFile]:
    """The theme files in load order: the ones shipped in the `themes` package, then the user's `*.toml`."""
    out = []
    for entry in sorted(resources.files("themes").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml") and entry.is_file():
            out.append(_read(entry.name, entry.name.removesuffix(".toml"), entry.read_bytes, bundled=True))
    if user_dir is not None and user_dir.is_dir():
        for path in sorted(user_dir.glob("*.toml")):
            out.append(_read(path.name, path.stem, path.read_bytes, bundled=False))
    return out


def _read(label: str, stem: str, read: Callable[[], bytes], *, bundled: bool) -> ThemeFile:
    try:
        text = read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return ThemeFile(label=label, stem=stem, text=None, unreadable=str(exc), bundled=bundled)
    return ThemeFile(label=label, stem=stem, text=text, bundled=bundled)


def read_theme_files(user_dir: Path | None = None) -> list[ThemeRead]:
    """Every theme file's outcome, in load order."""
    out = []
    for file in theme_files(user_dir):
        if file.text is None:
            out.append(ThemeRead(file, None, f"cannot read: {file.unreadable}"))
            continue
        try:
            out.append(ThemeRead(file, parse_theme(file.text, file.stem)))
        except ThemeFileError as exc:
            out.append(ThemeRead(file, None, str(exc)))
    return out


def load_theme_specs(user_dir: Path | None = None) -> ThemeSpecs:
    """Bundled themes, then the user's (a user theme may replace a bundled one)."""
    result = ThemeSpecs()
    for read in read_theme_files(user_dir):
        if read.spec is None:
            result.errors.append((read.file.label, read.reason))
        else:
            result.themes[read.spec.name] = read.spec
    return result

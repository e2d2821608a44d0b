"""Safe file and folder names: nothing a client sends can escape the roots.

Names lose path separators, control characters and leading dots; Windows
reserved device names get an underscore; the result is bounded to 255 bytes
(UTF-8) with the extension kept. Clashes get " (1)", " (2)".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from core.errors import InvalidInput

MAX_NAME_BYTES = 255
_RESERVED_WINDOWS = {
    "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
    *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10)),
    "COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³",  # Windows reserves these too
}
_BAD_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_SPACES = re.compile(r"\s+")


def _truncate_utf8(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore")


def sanitize_name(name: str, fallback: str = "download") -> str:
    """Turn any string into one safe path component (never empty, never '..')."""
    text = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    # After the filter: "A\x00\u0301" must compose to "Á" now, not on a second pass.
    text = unicodedata.normalize("NFC", text)
    text = _BAD_CHARS.sub("_", text)
    text = _SPACES.sub(" ", text).strip(" .")
    if not text or set(text) <= {".", "_"}:
        text = fallback
    stem, dot, ext = text.rpartition(".")
    if not dot:
        stem, ext = text, ""
    # Windows opens a device for 'CON', 'con.txt', 'CON .tar.gz': the part before the first dot, spaces ignored.
    if text.split(".")[0].rstrip(" ").upper() in _RESERVED_WINDOWS:
        text = "_" + text
        stem = "_" + stem if dot else text
    if len(text.encode("utf-8")) > MAX_NAME_BYTES:
        ext_part = f".{ext}" if dot and 0 < len(ext.encode()) <= 16 else ""
        base = stem if ext_part else text
        text = _truncate_utf8(base, MAX_NAME_BYTES - len(ext_part.encode())).rstrip(" .") + ext_part
    return text or fallback


def sanitize_folder(folder: str | None) -> str:
    """A relative folder, each component sanitized; '' means the root itself."""
    if not folder:
        return ""
    parts = [p for p in re.split(r"[\\/]+", folder) if p not in ("", ".", "..")]
    return "/".join(sanitize_name(p, fallback="_") for p in parts)


def resolve_inside(root: Path, relative: str) -> Path:
    """root/relative, guaranteed to stay inside root (after resolving links)."""
    root = root.resolve()
    target = (root / sanitize_folder(relative)).resolve()
    if target != root and root not in target.parents:
        raise InvalidInput(f"folder {relative!r} leaves the download directory")
    return target


def root_containing(path: Path, roots: Iterable[Path]) -> Path | None:
    """The root (resolved) that the already resolved `path` is, or lies inside; None: outside every root.
    The one rule for "inside the download roots": folders here, served files in server/files.py."""
    for root in roots:
        r = root.resolve()
        if path == r or r in path.parents:
            return r
    return None


def resolve_folder(download_root: Path, folder: str | None, allowed_roots: Iterable[Path] = ()) -> Path:
    """Where a task's files go.

    A relative folder lands under the download root. An absolute folder is
    accepted only inside one of the allowed roots (default: the download root).
    """
    if folder and Path(folder).is_absolute():
        try:
            candidate = Path(folder).resolve()
        except (OSError, ValueError) as exc:  # e.g. an embedded NUL, a symlink loop
            raise InvalidInput(f"folder {folder[:100]!r} is not a usable path: {exc}") from None
        if root_containing(candidate, (download_root, *allowed_roots)) is not None:
            return candidate
        raise InvalidInput(f"folder {folder!r} is outside the allowed download roots")
    return resolve_inside(download_root, folder or "")


def name_from_url(url: str, fallback: str = "download") -> str:
    path = urlsplit(url).path
    last = unquote(path.rstrip("/").rsplit("/", 1)[-1]) if path else ""
    return sanitize_name(last, fallback=fallback) if last else fallback


_CD_EXT = re.compile(r"filename\*\s*=\s*([^']*)'[^']*'([^;]+)", re.IGNORECASE)
_CD_PLAIN = re.compile(r'filename\s*=\s*("(?:[^"\\]|\\.)*"|[^;]+)', re.IGNORECASE)


def name_from_content_disposition(value: str | None) -> str | None:
    """The file name a Content-Disposition header proposes (RFC 6266), if any."""
    if not value:
        return None
    match = _CD_EXT.search(value)
    if match:
        charset = match.group(1).strip() or "utf-8"
        try:
            return unquote(match.group(2).strip(), encoding=charset, errors="replace") or None
        except LookupError:
            return unquote(match.group(2).strip()) or None
    match = _CD_PLAIN.search(value)
    if match:
        raw = match.group(1).strip()
        if raw.startswith('"') and raw.endswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        # Some servers send raw UTF-8 bytes that arrive decoded as latin-1.
        try:
            raw = raw.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
        return raw or None
    return None


def with_counter(name: str, n: int) -> str:
    """'video.mp4', 2 → 'video (2).mp4'."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return sanitize_name(f"{name} ({n})")
    return sanitize_name(f"{stem} ({n}).{ext}")


def unique_path(folder: Path, name: str, taken: Callable[[Path], bool] | None = None) -> Path:
    """folder/name, or 'name (1)', 'name (2)'... if that exists or is taken."""
    name = sanitize_name(name)

    def busy(p: Path) -> bool:
        return (
            p.exists()
            or p.with_name(p.name + ".part").exists()
            or (taken is not None and taken(p))
        )

    candidate = folder / name
    n = 1
    while busy(candidate):
        candidate = folder / with_counter(name, n)
        n += 1
    return candidate

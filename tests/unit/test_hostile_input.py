"""Property tests over the parsers hostile clients feed: names, folders, skip ranges, headers, quality.

Each parser either returns something safe or raises InvalidInput (a 400);
never another exception (a 500) and never a value that escapes the roots.
The older name/folder properties are in test_naming.py; these add Windows
reserved names, any unicode, idempotence and the 255-byte bound for folders.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from core.downloaders.hls.playlist import parse_skip
from core.downloaders.ytdlp.options import QUALITY_WORDS, format_choice, normalize_quality
from core.errors import InvalidInput
from core.models import parse_header_lines
from core.naming import MAX_NAME_BYTES, resolve_folder, resolve_inside, sanitize_folder, sanitize_name

RESERVED = ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", *(f"COM{i}" for i in range(10)),
            *(f"LPT{i}" for i in range(10)), "COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"]
TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Text that leans towards what breaks path handling: separators, dots, controls, odd unicode.
nasty_chars = st.sampled_from([*"/\\.:*?\"<>| \t\n\r\x00\x7f~$",
    "\u202e", "\u200b", "\ufeff", "\u0301", "e\u0301", "\uff0f", "\u2215", "\u00a0", "字", "😀", "\ud7ff",
    "CON", "..", "Ａ", "ﬁ", "İ",
])
nasty_text = st.lists(st.one_of(nasty_chars, st.text(max_size=8)), max_size=40).map("".join)


def windows_device(name: str) -> bool:
    """Would Windows open a device for this file name? (base before the first dot, trailing spaces ignored)"""
    base = name.split(".")[0].rstrip(" ").upper()
    return base in {r.upper() for r in RESERVED}


# ---- names and folders ------------------------------------------------------------


@SETTINGS
@given(st.one_of(nasty_text, st.text(max_size=600)))
@example("A\x00\u0301")  # a control between a letter and its accent: composes on the first pass
def test_names_are_safe_idempotent_and_bounded(raw: str) -> None:
    name = sanitize_name(raw)
    assert name and name not in (".", "..") and not name.startswith(".")
    assert not set(name) & set('/\\:*?"<>|\x00')
    assert all(unicodedata.category(c) not in ("Cc", "Cf", "Cs") for c in name)
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert name == name.strip(" .")  # Windows drops trailing dots and spaces
    assert not windows_device(name), name
    assert sanitize_name(name) == name  # idempotent: a stored name survives a second pass unchanged


@SETTINGS
@given(st.sampled_from(RESERVED), st.sampled_from(["", ".txt", ".tar.gz", " .mp4", "  ", "."]),
       st.sampled_from([str.lower, str.upper, str.title]))
def test_windows_reserved_names_never_survive(device: str, suffix: str, case: object) -> None:
    name = sanitize_name(case(device) + suffix)  # type: ignore[operator]
    assert not windows_device(name), name


@SETTINGS
@given(st.text(min_size=1, max_size=300), st.sampled_from(["mp4", "ts", "m4a", "mkv"]))
def test_long_unicode_names_keep_their_extension_within_255_bytes(stem: str, ext: str) -> None:
    assume(sanitize_name(stem) != "download")
    name = sanitize_name(stem * 8 + "." + ext)
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert name.endswith("." + ext)


def test_folders_from_any_text_stay_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)

    @SETTINGS
    @given(st.one_of(nasty_text, st.text(max_size=300), st.just("link/x"), st.just("../outside")))
    def check(folder: str) -> None:
        relative = sanitize_folder(folder)
        assert all(0 < len(part.encode()) <= MAX_NAME_BYTES for part in relative.split("/") if relative)
        try:
            target = resolve_inside(root, folder)
        except InvalidInput:
            return  # refused (e.g. through the symlink): fine, nothing is written
        assert target == root.resolve() or root.resolve() in target.parents
        try:
            absolute = resolve_folder(root, folder)
        except InvalidInput:
            return
        assert absolute == root.resolve() or root.resolve() in absolute.parents

    check()


@pytest.mark.parametrize("folder", ["/", "/etc", "/tmp/../etc", "//etc", "\\\\server\\share", "C:\\Windows"])
def test_absolute_and_foreign_folders_never_leave_the_root(tmp_path: Path, folder: str) -> None:
    root = tmp_path / "dl"
    root.mkdir()
    try:
        target = resolve_folder(root, folder)
    except InvalidInput:
        return
    assert target == root.resolve() or root.resolve() in target.parents


# ---- HLS skip ranges --------------------------------------------------------------------


skip_text = st.one_of(
    st.text(max_size=60),
    st.lists(st.one_of(st.integers(-5, 10**12).map(str), st.tuples(st.integers(0, 10**6), st.integers(0, 10**6))
                       .map(lambda r: f"{r[0]}-{r[1]}"), st.sampled_from(["", " ", "-", "1-", "-3", "٣", "9" * 5000])),
             max_size=12).map(lambda parts: ",".join(parts)),
)


@SETTINGS
@given(skip_text)
def test_skip_parser_accepts_or_refuses_cleanly(expr: str) -> None:
    try:
        rule = parse_skip(expr)
    except InvalidInput:
        return
    for lo, hi in rule.ranges:
        assert 1 <= lo <= hi
    for lo, hi in rule.ranges:
        assert lo in rule and hi in rule
    assert 0 not in rule


@SETTINGS
@given(st.lists(st.tuples(st.integers(1, 10**6), st.integers(0, 1000)), max_size=10))
def test_skip_parser_round_trips_ranges(ranges: list[tuple[int, int]]) -> None:
    expr = ",".join(f"{lo}-{lo + n}" for lo, n in ranges)
    assert parse_skip(expr).ranges == tuple((lo, lo + n) for lo, n in ranges)


# ---- header lines -------------------------------------------------------------------------


@SETTINGS
@given(st.one_of(st.text(max_size=200), st.lists(st.text(max_size=60), max_size=8)))
def test_header_lines_parse_into_sendable_pairs_or_refuse(lines: str | list[str]) -> None:
    try:
        pairs = parse_header_lines(lines)
    except InvalidInput:
        return
    for key, value in pairs:
        assert TOKEN.match(key), key  # an RFC 9110 token: any HTTP library can send it
        assert not set(value) & {"\r", "\n", "\x00"}
        assert value == value.strip()


header_names = st.text(alphabet="!#$%&'*+.^_`|~-" + "abcdefXYZ0189", min_size=1, max_size=20)
header_values = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
                        max_size=40).map(str.strip)


@SETTINGS
@given(st.lists(st.tuples(header_names, header_values), max_size=8))
def test_header_lines_round_trip(pairs: list[tuple[str, str]]) -> None:
    text = "\n".join(f"{k}: {v}" for k, v in pairs)
    assert parse_header_lines(text) == tuple(pairs)


# ---- quality words → yt-dlp formats -----------------------------------------------------------


@SETTINGS
@given(st.one_of(st.text(max_size=12), st.sampled_from([*QUALITY_WORDS, "AUTO", " 720 ", "1080P", "99999p", "٧٢٠p",
                                                        "100p", "4320", "4321p", "bestaudio"])),
       st.sampled_from(["none", "audio", "mp4"]))
def test_quality_maps_onto_a_known_format_or_refuses(quality: str, postprocess: str) -> None:
    try:
        word = normalize_quality(quality)
    except InvalidInput:
        return
    assert word in QUALITY_WORDS or (word.endswith("p") and word[:-1].isascii() and 100 <= int(word[:-1]) <= 4320)
    choice = format_choice(quality, postprocess)
    assert choice.selector in ("ba/b", "wv*+wa/w", "bv*+ba/b")
    assert choice.postprocess in ("none", "audio", "mp4")
    if word == "audio":
        assert choice.postprocess == "audio" and choice.selector == "ba/b"
    for key in choice.sort:
        assert re.fullmatch(r"(res(:\d+)?|vcodec:h264|acodec:aac)", key), key

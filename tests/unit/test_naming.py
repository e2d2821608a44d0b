from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InvalidInput
from core.naming import (
    MAX_NAME_BYTES,
    name_from_content_disposition,
    name_from_url,
    resolve_folder,
    resolve_inside,
    sanitize_folder,
    sanitize_name,
    unique_path,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("video.mp4", "video.mp4"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("a/b\\c", "a_b_c"),
        ("..", "download"),
        ("", "download"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("bell\x07name\n.txt", "bellname.txt"),
        ("  spaced   out  ", "spaced out"),
        ("视频 第1集.mp4", "视频 第1集.mp4"),
    ],
)
def test_sanitize_name(raw: str, expected: str) -> None:
    assert sanitize_name(raw) == expected


def test_long_names_keep_extension_and_fit_255_bytes() -> None:
    name = sanitize_name("字" * 300 + ".mp4")
    assert name.endswith(".mp4")
    assert len(name.encode()) <= MAX_NAME_BYTES


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=400))
def test_any_name_is_one_safe_component(raw: str) -> None:
    name = sanitize_name(raw)
    assert name and name not in (".", "..")
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES


def test_folders_never_escape_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.sampled_from(["..", ".", "a", "/", "\\", "b c", "\x00", "~", "..."]), max_size=12).map("".join))
    def check(folder: str) -> None:
        target = resolve_inside(root, folder)
        assert target == root.resolve() or root.resolve() in target.parents

    check()


def test_absolute_folders_only_inside_allowed_roots(tmp_path: Path) -> None:
    root = tmp_path / "dl"
    other = tmp_path / "other"
    assert resolve_folder(root, str(root / "x")) == (root / "x").resolve()
    assert resolve_folder(root, str(other / "y"), allowed_roots=[other]) == (other / "y").resolve()
    with pytest.raises(InvalidInput):
        resolve_folder(root, "/etc")
    assert sanitize_folder("a/../b//c") == "a/b/c"


def test_unique_path_counts_up(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"x")
    (tmp_path / "a (1).bin.part").write_bytes(b"x")
    assert unique_path(tmp_path, "a.bin").name == "a (2).bin"
    assert unique_path(tmp_path, "b.bin", taken=lambda p: p.name == "b.bin").name == "b (1).bin"


def test_names_from_server() -> None:
    assert name_from_url("http://h/path/my%20file.zip?x=1") == "my file.zip"
    assert name_from_url("http://h/") == "download"
    assert name_from_content_disposition('attachment; filename="report.pdf"') == "report.pdf"
    assert name_from_content_disposition("attachment; filename*=UTF-8''%E6%96%87%E4%BB%B6.txt") == "文件.txt"
    assert name_from_content_disposition("inline") is None

"""core/integrity.py's rules: what a checksum text may be, reading a sha256sum sidecar, the space check."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.errors import InvalidInput
from core.integrity import Checksum, NeverFits, Pending, WaitForSpace, check_space, parse_sidecar, sidecar_url

SHA = "ab" * 32


@pytest.mark.parametrize(("text", "expected"), [
    (f"sha256={SHA}", f"sha256={SHA}"), (f" SHA256:{SHA.upper()} ", f"sha256={SHA}"), (SHA, f"sha256={SHA}"),
    ("md5=" + "0" * 32, "md5=" + "0" * 32), ("1" * 40, "sha1=" + "1" * 40), ("f" * 128, "sha512=" + "f" * 128),
])
def test_checksum_texts(text: str, expected: str) -> None:
    assert str(Checksum.parse(text)) == expected


@pytest.mark.parametrize(("text", "why"), [
    ("crc32=00000000", "unknown algorithm"), (f"sha256={SHA[:-1]}", "64 hex digits"),
    (f"sha256={SHA[:-1]}g", "64 hex digits"), ("abc", "expected ALGO=HEX"), ("", "expected ALGO=HEX"),
])
def test_bad_checksums_say_why(text: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        Checksum.parse(text)


def test_sidecar_formats() -> None:
    url = "http://h/dir/file%20one.iso?sig=1"
    assert sidecar_url(url) == "http://h/dir/file%20one.iso.sha256?sig=1"
    assert parse_sidecar(f"{SHA}\n", url) == Checksum("sha256", SHA)
    other = "cd" * 32
    listing = f"# made by sha256sum\n{other}  other.iso\n{SHA} *file one.iso\n"
    assert parse_sidecar(listing, url) == Checksum("sha256", SHA)  # the line naming the file
    assert parse_sidecar(f"{other}  a\n{SHA}  b\n", url) is None  # several, none of them this file
    assert parse_sidecar("<html>not found</html>", url) is None


def test_space_check_counts_other_tasks_and_the_reserve(tmp_path: Path) -> None:
    usage = shutil.disk_usage(tmp_path)
    check_space(tmp_path, 1024, [])
    with pytest.raises(NeverFits, match="holds"):
        check_space(tmp_path, usage.total + 1, [])
    with pytest.raises(NeverFits):
        check_space(tmp_path, 1024, [], min_free=usage.total)
    # `need` is large next to how much the free space may change while the test runs (other processes)
    need = (usage.total - usage.free) // 2
    if need < 64 << 20:
        pytest.skip("the test's filesystem is nearly empty: no robust margin")
    with pytest.raises(WaitForSpace, match="waiting for disk space: needs"):
        check_space(tmp_path, need, [Pending(tmp_path, usage.free)])  # another task still needs it all
    with pytest.raises(WaitForSpace):
        check_space(tmp_path, need, [], min_free=usage.free)
    check_space(tmp_path, 1024, [Pending(tmp_path / "gone", usage.free)])  # a folder that is not there: ignored

"""AES-128 decryption and key caching; the segment pack's crash safety."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from core.downloaders.hls.crypto import KeyStore, decrypt, sequence_iv
from core.downloaders.hls.playlist import InitSection, KeyInfo
from core.downloaders.hls.store import SegmentStore
from core.errors import DownloadError

KEY = bytes(range(16))


def encrypt(data: bytes, key: bytes, iv: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(padder.update(data) + padder.finalize()) + enc.finalize()


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 188 * 1000])
def test_decrypt_round_trip(size: int) -> None:
    data = os.urandom(size)
    iv = sequence_iv(7)
    assert iv == bytes(15) + b"\x07"
    assert decrypt(encrypt(data, KEY, iv), KEY, iv, "segment 8") == data


def test_wrong_key_is_reported_not_written() -> None:
    data = encrypt(b"x" * 1000, KEY, bytes(16))
    with pytest.raises(DownloadError, match="segment 3: decryption failed"):
        decrypt(data, bytes(16), bytes(16), "segment 3")


def test_truncated_ciphertext_is_reported() -> None:
    with pytest.raises(DownloadError, match="not a multiple of 16"):
        decrypt(encrypt(b"y" * 100, KEY, bytes(16))[:-3], KEY, bytes(16), "segment 1")


async def test_key_is_fetched_once_for_many_concurrent_segments() -> None:
    calls: list[str] = []

    async def fetch(url: str) -> bytes:
        calls.append(url)
        await asyncio.sleep(0.01)
        return KEY

    keys = KeyStore(fetch)
    info = KeyInfo("AES-128", "https://k.example/key", None)
    plain = [os.urandom(100 + i) for i in range(20)]
    out = await asyncio.gather(*(keys.decrypt(encrypt(p, KEY, sequence_iv(i)), info, i, f"s{i}")
                                 for i, p in enumerate(plain)))
    assert out == plain
    assert calls == ["https://k.example/key"]


async def test_a_failed_key_fetch_is_retried_by_the_next_segment() -> None:
    attempts = 0

    async def fetch(url: str) -> bytes:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise DownloadError("key: HTTP 503")
        return KEY

    keys = KeyStore(fetch)
    info = KeyInfo("AES-128", "https://k.example/key", bytes(16))
    with pytest.raises(DownloadError, match="503"):
        await keys.get(info)
    assert await keys.get(info) == KEY


async def test_a_key_of_the_wrong_length_is_an_error() -> None:
    async def fetch(url: str) -> bytes:
        return b"<html>login</html>"

    with pytest.raises(DownloadError, match="expected 16"):
        await KeyStore(fetch).get(KeyInfo("AES-128", "https://k.example/key", None))


# ---- the pack ------------------------------------------------------------------

def test_pack_round_trip_and_resume(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path / "video", ".ts")
    store.scan()
    blobs = {seq: os.urandom(1000 + seq) for seq in (5, 3, 4)}  # completion order is not sequence order
    for seq, data in blobs.items():
        store.save(seq, data)
    store.close()
    again = SegmentStore(tmp_path / "video", ".ts")
    again.scan()
    assert again.done == {seq: len(d) for seq, d in blobs.items()}
    assert all(again.read(seq) == data for seq, data in blobs.items())
    out = tmp_path / "out.ts"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT)
    for seq in (3, 4, 5):
        again.copy_into(fd, seq)
    os.close(fd)
    assert out.read_bytes() == blobs[3] + blobs[4] + blobs[5]
    again.close()


def test_a_segment_killed_mid_write_is_not_counted(tmp_path: Path) -> None:
    """Bytes without their index line (kill -9 between the two writes) are cut off on resume."""
    store = SegmentStore(tmp_path / "v", ".ts")
    store.scan()
    store.save(0, b"a" * 500)
    store.save(1, b"b" * 700)
    store.close()
    with open(store.pack_path, "ab") as f:
        f.write(b"c" * 300)  # segment 2's bytes, index line never written
    with open(store.index_path, "ab") as f:
        f.write(b"3 1500 4")  # a torn line for a segment whose bytes are not all there
    again = SegmentStore(tmp_path / "v", ".ts")
    again.scan()
    assert again.done == {0: 500, 1: 700}
    assert store.pack_path.stat().st_size == 1200
    again.save(2, b"c" * 300)
    again.close()
    third = SegmentStore(tmp_path / "v", ".ts")
    third.scan()
    assert third.done == {0: 500, 1: 700, 2: 300} and third.read(2) == b"c" * 300
    third.close()


def test_an_index_entry_past_the_end_of_the_pack_is_dropped(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path / "v", ".ts")
    store.scan()
    store.save(0, b"a" * 500)
    store.save(1, b"b" * 500)
    store.close()
    os.truncate(store.pack_path, 700)  # e.g. a lost write: the index claims more than there is
    again = SegmentStore(tmp_path / "v", ".ts")
    again.scan()
    assert again.done == {0: 500}
    assert store.index_path.read_text() == "0 0 500\n"
    again.close()


def test_live_forget_empties_the_pack_when_nothing_is_pending(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path / "v", ".ts")
    store.scan()
    store.save(10, b"x" * 100)
    store.save(11, b"y" * 100)
    store.forget(10)
    assert store.pack_path.stat().st_size == 200
    store.forget(11)
    assert store.pack_path.stat().st_size == 0 and store.index_path.stat().st_size == 0
    store.save(12, b"z" * 50)
    assert store.read(12) == b"z" * 50 and store.span(12) == (0, 50)
    store.close()


def test_init_sections_are_files_checked_by_size(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path / "v", ".m4s")
    store.scan()
    init = InitSection("https://x/init.mp4", None)
    assert store.init_path(init) is None
    store.save_init(init, b"ftyp" * 10)
    path = store.init_path(init)
    assert path is not None and path.read_bytes() == b"ftyp" * 10
    store.close()
    path.write_bytes(b"short")  # wrong size: not trusted
    again = SegmentStore(tmp_path / "v", ".m4s")
    again.scan()
    assert again.init_path(init) is None
    again.close()

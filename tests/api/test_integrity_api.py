"""An expected checksum from every way in: the native API's `checksum` field, `fetchdeck add --checksum`
(through the API) and `fetchdeck get --checksum` (a subprocess); a bad one is refused up front."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from tests.api.conftest import Api
from tests.support.fileserver import FileServer, random_bytes
from tui.commands import main

MB = 1 << 20


async def test_checksum_field_and_add_flag(api: Api, files: FileServer) -> None:
    data = random_bytes(2 * MB, seed=51)
    url = files.add("/api.bin", data)
    digest = hashlib.sha256(data).hexdigest()

    body = await api.fail("POST", "/api/downloads", 400, 40002,
                          json={"tasks": [{"url": url, "checksum": "sha256=nothex"}]})
    assert "tasks[0].checksum" in body["message"] and "64 hex digits" in body["message"]

    (good,) = await api.create({"url": url, "name": "good.bin", "checksum": f"sha256:{digest.upper()}"}, start=True)
    done = await api.wait_status(good["id"], "success", "failed")
    assert done["status"] == "success", done["error"]
    log = await api.client.get(f"/api/downloads/{good['id']}/logs")
    assert f"checksum ok: sha256 {digest}" in log.text

    wrong = hashlib.md5(b"other").hexdigest()
    result = await asyncio.to_thread(CliRunner().invoke, main, [
        "add", "--server", api.url, url, "--name", "bad.bin", "--checksum", f"md5={wrong}"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    task_id = int(result.output.split("\t")[0])
    failed = await api.wait_status(task_id, "failed", "success")
    assert failed["error"].startswith(f"checksum mismatch: expected md5 {wrong}, got {hashlib.md5(data).hexdigest()}")
    assert (Path(failed["file"]).parent / "bad.bin.corrupt").read_bytes() == data

    refused = await asyncio.to_thread(CliRunner().invoke, main, [
        "add", "--server", api.url, url, "--checksum", "crc32=00"], catch_exceptions=False)
    assert refused.exit_code != 0 and "unknown algorithm 'crc32'" in refused.output


def test_get_checksum_mismatch_exits_1_with_both_digests(tmp_path: Path, files: FileServer) -> None:
    data = random_bytes(3 * MB, seed=52)
    url = files.add("/get.bin", data)
    wrong = "ab" * 32
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", "get", url, "-d", str(tmp_path / "dl"), "--data-dir", str(tmp_path / "d"),
         "-x", "4", "--checksum", f"sha256={wrong}"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert f"checksum mismatch: expected sha256 {wrong}, got {hashlib.sha256(data).hexdigest()}" in result.stderr
    assert (tmp_path / "dl" / "get.bin.corrupt").read_bytes() == data

"""Downloads from the browser (server/files.py): POST /api/downloads/:id/file-link and the signed /files/ links.

A real fetchdeck with a token downloads from a real FileServer; the links are then fetched with httpx
without any token: bodies and ranges compared byte for byte with the served data, the safety headers,
hostile names, refused links (expired, tampered, outside the roots through symlinks), and a 1 GiB sparse
file streamed with flat memory while the event loop keeps answering.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from werkzeug.http import parse_options_header

from core.config import Config
from server.app import create_app
from server.files import LINKS_KEY, FileLinks, content_disposition
from tests.api.conftest import Api, ApiFactory
from tests.support.fileserver import FileServer, random_bytes

TOKEN = "file-links-token"
HOSTILE = 'a"b\r\nX-Evil: 1;.html'
IMG = "<img src=x onerror=alert(1)>.mp4"
UTF8 = "Überraschung – 日本語 «ok».mp4"
SAFE_ASCII = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._()[]+,=@!#&~^{}-")


async def _finished(api: Api, files: FileServer, names_and_data: list[tuple[str, bytes]],
                    folders: dict[int, str] | None = None) -> list[dict[str, Any]]:
    specs = []
    for i, (name, data) in enumerate(names_and_data):
        spec = {"type": "direct", "url": files.add(f"/f{i}.bin", data), "name": name}
        if folders and i in folders:
            spec["folder"] = folders[i]
        specs.append(spec)
    tasks = await api.create(*specs, start=True)
    return [await api.wait_status(t["id"], "success") for t in tasks]


def _authed(api: Api) -> httpx.AsyncClient:
    return api.new_client(headers={"Authorization": f"Bearer {TOKEN}"})


async def _link(client: httpx.AsyncClient, task_id: int) -> dict[str, Any]:
    response = await client.post(f"/api/downloads/{task_id}/file-link")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["code"] == 0
    return body["data"]  # type: ignore[no-any-return]


def _disposition_names(header: str) -> tuple[str, str]:
    """(the quoted ASCII filename, the name a standards parser reads: werkzeug prefers filename*)."""
    assert "\r" not in header and "\n" not in header and header.startswith("attachment;")
    _, params = parse_options_header(header)
    return header.split('filename="', 1)[1].split('"', 1)[0], params["filename"]


def _assert_safe_headers(response: httpx.Response, file_name: str) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "private"
    assert "sandbox" in response.headers["content-security-policy"]
    assert response.headers["accept-ranges"] == "bytes"
    kind = response.headers["content-type"]
    assert kind == "application/octet-stream" or kind.split("/")[0] in ("video", "audio", "image"), kind
    raw = response.headers.raw if hasattr(response.headers, "raw") else []
    assert not any(k.lower() == b"x-evil" for k, _ in raw)
    disposition = response.headers["content-disposition"]
    assert disposition.isascii()
    fallback = disposition.split('filename="', 1)[1].split('"', 1)[0]
    assert set(fallback) <= SAFE_ASCII and fallback, disposition
    encoded = disposition.split("filename*=UTF-8''", 1)[1]
    assert unquote(encoded, encoding="utf-8") == file_name


async def test_links_serve_the_file_with_ranges_and_safe_headers(make_api: ApiFactory, files: FileServer) -> None:
    api = await make_api(token=TOKEN)
    authed = _authed(api)
    api.client.headers["Authorization"] = f"Bearer {TOKEN}"
    data = random_bytes(300_000, seed=16)
    plain, hostile, img, utf8 = await _finished(api, files, [
        ("clip.bin", data), (HOSTILE, random_bytes(1000, seed=1)), (IMG, random_bytes(2000, seed=2)),
        (UTF8, random_bytes(3000, seed=3)),
    ])
    anonymous = api.new_client()

    # the link needs the token; the file behind it does not
    refused = await anonymous.post(f"/api/downloads/{plain['id']}/file-link")
    assert refused.status_code == 401 and refused.json()["code"] == 40100
    link = await _link(authed, plain["id"])
    assert link["name"] == "clip.bin" and link["size"] == len(data)
    assert 590 <= link["expires"] - time.time() <= 601
    assert link["url"].startswith(f"/files/{plain['id']}/clip.bin?expires={link['expires']}&sig=")
    url = link["url"]

    full = await anonymous.get(url)
    assert full.status_code == 200 and full.content == data
    assert full.headers["content-length"] == str(len(data))
    assert full.headers["content-type"] == "application/octet-stream"
    _assert_safe_headers(full, "clip.bin")
    etag, modified = full.headers["etag"], full.headers["last-modified"]

    # single ranges, compared with slices of what the server served
    for spec, first, last in [("0-0", 0, 0), ("100-199", 100, 199), ("299990-", 299990, 299999),
                              ("-10", 299990, 299999), ("1000-999999999", 1000, 299999), ("-999999", 0, 299999)]:
        part = await anonymous.get(url, headers={"Range": f"bytes={spec}"})
        assert part.status_code == 206, (spec, part.status_code)
        assert part.headers["content-range"] == f"bytes {first}-{last}/{len(data)}"
        assert part.content == data[first:last + 1], spec
    several = await anonymous.get(url, headers={"Range": "bytes=0-1,5-6"})  # not served as multipart
    assert several.status_code == 200 and several.content == data
    for spec in ("bytes=300000-", "bytes=-0"):
        past = await anonymous.get(url, headers={"Range": spec})
        assert past.status_code == 416 and past.json()["code"] == 41600, past.text
        assert past.headers["content-range"] == f"bytes */{len(data)}"

    # If-Range: the range only while the file is the same one; conditional GETs
    same = await anonymous.get(url, headers={"Range": "bytes=10-19", "If-Range": etag})
    assert same.status_code == 206 and same.content == data[10:20]
    dated = await anonymous.get(url, headers={"Range": "bytes=10-19", "If-Range": modified})
    assert dated.status_code == 206 and dated.content == data[10:20]
    changed = await anonymous.get(url, headers={"Range": "bytes=10-19", "If-Range": '"another-version"'})
    assert changed.status_code == 200 and changed.content == data
    cached = await anonymous.get(url, headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b"" and cached.headers["etag"] == etag
    assert (await anonymous.get(url, headers={"If-Modified-Since": modified})).status_code == 304

    head = await anonymous.head(url)
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(data))
    _assert_safe_headers(head, "clip.bin")
    head_range = await anonymous.head(url, headers={"Range": "bytes=5-9"})
    assert head_range.status_code == 206 and head_range.headers["content-length"] == "5"
    assert head_range.headers["content-range"] == f"bytes 5-9/{len(data)}"

    # hostile and non-ASCII names: the file's name on disk, never raw in a header
    for task, source in [(hostile, HOSTILE), (img, IMG), (utf8, UTF8)]:
        link = await _link(authed, task["id"])
        on_disk = Path(task["file"]).name
        assert link["name"] == on_disk
        got = await anonymous.get(link["url"])
        assert got.status_code == 200 and got.content == Path(task["file"]).read_bytes(), source
        _assert_safe_headers(got, on_disk)
        assert "html" not in got.headers["content-type"]
    assert (await anonymous.get((await _link(authed, img["id"]))["url"])).headers["content-type"] == "video/mp4"
    assert (await anonymous.get((await _link(authed, utf8["id"]))["url"])).headers["content-type"] == "video/mp4"
    for raw in (HOSTILE, IMG, UTF8, "../../etc/passwd", "\x00\x1b[31m\u202e.exe", "日本語", "..."):
        header = content_disposition(raw)
        assert header.isascii() and "\r" not in header and "\n" not in header and header.count('"') == 2
        fallback, parsed = _disposition_names(header)
        assert fallback and set(fallback) <= SAFE_ASCII and "/" not in fallback, (raw, header)
        assert parsed == raw, (raw, header)

    # refused links: tampered, for another name, incomplete, expired; unknown and unfinished tasks
    good = (await _link(authed, plain["id"]))["url"]
    path, query = good.split("?", 1)
    sig = query.split("sig=", 1)[1]
    tampered = good[:-1] + ("0" if sig[-1] != "0" else "1")
    for bad in (tampered, f"/files/{plain['id']}/other.bin?{query}", path, f"{path}?expires=1&sig={sig}",
                f"/files/{utf8['id']}/clip.bin?{query}"):
        answer = await anonymous.get(bad)
        assert answer.status_code == 403 and answer.json()["code"] == 40302, (bad, answer.text)
    signer: FileLinks = api.handle.app.extensions[LINKS_KEY]
    expired = signer.url(plain["id"], "clip.bin", int(time.time()) - 1)
    answer = await anonymous.get(expired)
    assert answer.status_code == 403 and "expired" in answer.json()["message"]
    await api.fail("POST", "/api/downloads/999/file-link", 404, 40401)
    (idle,) = await api.create({"type": "direct", "url": files.url("/f0.bin"), "name": "idle.bin"})
    await api.fail("POST", f"/api/downloads/{idle['id']}/file-link", 409, 40901)

    # the file deleted after the link was made: gone for the link, 409 for a new one
    Path(plain["file"]).unlink()
    gone = await anonymous.get(good)
    assert gone.status_code == 404 and gone.json()["code"] == 40402
    await api.fail("POST", f"/api/downloads/{plain['id']}/file-link", 409, 40901)


async def test_files_outside_the_roots_are_refused(make_api: ApiFactory, files: FileServer, tmp_path: Path) -> None:
    api = await make_api(token=TOKEN)
    authed = _authed(api)
    api.client.headers["Authorization"] = f"Bearer {TOKEN}"
    anonymous = api.new_client()
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.bin"
    secret.write_bytes(b"not yours")
    linked_data = random_bytes(4000, seed=5)
    swapped, via_folder, inside = await _finished(api, files, [
        ("swapped.bin", random_bytes(1000, seed=4)), ("d.bin", linked_data), ("inside.bin", linked_data),
    ], folders={1: "sub"})
    links = {t["id"]: (await _link(authed, t["id"]))["url"] for t in (swapped, inside)}

    # a symlink swapped in for a finished file, pointing outside: the old link and a new one are refused
    Path(swapped["file"]).unlink()
    Path(swapped["file"]).symlink_to(secret)
    answer = await anonymous.get(links[swapped["id"]])
    assert answer.status_code == 403 and answer.json()["code"] == 40303 and b"not yours" not in answer.content
    await api.fail("POST", f"/api/downloads/{swapped['id']}/file-link", 403, 40303)

    # a task whose folder became a symlink to a directory outside, holding a file of the same name
    folder = Path(via_folder["file"]).parent
    moved = api.download_dir / "elsewhere"
    folder.rename(moved)
    (outside / "d.bin").write_bytes(b"not yours either")
    folder.symlink_to(outside, target_is_directory=True)
    await api.fail("POST", f"/api/downloads/{via_folder['id']}/file-link", 403, 40303)

    # a symlink that stays inside the roots is followed
    Path(inside["file"]).unlink()
    Path(inside["file"]).symlink_to(moved / "d.bin")
    answer = await anonymous.get(links[inside["id"]])
    assert answer.status_code == 200 and answer.content == linked_data


@pytest.mark.serial  # alone: 1 GiB through the loop, with the slowest answer beside it timed
async def test_a_1_gib_file_streams_with_flat_memory(make_api: ApiFactory, files: FileServer) -> None:
    api = await make_api()
    (task,) = await _finished(api, files, [("big.mkv", b"x" * 1000)])
    size = 1 << 30
    os.truncate(task["file"], size)  # sparse: 1 GiB on disk costs nothing
    link = await _link(api.client, task["id"])
    assert link["size"] == size
    client = api.new_client()

    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    start = rss()
    peak = start
    slowest = 0.0
    loop = asyncio.get_running_loop()
    # a bare HTTP/1.1 client: httpx's parsing would cost more than the server's sending
    reader, writer = await asyncio.open_connection("127.0.0.1", api.handle.port)
    writer.write(f"GET {link['url']} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
    assert head.startswith("http/1.1 200") and f"content-length: {size}\r\n" in head, head
    assert "content-type: video/x-matroska\r\n" in head and "transfer-encoding" not in head
    assert (await reader.readexactly(1000)) == b"x" * 1000
    received = 1000
    while chunk := await reader.read(1 << 20):
        received += len(chunk)
        if received % (64 << 20) < len(chunk):
            peak = max(peak, rss())
            began = loop.time()  # the loop answers other requests while the file streams
            assert (await api.client.get("/healthy")).status_code == 200
            slowest = max(slowest, loop.time() - began)
    writer.close()
    assert received == size
    assert peak - start < 64 << 20, f"RSS grew by {(peak - start) >> 20} MiB while streaming 1 GiB"
    assert slowest < 1.0
    tail = await client.get(link["url"], headers={"Range": f"bytes={size - 10}-"})
    assert tail.status_code == 206 and tail.content == bytes(10)


async def test_links_can_be_turned_off(api: Api) -> None:
    app = create_app(api.engine, Config().override("files", enable=False))
    assert LINKS_KEY not in app.extensions and LINKS_KEY in api.handle.app.extensions
    client = app.test_client()
    answer = await client.post("/api/downloads/1/file-link")
    assert answer.status_code == 404 and (await answer.get_json())["code"] == 40400
    assert (await client.get("/files/1/x.bin?expires=1&sig=00")).status_code == 404

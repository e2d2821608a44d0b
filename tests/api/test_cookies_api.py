"""Cookie jars through the native API and the CLI: uploads answer with domains and counts only, a task's
JSON never carries a cookie, and a browser import that cannot work says why in words."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner, Result

from core.cookies import parse_netscape
from tests.api.conftest import Api
from tests.support.fileserver import FileServer, random_bytes
from tui.commands import main

SECRET = "upl0aded-s3cret"
UPLOAD = (
    "# Netscape HTTP Cookie File\r\n"
    f"127.0.0.1\tFALSE\t/\tFALSE\t0\tsid\t{SECRET}\r\n"
    f".example.com\tTRUE\t/\tTRUE\t4102444800\ta\t{SECRET}-a\r\n"
    f"www.example.com\tFALSE\t/\tFALSE\t0\tb\t{SECRET}-b\r\n"
)


async def test_upload_list_clear_and_no_value_comes_back(api: Api, files: FileServer) -> None:
    response = await api.client.post("/api/cookies", content=UPLOAD.encode(), headers={"Content-Type": "text/plain"})
    assert response.status_code == 200, response.text
    assert SECRET not in response.text
    assert response.json()["data"] == {"total": 3, "domains": [{"domain": "127.0.0.1", "cookies": 1},
                                                                {"domain": "example.com", "cookies": 1},
                                                                {"domain": "www.example.com", "cookies": 1}]}
    jar_file = api.tmp / "cookies" / "127.0.0.1.txt"
    assert jar_file.stat().st_mode & 0o777 == 0o600

    # A browser page's form of it: JSON (its text/plain would be refused before any route).
    again = await api.call("POST", "/api/cookies", json={"text": f"127.0.0.1\tFALSE\t/\tFALSE\t0\tsid\t{SECRET}2\n"})
    assert again == {"total": 1, "domains": [{"domain": "127.0.0.1", "cookies": 1}]}
    bad = await api.fail("POST", "/api/cookies", 400, 40000, content=f"127.0.0.1 sid {SECRET}\n".encode())
    assert "line 1" in bad["message"] and SECRET not in json.dumps(bad)

    url = files.add("/c.bin", random_bytes(50_000, seed=3))
    (task,) = await api.create({"url": url, "type": "direct", "name": "c.bin"}, start=True)
    done = await api.wait_status(task["id"], "success")
    assert any(f"sid={SECRET}2" in h.get("Cookie", "") for h in files.stats["/c.bin"].headers)
    listing = await api.client.get("/api/downloads")
    log = await api.client.get(f"/api/downloads/{task['id']}/logs")
    for text in (json.dumps(done), listing.text, log.text, (await api.client.get("/api/cookies")).text):
        assert SECRET not in text

    assert api.engine.cookies is not None
    await asyncio.to_thread(api.engine.cookies.remove, "example.com")  # as `fetchdeck cookies clear` does
    left = await api.call("GET", "/api/cookies")
    assert left == {"total": 1, "domains": [{"domain": "127.0.0.1", "cookies": 1}]}
    assert not (api.tmp / "cookies" / "example.com.txt").exists()


async def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, main, list(args), env=env, input=stdin,
                                   catch_exceptions=False)


async def test_cli_import_list_clear_and_a_browser_that_is_not_there(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    cookies_txt = tmp_path / "cookies.txt"
    cookies_txt.write_text(UPLOAD)
    imported = await cli("cookies", "import", str(cookies_txt), *data)
    assert imported.exit_code == 0, imported.output
    assert "imported 3 cookie(s) for 3 domain(s)" in imported.output and SECRET not in imported.output
    piped = await cli("cookies", "import", "-", *data, stdin=f"site.test\tFALSE\t/\tFALSE\t0\tz\t{SECRET}\n")
    assert piped.exit_code == 0 and "site.test (1)" in piped.output
    listed = await cli("cookies", "list", *data)
    assert listed.output.split() == ["127.0.0.1", "1", "example.com", "1", "site.test", "1", "www.example.com", "1"]
    cleared = await cli("cookies", "clear", "example.com", *data)
    assert "removed 2 cookie(s) for example.com" in cleared.output
    jar = tmp_path / "data" / "cookies"
    assert sorted(p.name for p in jar.iterdir()) == ["127.0.0.1.txt", "site.test.txt"]
    assert jar.stat().st_mode & 0o777 == 0o700
    assert [c.value for c in parse_netscape((jar / "127.0.0.1.txt").read_text())] == [SECRET]

    home = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config")}
    for browser in ("chrome", "firefox:nosuchprofile"):
        failed = await cli("cookies", "import", "--from-browser", browser, *data, env=home)
        assert failed.exit_code == 1, failed.output
        name = browser.split(":")[0]
        assert f"fetchdeck: no {name} profile with cookies found on this machine" in failed.output, failed.output
        assert "Traceback" not in failed.output
    unknown = await cli("cookies", "import", "--from-browser", "netscape4", *data)
    assert unknown.exit_code == 1 and "unsupported browser 'netscape4'; supported: brave, chrome" in unknown.output
    neither = await cli("cookies", "import", *data)
    assert neither.exit_code == 2 and "--from-browser" in neither.output

"""What the command line imports: `fetchdeck get` of an HTTP or HLS URL loads neither the TUI, nor the
server, nor yt-dlp (nor rich, unless stderr is a terminal, nor click); `fetchdeck --version` no click; https
still verifies with the CA bundle that core/downloaders/net.py loads only before the first https request.

Each case runs the real command in a fresh interpreter under `python -X importtime`, whose report on
stderr names every module the process imported (lazily imported ones included). No timings are
asserted here: tests/bench/bench_startup.py measures them.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fileserver import FileServer, random_bytes
from tests.support.hls_fixtures import make_vod
from tests.support.tls import self_signed_context

ROOT = Path(__file__).resolve().parents[2]
NOT_ON_THE_GET_PATH = {"textual", "quart", "quart_schema", "hypercorn", "yt_dlp", "aiobotocore", "botocore"}
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$")


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FETCHDECK_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def run_cli(*args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `python -X importtime -m tui.cli ARGS`; return the result (stderr without the import report)
    and the names of the modules it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tui.cli", *args], cwd=ROOT, env=child_env(**env),
        capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
    )
    modules, rest = set(), []
    for line in proc.stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match:
            modules.add(match[1])
        else:
            rest.append(line)
    proc.stderr = "\n".join(rest)
    assert modules, "no -X importtime report: is this CPython?"
    return proc, modules


def packages(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def get(url: str, tmp_path: Path, *extra: str, **env: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    return run_cli("get", url, "-d", str(tmp_path / "dl"), "--data-dir", str(tmp_path / "data"), *extra, **env)


def test_get_of_an_http_file_imports_no_tui_server_or_ytdlp(tmp_path: Path) -> None:
    data = random_bytes(2048, seed=5)
    with FileServer() as srv:
        url = srv.add("/tiny.bin", data)
        result, modules = get(url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).read_bytes() == data
    assert not packages(modules) & NOT_ON_THE_GET_PATH, sorted(packages(modules) & NOT_ON_THE_GET_PATH)
    # Nor httpx's own CLI (click is there for fetchdeck's; pygments and rich.syntax only for httpx's).
    assert "core.engine" in modules and "aiohttp.connector" in modules  # the real download path ran
    assert not {"pygments", "rich.syntax"} & modules, sorted({"pygments", "rich.syntax"} & modules)
    # stderr is a pipe here: the progress bar (tui/get_progress.py) and rich itself stay out; and a plainly
    # spelled `get` runs without click's command tree (tui/get_cli.py).
    assert not {"tui.get_progress", "rich", "click", "tui.commands"} & modules, sorted(
        {"tui.get_progress", "rich", "click", "tui.commands"} & modules)


def test_get_with_stderr_a_terminal_by_force_color_still_loads_the_progress_bar(tmp_path: Path) -> None:
    """FORCE_COLOR makes rich treat a pipe as a terminal; `get` then asks rich, which draws its bar."""
    with FileServer() as srv:
        url = srv.add("/tiny.bin", random_bytes(1024, seed=6))
        result, modules = get(url, tmp_path, FORCE_COLOR="1")
    assert result.returncode == 0, result.stderr
    assert {"tui.get_progress", "rich.progress"} <= modules
    assert "tiny.bin" in result.stderr and "100.0%" in result.stderr


def test_get_of_an_hls_playlist_imports_no_tui_server_or_ytdlp(tmp_path: Path) -> None:
    playlist = make_vod(tmp_path / "media", seconds=2)
    with FileServer() as srv:
        srv.add_dir("/media", playlist.parent)
        result, modules = get(srv.url("/media/index.m3u8"), tmp_path, "--name", "clip.ts")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).stat().st_size > 0
    assert "core.downloaders.hls" in modules
    assert not packages(modules) & NOT_ON_THE_GET_PATH, sorted(packages(modules) & NOT_ON_THE_GET_PATH)


def test_version_imports_no_click_and_prints_the_installed_version() -> None:
    result, modules = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"python -m tui.cli, version {importlib.metadata.version('fetchdeck')}\n"
    assert not packages(modules) & {"click", "core", "pydantic", "asyncio", "httpx", "aiohttp"}
    # With other options click answers, the same way.
    with_options, modules = run_cli("--data-dir", "/nonexistent", "--version")
    assert with_options.stdout == result.stdout and "click" in modules


def test_https_get_verifies_against_the_default_ca_bundle_loaded_at_first_use(tmp_path: Path) -> None:
    """aiohttp's verified context skipped the bundle at import (core/downloaders/net.py): through
    the real `get` it still trusts exactly what SSL_CERT_FILE names, and nothing else."""
    context = self_signed_context(tmp_path)
    empty = tmp_path / "no-certs"
    empty.mkdir()
    with FileServer(ssl_context=context) as srv:
        url = srv.add("/tls.bin", b"over tls" * 100)
        trusted, modules = get(url, tmp_path / "a", SSL_CERT_FILE=str(tmp_path / "cert.pem"), SSL_CERT_DIR=str(empty))
        untrusted, _ = get(url, tmp_path / "b", SSL_CERT_FILE=str(empty / "none.pem"), SSL_CERT_DIR=str(empty))
    assert "tui.get_cli" in modules and "core.downloaders.net" in modules
    assert trusted.returncode == 0, trusted.stderr
    assert Path(trusted.stdout.strip()).read_bytes() == b"over tls" * 100
    assert untrusted.returncode == 1 and "certificate" in untrusted.stderr.lower(), untrusted.stderr


@pytest.mark.parametrize("command", ["--help", "get --help", "ls --help"])
def test_help_imports_no_engine(command: str) -> None:
    result, modules = run_cli(*command.split())
    assert result.returncode == 0 and "Usage:" in result.stdout
    assert not packages(modules) & (NOT_ON_THE_GET_PATH | {"aiohttp", "httpx", "pydantic", "aiosqlite"})

"""Real clients published on npm, installed for the test run and run with node.

`install()` runs `npm install` once per package.json change into .venv/node-clients (beside the
venv dev.py makes, outside git) and copies the driver scripts of tests/clients/node/ next to
node_modules (ES modules resolve packages from the script's folder), under a lock file: two pytest-xdist
workers (dev.py) install once, and a script another worker is running is never rewritten (each is replaced
whole, and only when it changed). Only a machine without node or npm skips these tests, saying so; a
registry that fails is a test failure. `run_script` runs a driver to its end; `drive` runs one in the
test's loop that may stop to let the test act on its servers (a `{"need": ...}` line, answered with a
newline on the driver's stdin).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from asyncio.subprocess import PIPE
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests" / "clients" / "node"
TARGET = ROOT / ".venv" / "node-clients"
STAMP = TARGET / ".installed"
LOCK = TARGET / ".install.lock"


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Held while one process checks, installs and copies (another waits for it)."""
    with LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def install() -> Path:
    """The folder holding node_modules and the driver scripts."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not on this machine: the npm-published clients (@mediago/core-sdk) "
                    "cannot run (apt-get install nodejs npm)")
    manifest = (SOURCE / "package.json").read_bytes()
    wanted = hashlib.sha256(manifest).hexdigest()
    TARGET.mkdir(parents=True, exist_ok=True)
    with _locked():
        if not STAMP.exists() or STAMP.read_text() != wanted:
            (TARGET / "package.json").write_bytes(manifest)
            result = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--no-package-lock", "--loglevel=error"],
                cwd=TARGET, capture_output=True, text=True, timeout=300, check=False,
            )
            assert result.returncode == 0, f"npm install failed:\n{result.stdout}\n{result.stderr}"
            STAMP.write_text(wanted)
        for script in SOURCE.glob("*.mjs"):
            target, body = TARGET / script.name, script.read_bytes()
            if not target.exists() or target.read_bytes() != body:
                staged = target.with_name(f".{script.name}.{os.getpid()}")
                staged.write_bytes(body)
                os.replace(staged, target)
    return TARGET


def run_script(name: str, *args: str, timeout: float = 90) -> dict[str, Any]:
    """Run a driver script with node; it prints one JSON object."""
    folder = install()
    node = shutil.which("node")
    assert node is not None
    result = subprocess.run([node, str(folder / name), *args], capture_output=True, text=True, timeout=timeout,
                            check=False, cwd=folder)
    assert result.returncode == 0, f"{name} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"{name} printed no JSON:\n{result.stdout}\n{result.stderr}"
    return json.loads(lines[-1])  # type: ignore[no-any-return]


async def drive(name: str, *args: str, answer: Callable[[dict[str, Any]], None], timeout: float = 60) -> dict[str, Any]:
    """Run a driver script that may stop for the test: each line `{"need": ...}` it prints is handed to
    answer() (in the test's loop, so it can act on the servers), then a newline on its stdin lets it go on.
    Returns the last JSON object it prints."""
    folder = await asyncio.to_thread(install)
    node = shutil.which("node")
    assert node is not None
    proc = await asyncio.create_subprocess_exec(node, str(folder / name), *args, cwd=folder, stdin=PIPE,
                                                stdout=PIPE, stderr=PIPE)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    printed: list[str] = []
    errors = asyncio.ensure_future(proc.stderr.read())  # drained as it comes, so node never blocks on it
    try:
        async with asyncio.timeout(timeout):
            while line := (await proc.stdout.readline()).decode():
                printed.append(line)
                if line.startswith('{"need"'):
                    answer(json.loads(line))
                    proc.stdin.write(b"\n")
                    await proc.stdin.drain()
            err = (await errors).decode()
            code = await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        errors.cancel()
        raise AssertionError(f"{name} ran over {timeout} s:\n{''.join(printed)}") from None
    assert code == 0, f"{name} exited {code}:\n{''.join(printed)}\n{err}"
    lines = [line for line in printed if line.startswith("{") and not line.startswith('{"need"')]
    assert lines, f"{name} printed no JSON:\n{''.join(printed)}\n{err}"
    return json.loads(lines[-1])  # type: ignore[no-any-return]

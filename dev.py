#!/usr/bin/env python3
"""Set up a virtualenv for fetchdeck and run it or its tests.

    python3 dev.py run [fetchdeck args...]   # set up, then start fetchdeck
    python3 dev.py test                      # set up, then run the whole test suite (two phases, below)
    python3 dev.py test [pytest args...]     # set up, then run pytest with these args, as given

The whole suite runs in two phases, both always run (the exit code is the first failing one's):
the bulk on two pytest-xdist workers (`-n 2 --dist loadfile`: a file's tests share one worker, so its
module fixtures are built once), then the tests marked `serial` (load-sensitive timing, the node fleet,
the crash loop) alone in one process. FETCHDECK_TEST_WORKERS sets the number of workers (0: the bulk
in one process as well).

Only Python 3.11+ is needed: the venv lives in .venv and is (re)installed when
pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".fetchdeck-installed"


def _wanted_stamp() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs under any python3 the user has
        sys.exit(f"fetchdeck needs Python 3.11 or newer, this is {sys.version.split()[0]}")
    if STAMP.exists() and STAMP.read_text() == _wanted_stamp():
        return
    if not (BIN / "python").exists():
        print("dev.py: creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    print("dev.py: installing fetchdeck and test dependencies into .venv", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(_wanted_stamp())


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "setup"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_venv()
    if command == "setup":
        return 0
    if command == "run":
        return subprocess.call([str(BIN / "fetchdeck"), *rest])
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    pytest = [str(BIN / "python"), "-m", "pytest"]
    if rest:  # the user's own selection, run as asked
        return subprocess.call([*pytest, *rest], cwd=ROOT, env=env)
    workers = os.environ.get("FETCHDECK_TEST_WORKERS", "2")
    phases = [
        ("the bulk, on parallel workers", [*pytest, "-n", workers, "--dist", "loadfile", "-m", "not serial"]),
        ("the serial tests, alone", [*pytest, "-p", "no:xdist", "-m", "serial"]),
    ]
    codes = []
    for title, command in phases:
        print(f"dev.py: {title}: {' '.join(command[1:])}", flush=True)
        try:
            codes.append(subprocess.call(command, cwd=ROOT, env=env))
        except KeyboardInterrupt:  # Ctrl-C reached pytest too; it has stopped
            return 130
    print(f"dev.py: exit codes {codes} (bulk, serial)", flush=True)
    return next((code for code in codes if code != 0), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

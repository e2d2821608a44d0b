"""The layering (README "Layout") and the downloader families' public surfaces, as import-linter contracts.

The contracts live in pyproject.toml (`[tool.importlinter]`); `lint-imports` checks them in .ci/run and
here, so the test command covers them too. The second test shows they bite: a copy of the sources with
one bad import each (a lazy one inside a function, one under `if TYPE_CHECKING:`, one of a family's
private module, one closing a cycle) breaks exactly the contracts it should.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("core", "server", "tui", "themes")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: install the test extra (pip install -e '.[test]')")
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)


def test_import_contracts_are_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Contracts: (\d+) kept, 0 broken", result.stdout), result.stdout


def _copy_sources(dest: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__", "*.tcss"))


def _module(root: Path, name: str, body: str) -> None:
    """A new module in the copy, so the bad imports do not depend on what today's modules import."""
    (root / name).write_text(f'"""A deliberate import for the contracts to catch."""\n\n{body}', encoding="utf-8")


def test_contracts_catch_lazy_type_checking_private_and_cyclic_imports(tmp_path: Path) -> None:
    _copy_sources(tmp_path)
    lazy = "def _lazy() -> None:\n    {}\n"
    _module(tmp_path, "core/bad_ui.py", lazy.format("import textual"))
    _module(tmp_path, "server/bad_tui.py", "from typing import TYPE_CHECKING\n\n"
                                           "if TYPE_CHECKING:\n    from tui import format\n")
    _module(tmp_path, "tui/bad_server.py", lazy.format("from server import runner"))
    _module(tmp_path, "core/bad_hls.py", lazy.format("from core.downloaders.hls import playlist"))
    _module(tmp_path, "server/bad_ytdlp.py", lazy.format("import core.downloaders.ytdlp.options"))
    _module(tmp_path, "server/bad_storage.py", lazy.format("from core.storage import client"))
    _module(tmp_path, "server/bad_driver.py", lazy.format("import asyncpg"))
    _module(tmp_path, "themes/bad_textual.py", lazy.format("from textual.color import Color"))
    _module(tmp_path, "core/loop_a.py", "from core import loop_b\n")
    _module(tmp_path, "core/loop_b.py", lazy.format("from core import loop_a"))
    # allowed: the composition root wires the server in; anything may use the wire format module
    _module(tmp_path, "server/wire.py", "")
    _module(tmp_path, "tui/speaks_wire.py", lazy.format("from server import wire"))
    serve_command = tmp_path / "tui/serve_command.py"
    wired = serve_command.read_text(encoding="utf-8") + "\n\n" + lazy.format("from server import runner")
    serve_command.write_text(wired, encoding="utf-8")

    result = lint_imports(tmp_path)
    out = result.stdout
    assert result.returncode != 0, out
    assert "Contracts: 0 kept, 9 broken" in out, out
    assert "themes.bad_textual -> textual" in out
    assert "core.bad_ui -> textual" in out
    assert "server.bad_tui -> tui.format" in out
    assert "tui.bad_server -> server.runner" in out
    assert "core.bad_hls -> core.downloaders.hls.playlist" in out
    assert "server.bad_ytdlp -> core.downloaders.ytdlp.options" in out
    assert "server.bad_storage -> core.storage.client" in out
    assert "server.bad_driver -> asyncpg" in out
    assert "No cycles are allowed in core." in out and ".loop_b -> .loop_a" in out
    assert "tui.serve_command -> server" not in out and "tui.speaks_wire" not in out

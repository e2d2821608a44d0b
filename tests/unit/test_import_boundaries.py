"""The layering (README "Layout") and the downloader families' public surfaces, as import-linter contracts.

The contracts live in pyproject.toml (`[tool.importlinter]`); `lint-imports` checks them in .ci/run and
here, so the test command covers them too. The second test shows they bite: a copy of the sources with
one bad import each (a lazy one inside a function, one under `if TYPE_CHECKING:`, one of a family's
private module) breaks exactly the contracts it should.
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
PACKAGES = ("core", "server", "tui")


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


def _append(path: Path, code: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n\n" + code, encoding="utf-8")


def test_contracts_catch_lazy_type_checking_and_private_imports(tmp_path: Path) -> None:
    _copy_sources(tmp_path)
    _append(tmp_path / "core/config.py", "def _lazy() -> None:\n    import textual\n")
    _append(tmp_path / "server/errors.py", "from typing import TYPE_CHECKING\n"
                                            "if TYPE_CHECKING:\n    from tui import format\n")
    _append(tmp_path / "tui/format.py", "def _lazy() -> None:\n    from server import runner\n")
    _append(tmp_path / "core/engine.py", "def _lazy() -> None:\n    from core.downloaders.hls import job\n")
    _append(tmp_path / "server/app.py", "def _lazy() -> None:\n    import core.downloaders.ytdlp.params\n")
    # allowed: the composition root wires the server in; anything may use the wire format module
    _append(tmp_path / "tui/serve_command.py", "def _lazy() -> None:\n    from server import runner\n")
    (tmp_path / "server/wire.py").write_text('"""The wire format (stand-in)."""\n', encoding="utf-8")
    _append(tmp_path / "tui/launch.py", "def _lazy() -> None:\n    from server import wire\n")

    result = lint_imports(tmp_path)
    out = result.stdout
    assert result.returncode != 0, out
    assert "Contracts: 0 kept, 5 broken" in out, out
    assert "core.config -> textual" in out
    assert "server.errors -> tui.format" in out
    assert "tui.format -> server.runner" in out
    assert "core.engine -> core.downloaders.hls.job" in out
    assert "server.app -> core.downloaders.ytdlp.params" in out
    assert "tui.serve_command -> server" not in out and "tui.launch -> server.wire" not in out

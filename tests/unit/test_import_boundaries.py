"""The layering from DESIGN.md, checked on every module's imports (incl. lazy ones)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "core": {"server", "tui", "textual", "quart", "quart_schema", "hypercorn"},
    "server": {"tui", "textual"},
    "tui": {"server"},  # only the composition root (tui/cli.py and its command modules) wires the server in
}
COMPOSITION_ROOT = {"tui/cli.py", "tui/serve_command.py", "tui/embedded_api.py"}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports(layer: str) -> None:
    offenders = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in COMPOSITION_ROOT:
            continue
        bad = imported_packages(path) & FORBIDDEN[layer]
        if bad:
            offenders.append(f"{rel} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)

"""Start-up cost of the config (core/config.py), which every command loads: run from a checkout,
`python tests/bench/bench_config.py [ROOT ...] [-n N]` (default: this checkout, 15 fresh processes each,
interleaved when several roots are compared, e.g. main's worktree beside a branch's).

A: `python -X importtime -c "import core.config"`, the cumulative line for core.config (nothing preloaded,
   so pydantic's own import is in it).
B: CPU time (time.process_time) of `import core.config` after core.models, core.validation and logging,
   which `fetchdeck get` imports anyway, and of one load_config of the commented template plus a
   [server.listen] table and one FETCHDECK_* variable.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = """\
import sys, time, logging
import core.models, core.validation
t0 = time.process_time()
import core.config as c
t1 = time.process_time()
from pathlib import Path
c.load_config(Path(sys.argv[1]), environ={"FETCHDECK_DOWNLOAD_CONNECTIONS": "12"})
t2 = time.process_time()
print((t1 - t0) * 1e3, (t2 - t1) * 1e3)
"""


def python_of(root: Path) -> str:
    venv = root / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="*", type=Path, default=[ROOT])
    parser.add_argument("-n", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        sys.path.insert(0, str(ROOT))
        from core.config import _TEMPLATE

        config.write_text(_TEMPLATE + '[server.listen]\ndownie = { address = "127.0.0.1:8000", token = false }\n')
        seen: dict[Path, dict[str, list[float]]] = {r: {"A": [], "import": [], "load": []} for r in args.roots}
        for _ in range(args.n):
            for root in args.roots:
                py = python_of(root)
                out = subprocess.run([py, "-X", "importtime", "-c", "import core.config"], cwd=root,
                                     capture_output=True, text=True, check=True)
                line = next(x for x in out.stderr.splitlines() if x.rstrip().endswith("| core.config"))
                seen[root]["A"].append(int(line.split("|")[1]) / 1000)
                out = subprocess.run([py, "-c", CODE, str(config)], cwd=root, capture_output=True, text=True,
                                     check=True)
                imported, loaded = map(float, out.stdout.split())
                seen[root]["import"].append(imported)
                seen[root]["load"].append(loaded)
    for root, d in seen.items():
        def stat(xs: list[float]) -> str:
            return f"min {min(xs):6.1f} median {statistics.median(xs):6.1f}"

        print(f"{root}\n  A importtime core.config (ms, cumulative) {stat(d['A'])}\n"
              f"  B import core.config after core.models (CPU ms) {stat(d['import'])}\n"
              f"  B load_config (CPU ms)                          {stat(d['load'])}")


if __name__ == "__main__":
    main()

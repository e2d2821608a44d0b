"""Full crash-loop soak: 300 tasks, 10 SIGKILLs of `fetchdeck serve`, under fault injection.

    python tests/bench/soak.py                    # the full run (< 10 minutes)
    python tests/bench/soak.py --tasks 60 --kills 4 --seed 3 --json

Exit code 0 when every guarantee held (see tests/support/crashloop.py); the
reduced form runs in CI as tests/e2e/test_crash_loop.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.crashloop import SoakPlan, run_soak
from tests.support.fileserver import FileServer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--workdir", type=Path, help="keep the data and downloads here (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    plan = replace(SoakPlan(), tasks=args.tasks, kills=args.kills, seed=args.seed,
                   kill_after=(2.0, 6.0), finish_timeout=400.0, max_concurrent=12)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fetchdeck-soak-") as tmp, FileServer() as files:
        workdir = args.workdir or Path(tmp)
        report = run_soak(plan, files, workdir, log=lambda text: print(text, flush=True))
    print(json.dumps(report.__dict__, indent=2) if args.json else report.summary())
    for problem in report.problems:
        print("PROBLEM:", problem)
    print(f"wall time {time.monotonic() - started:.1f}s")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())

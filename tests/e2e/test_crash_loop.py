"""Crash loop (reduced form of tests/bench/soak.py): `fetchdeck serve` SIGKILLed 3 times under faults.

40 tasks (direct files of several sizes and HLS streams) against a
fault-injecting file server: 5xx bursts, 429 + Retry-After, resets and
truncated bodies mid-body, stalls past the read timeout, a file that changes
under its ETag and a missing URL. See tests/support/crashloop.py for what is
checked: no lost or duplicated task, every file byte-identical, no temp file
left, the only failure the true one, and PRAGMA integrity_check ok.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.crashloop import SoakPlan, run_soak
from tests.support.fileserver import FileServer

pytestmark = pytest.mark.serial  # alone: a serve SIGKILLed mid-download, against stalls past the read timeout


def test_crash_loop_loses_nothing_and_corrupts_nothing(tmp_path: Path) -> None:
    plan = SoakPlan(tasks=40, kills=3, seed=8)
    with FileServer() as files:
        report = run_soak(plan, files, tmp_path, log=print)
    print(report.summary())
    assert report.kills == 3 and report.restarts == 3
    assert report.recovered >= 3, report.summary()  # the kills did land mid-download
    assert report.faults_set >= 10, report.fault_kinds  # the plan really injected faults
    assert not report.problems, "\n".join(report.problems)
    assert report.success == plan.tasks - 1 and report.failed == 1
    assert report.integrity == "ok"

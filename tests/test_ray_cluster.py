"""Two Ray nodes on this machine (tests/cluster_check.py): a sweep across both survives a killed worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]

pytest.importorskip("ray", reason="Ray is not installed: pip install 'lrgym[ray]' to run the Ray cluster check")

ROOT = Path(__file__).resolve().parent.parent


def test_a_sweep_across_two_nodes_survives_a_killed_worker_and_matches_the_local_backend():
    check = subprocess.Popen(
        [sys.executable, "-m", "tests.cluster_check", "--seeds", "3", "--timeout", "240"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        report, _ = check.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        check.terminate()  # the check stops its nodes on SIGTERM
        report, _ = check.communicate(timeout=60)
        pytest.fail(f"the cluster check took over 300 s:\n{report}")
    assert check.returncode == 0, report
    assert "ok: killed worker process" in report
    assert "on 2 nodes:" in report
    assert "ok: results equal the local backend's" in report
    assert "2 env actors on 2 node(s)" in report
    assert "stopped both nodes (0 of their processes left)" in report

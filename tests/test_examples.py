"""The worked example (examples/digits/three_ways.py) runs, short, and prints its three results."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits" / "three_ways.py"


@pytest.mark.slow
def test_the_digits_example_trains_three_ways_and_prints_them(tmp_path):
    pytest.importorskip("sklearn", reason="pip install 'lrgym[examples]'")
    result = subprocess.run([sys.executable, str(EXAMPLE), "--quick", "--out", str(tmp_path / "transfer")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"^  (\d)\. .* loss (\d\.\d{4})  accuracy (\d\.\d{4})$", result.stdout, re.MULTILINE)
    assert [row[0] for row in rows] == ["1", "2", "3"], result.stdout
    assert all(float(accuracy) > 0.5 for _, _, accuracy in rows)  # ten classes: far above chance
    assert (tmp_path / "transfer" / "results.csv").is_file()

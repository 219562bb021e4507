"""Malformed controller checkpoints (lrgym/checkpoints/file_checks.py and the loaders that use it):
every one is refused with exit 2 and one line naming its file, nothing in it is unpickled,
and refusing them all takes no more memory than acting with a good controller.

The cases (tests/malformed_checkpoints.py): corrupt, truncated, empty and hostile weights
(headers of 2^63-1 bytes, 99 MB, huge shapes and offsets), a pickle or zip in the place of
the weights, the statistics and the card, JSON nested 100,000 deep, cards with a field
removed, architectures of 4 TB or of widths 0, base schedules that divide by zero.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lrgym.checkpoints.file_checks import MAX_HEADER_BYTES, parse_json, safetensors_shapes
from lrgym.cli import main

from .malformed_checkpoints import CANARY, CARD_CASES, FILE_CASES, SOURCE, write_cases

ROOT = Path(__file__).resolve().parents[1]
EPISODE = ["episode", "mnist1d-mlp", "--device", "cpu", "--set", "steps=20", "--set", "val_size=100"]


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, Path]:
    return write_cases(tmp_path_factory.mktemp("malformed"))


@pytest.mark.parametrize("name", [*FILE_CASES, *CARD_CASES])
def test_a_malformed_controller_is_one_line_naming_its_file_and_exit_2(name, cases, capsys):
    case = cases[name]
    assert main([*EPISODE, "--agent", f"ppo:{case}"]) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lrgym episode: error: "), captured.err
    assert f"{case}/" in lines[0] and "Traceback" not in captured.err
    assert captured.out == ""  # refused before the episode, not after
    assert not (case.parent / CANARY).exists()


def test_the_controller_the_cases_are_made_from_acts(capsys):
    assert main([*EPISODE, "--agent", f"ppo:{SOURCE}"]) == 0  # the controller they are made from acts
    assert "ok: test loss" in capsys.readouterr().out


def test_a_header_longer_than_a_policy_needs_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "policy.safetensors"
    path.write_bytes((MAX_HEADER_BYTES + 1).to_bytes(8, "little") + b" " * (MAX_HEADER_BYTES + 1))
    with pytest.raises(ValueError, match=f"header declares {MAX_HEADER_BYTES + 1} bytes"):
        safetensors_shapes(path)


@pytest.mark.parametrize(("raw", "message"), [
    (b"\x80\x04K\x01.", "not UTF-8 text (it looks like a pickle)"),
    (b"[" * 100_000, "maximum recursion depth"),
    (b'{"a": 1', "Expecting"),
])
def test_json_that_is_not_json_is_named_with_its_file(raw, message):
    with pytest.raises(ValueError, match=r"^stats\.json: not the statistics: .*" + re.escape(message)):
        parse_json(raw, "stats.json", "the statistics")


WALK = """
import contextlib, io, json, resource, sys
from lrgym.cli import main
lines = {}
for case in sys.argv[2:]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(json.loads(sys.argv[1]) + ["--agent", "ppo:" + case])
    lines[case] = [code, err.getvalue().strip().splitlines()]
print(json.dumps({"lines": lines, "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _walk(folders: list[Path]) -> dict:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    finished = subprocess.run([sys.executable, "-c", WALK, json.dumps(EPISODE), *map(str, folders)],
                              capture_output=True, text=True, env=environment, check=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_walking_a_folder_of_malformed_controllers_is_one_line_each_in_bounded_memory(tmp_path):
    cases = write_cases(tmp_path)
    walked = _walk(sorted(cases.values()))
    acting = _walk([SOURCE])  # one process that loads a good controller and runs an episode
    for case, (code, lines) in walked["lines"].items():
        assert code == 2 and len(lines) == 1 and case in lines[0], (case, lines)
    assert not (tmp_path / CANARY).exists()  # no pickle anywhere was ever loaded
    assert acting["lines"][str(SOURCE)][0] == 0
    # 4 TB architectures, 2^63-byte headers, 100,000-deep JSON: none costs more than acting does
    assert walked["max_rss_kb"] <= acting["max_rss_kb"] + 100_000

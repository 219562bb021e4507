"""Where runs execute (lrgym/runners/: backend.py, pool.py): the backend choice, its errors, and the node each run
records. The Ray side of the package is tests/test_ray_backend.py."""

from __future__ import annotations

import socket
import sys

import pytest

from lrgym.cli import main
from lrgym.runners.backend import Backend
from lrgym.runners.options import RunOptions
from lrgym.runners.pool import run_jobs, run_placed
from tests.conftest import TINY

TINY_FLAGS = [flag for key, value in TINY.items() for flag in ("--set", f"{key}={value}")]


def square(value: int) -> int:
    return value * value


def test_local_runs_keep_the_order_and_record_this_host():
    # (the process pool records its node too: tests/test_evaluate.py runs one)
    placed = run_placed(square, [(value,) for value in range(5)], RunOptions(jobs=1, progress=False))
    assert placed == [(value * value, socket.gethostname()) for value in range(5)]
    assert run_jobs(square, [(3,), (4,)], RunOptions(jobs=1, progress=False)) == [9, 16]


def test_unknown_backend_and_an_address_without_ray_are_clear_errors():
    with pytest.raises(ValueError, match="unknown backend 'dask'; valid backends: local, ray"):
        Backend("dask")
    with pytest.raises(ValueError, match=r"needs the ray backend \(--backend ray\)"):
        Backend("local", address="127.0.0.1:6379")


def test_asking_for_ray_without_it_installed_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when Ray is not installed
    with pytest.raises(ValueError, match=r"pip install 'lrgym\[ray\]'"):
        Backend("ray")
    code = main([
        "evaluate", "mnist1d-mlp", "--agents", "constant", "--seeds", "1", "--backend", "ray",
        "--out", str(tmp_path / "out"), *TINY_FLAGS,
    ])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert error == [
        "lrgym evaluate: error: the ray backend needs Ray, which is not installed: pip install 'lrgym[ray]'"
    ]
    assert not (tmp_path / "out" / "results.csv").exists()


def test_without_ray_the_local_backend_still_runs(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main([
        "evaluate", "mnist1d-mlp", "--agents", "constant", "--seeds", "1", "--jobs", "1",
        "--out", str(tmp_path / "out"), *TINY_FLAGS,
    ]) == 0
    assert (tmp_path / "out" / "results.csv").is_file()

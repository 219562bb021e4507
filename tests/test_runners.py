"""Where runs execute (lrgym/runners/: backend.py, pool.py): the backend choice, its errors, and the node each run
records. The Ray side of the package is tests/test_ray_backend.py."""

from __future__ import annotations

import csv
import math
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lrgym.cli import main
from lrgym.runners.backend import THREADS_VARIABLE, Backend, pin_threads
from lrgym.runners.options import RunOptions
from lrgym.runners.pool import run_jobs, run_placed
from tests.conftest import TINY

TINY_FLAGS = [flag for key, value in TINY.items() for flag in ("--set", f"{key}={value}")]
ROOT = Path(__file__).resolve().parents[1]


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


# ---------------------------------------------------------------------------- addresses and timeouts
@pytest.mark.parametrize("address", ["auto", "local", "127.0.0.1:6379", "ray://10.0.0.2:10001", "head-node:6379",
                                     "head.cluster.example.org:6379", "[::1]:6379"])
def test_ray_addresses_of_every_form_are_accepted(address, monkeypatch):
    monkeypatch.setattr("lrgym.runners.backend.ray_installed", lambda: True)
    assert Backend("ray", address).address == address


@pytest.mark.parametrize(("address", "problem"), [
    ("256.1.1.1:99999", "port '99999' is not a number from 1 to 65535"),
    ("256.1.1.1:999", "host '256.1.1.1' is neither an IP address nor a host name"),
    ("127.0.0.1", "no HOST:PORT"),
    ("127.0.0.1:0", "port '0' is not a number from 1 to 65535"),
    ("http://head:6379", "host 'http://head' is neither an IP address nor a host name"),
    ("::1:6379", "host '::1' is neither an IP address nor a host name"),
])
def test_a_ray_address_of_the_wrong_form_is_refused_before_any_connection(address, problem):
    with pytest.raises(ValueError, match=re.escape(f"--ray-address {address!r}: {problem}; expected HOST:PORT")):
        Backend("ray", address)


@pytest.mark.parametrize("timeout", [0, -1, math.inf, math.nan, "30"])
def test_the_connect_timeout_is_a_number_of_seconds(timeout, monkeypatch):
    monkeypatch.setattr("lrgym.runners.backend.ray_installed", lambda: True)
    with pytest.raises(ValueError, match="connect timeout must be a number of seconds > 0"):
        Backend("ray", connect_timeout_s=timeout)


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1", "silent", "ray://silent"])
def test_an_unreachable_cluster_is_one_line_naming_the_address_within_the_timeout(address, tmp_path):
    pytest.importorskip("ray")
    with socket.socket() as silent:  # accepts connections and never answers: a cluster that hangs
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = address.replace("silent", f"127.0.0.1:{silent.getsockname()[1]}")
        started = time.perf_counter()
        finished = subprocess.run(
            [sys.executable, "-m", "lrgym.cli", "evaluate", "mnist1d-mlp", "--agents", "constant", "--seeds", "1",
             "--backend", "ray", "--ray-address", address, "--ray-timeout", "3", "--out", str(tmp_path), *TINY_FLAGS],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
        )
    took = time.perf_counter() - started
    errors = [line for line in finished.stderr.splitlines() if line.startswith("lrgym evaluate: error: ")]
    assert finished.returncode == 2 and len(errors) == 1 and address in errors[0], finished.stderr
    assert "Traceback" not in finished.stderr and took < 60  # start-up included; Ray alone retried for minutes
    assert not (tmp_path / "results.csv").exists()


# ---------------------------------------------------------------------------- threads
@pytest.fixture
def restore_threads(monkeypatch):
    monkeypatch.setenv(THREADS_VARIABLE, "1")
    yield
    torch.set_num_threads(1)


def test_pinning_threads_reaches_this_process_and_the_processes_it_starts(restore_threads):
    assert pin_threads(2) == 2 and torch.get_num_threads() == 2 and os.environ[THREADS_VARIABLE] == "2"
    torch.set_num_threads(1)
    assert pin_threads() == 2 and torch.get_num_threads() == 2  # a worker reads the command's count


def test_a_bad_thread_count_in_the_environment_is_named(restore_threads, monkeypatch):
    monkeypatch.setenv(THREADS_VARIABLE, "many")
    with pytest.raises(ValueError, match="LRGYM_THREADS='many': expected an integer >= 1"):
        pin_threads()
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        Backend(threads=0)


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_every_run_runs_on_the_backends_thread_count(jobs, restore_threads):
    options = RunOptions(jobs=jobs, progress=False, backend=Backend(threads=2))
    # torch's own function: a function of this module would import conftest, which pins 1, in the workers
    assert run_jobs(torch.get_num_threads, [()] * 2, options) == [2, 2]


def test_evaluate_and_episode_record_the_thread_count(tmp_path, restore_threads, capsys):
    assert main(["evaluate", "mnist1d-mlp", "--agents", "constant", "--seeds", "1", "--jobs", "1",
                 "--threads", "2", "--out", str(tmp_path), *TINY_FLAGS]) == 0
    with open(tmp_path / "results.csv") as handle:
        assert [row["torch_threads"] for row in csv.DictReader(handle)] == ["2"]
    assert "each run on 2 torch thread(s)" in (tmp_path / "summary.md").read_text()
    assert main(["episode", "mnist1d-mlp", *TINY_FLAGS]) == 0
    assert capsys.readouterr().out.rstrip().endswith("on 1 torch thread(s)")
    assert torch.get_num_threads() == 1

"""lrgym experiment: the protocol's stages chained, reusing a tuned choice and a trained controller."""

from __future__ import annotations

import pytest

from lrgym.agents.step_grid import cache_path, save_choice
from lrgym.cli import main
from lrgym.evaluation.evaluate import read_results
from lrgym.tasks.specs import load_agent_spec, load_task_spec
from tests.conftest import TINY

from .tiny_training import train_tiny

pytestmark = pytest.mark.slow  # trains a controller and runs the evaluate and transfer sweeps

CHOICE = {"initial_lr": 0.01, "scheduler": "StepLR", "kwargs": {"step_size": 20, "gamma": 0.9}, "score": 1.9}


def test_experiment_evaluates_and_transfers_with_the_choice_saved_beside_the_controller(tmp_path, capsys):
    task = load_task_spec("mnist1d-mlp", **TINY)
    grid = load_agent_spec("step-grid")
    out = tmp_path / "experiment"
    save_choice({**CHOICE, "tuned_on": task.to_dict()}, cache_path(out / "step-grid", task, grid))
    train_tiny(out / "controller", task)  # stages 1 and 2 done earlier: the command reuses them
    flags = [flag for key, value in TINY.items() for flag in ("--set", f"{key}={value}")]
    target_flags = [flag for key, value in TINY.items() for flag in ("--target-set", f"{key}={value}")]
    code = main([
        "experiment", "mnist1d-mlp", "--transfer-to", "mnist1d-lenet", "--seeds", "2", "--jobs", "1",
        "--baselines", "constant", "--target-baselines", "", "--out", str(out), *flags, *target_flags,
    ])
    assert code == 0
    assert {row["agent"] for row in read_results(out / "evaluate" / "results.csv")} == {
        "step-grid", "ppo:controller", "constant"
    }
    assert cache_path(out / "controller", task, grid).is_file()  # for `lrgym transfer` later
    transfer = read_results(out / "transfer-mnist1d-lenet" / "results.csv")
    assert {row["agent"] for row in transfer} == {"step-grid (transferred)", "ppo:controller (transferred)"}
    assert all(abs(row["first_lr"] - 0.01) < 1e-6 for row in transfer if row["agent"] == "step-grid (transferred)")
    report = (out / "experiment.md").read_text()
    for stage in ("tune step decay | ", "meta-train | ", "evaluate | ", "transfer to mnist1d-lenet | "):
        assert stage in report
    assert "reused" in capsys.readouterr().out

"""lrgym evaluate: paired runs of several agents, every output file with the right columns."""

from __future__ import annotations

import csv
import math
import socket

import pytest

from lrgym.cli import main
from lrgym.evaluation.evaluate import (
    RESULT_COLUMNS,
    TRAJECTORY_COLUMNS,
    AgentEntry,
    evaluate,
    read_results,
    write_evaluation,
)
from lrgym.runners.options import RunOptions
from tests.conftest import TINY

TINY_FLAGS = [flag for key, value in TINY.items() for flag in ("--set", f"{key}={value}")]


def header(path) -> list[str]:
    with open(path, newline="") as handle:
        return next(csv.reader(handle))


@pytest.mark.slow
def test_evaluate_command_writes_every_output_with_the_right_columns(tmp_path, capsys):
    out = tmp_path / "eval"
    code = main([
        "evaluate", "mnist1d-mlp", "--agents", "constant,cosine", "--seeds", "2", "--jobs", "2",
        "--out", str(out), *TINY_FLAGS,
    ])
    assert code == 0
    assert header(out / "results.csv") == list(RESULT_COLUMNS)
    assert header(out / "trajectories.csv") == list(TRAJECTORY_COLUMNS)
    rows = read_results(out / "results.csv")
    assert sorted((row["agent"], row["seed"]) for row in rows) == [
        ("constant", 0), ("constant", 1), ("cosine", 0), ("cosine", 1)
    ]
    assert {row["node"] for row in rows} == {socket.gethostname()}  # where each ran: the worker's host
    with open(out / "trajectories.csv", newline="") as handle:
        trajectory = list(csv.DictReader(handle))
    assert len(trajectory) == 2 * 2 * 4  # agents x seeds x decisions
    summary = (out / "summary.md").read_text()
    assert "| rank | agent | runs | diverged |" in summary and "p paired" in summary
    for name in ("lr.png", "val_loss.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert list((out / "tensorboard" / "constant").glob("events.out.tfevents.*"))
    printed = capsys.readouterr().out
    assert "| rank | agent |" in printed and str(out) in printed


def test_seeds_are_paired_across_agents(tiny_task):
    # The same policy under two labels: same seed => same weights, batches and validation
    # subset, so identical numbers; another seed gives other numbers.
    entries = [AgentEntry("first", "constant"), AgentEntry("second", "constant")]
    evaluation = evaluate(tiny_task, entries, [0, 1], RunOptions(jobs=1, progress=False))
    by_run = {(row["agent"], row["seed"]): row for row in evaluation.results}
    for seed in (0, 1):
        first, second = by_run["first", seed], by_run["second", seed]
        for column in ("initial_lr", "test_loss_at_best_val", "best_val_loss", "final_val_loss"):
            assert first[column] == second[column]
    assert by_run["first", 0]["best_val_loss"] != by_run["first", 1]["best_val_loss"]


def test_a_diverged_run_is_counted_as_diverged(tmp_path):
    out = tmp_path / "boom"
    code = main([
        "evaluate", "mnist1d-mlp", "--agents", "constant", "--seeds", "2", "--jobs", "1",
        "--out", str(out), *TINY_FLAGS,
        "--set", "initial_lrs=[10.0]", "--set", "lr_max=10", "--set", "optimizer=sgd",
    ])
    assert code == 0
    rows = read_results(out / "results.csv")
    assert all(row["diverged"] for row in rows)
    assert all(math.isnan(row["final_test_loss"]) for row in rows)
    assert "| 1 | constant | 2 | 2 | — |" in (out / "summary.md").read_text()


def test_labelled_entries_pass_options_to_the_agent(tmp_path, tiny_task):
    entries = [AgentEntry("constant", "constant"), AgentEntry("constant at 0.05", "constant", {"initial_lr": 0.05})]
    evaluation = evaluate(tiny_task, entries, [0], RunOptions(jobs=1, progress=False))
    rates = {row["agent"]: row["first_lr"] for row in evaluation.results}
    assert rates["constant at 0.05"] == pytest.approx(0.05)
    paths = write_evaluation(evaluation, tmp_path, reference="constant at 0.05")
    assert "Against `constant at 0.05`" in paths["summary"].read_text()


def test_unknown_agent_is_a_clear_error(capsys):
    code = main(["evaluate", "mnist1d-mlp", "--agents", "constant,nope", "--seeds", "1", *TINY_FLAGS])
    assert code == 2
    error = capsys.readouterr().err
    assert "nope" in error and "constant" in error


def test_reference_must_be_one_of_the_agents(capsys):
    code = main(["evaluate", "mnist1d-mlp", "--agents", "constant", "--reference", "cosine", *TINY_FLAGS])
    assert code == 2
    assert "--reference 'cosine'" in capsys.readouterr().err


def test_step_grid_uses_the_choice_cached_for_this_task_and_grid(tmp_path, tiny_task):
    from lrgym.agents.step_grid import cache_path, save_choice
    from lrgym.tasks.specs import load_agent_spec

    choice = {"initial_lr": 0.003, "scheduler": "StepLR", "kwargs": {"step_size": 20, "gamma": 0.9},
              "tuned_on": tiny_task.to_dict(), "tuning_seeds": [1000]}
    save_choice(choice, cache_path(tmp_path, tiny_task, load_agent_spec("step-grid")))
    evaluation = evaluate(tiny_task, ["step-grid"], [0], RunOptions(jobs=1, progress=False, cache_dir=tmp_path))
    assert evaluation.results[0]["first_lr"] == pytest.approx(0.003)  # no tuning: the cached choice
    assert "StepLR(initial_lr=0.003, step_size=20, gamma=0.9)" in evaluation.notes[0]

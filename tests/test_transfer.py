"""lrgym transfer: a controller on a task it never saw, against the step decay transferred with it."""

from __future__ import annotations

import csv

import pytest

from lrgym.agents.step_grid import cache_path, save_choice
from lrgym.cli import main
from lrgym.evaluation.evaluate import RESULT_COLUMNS, TRAJECTORY_COLUMNS, read_results
from lrgym.evaluation.transfer import TRANSFERRED_BASELINE, controller_label, plan_transfer
from lrgym.tasks.specs import load_agent_spec, load_task_spec
from tests.conftest import TINY

from .tiny_training import train_tiny

TINY_FLAGS = [flag for key, value in TINY.items() for flag in ("--set", f"{key}={value}")]
CHOICE = {"initial_lr": 0.01, "scheduler": "StepLR", "kwargs": {"step_size": 20, "gamma": 0.9}}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A controller meta-trained for two tiny episodes on the MLP task."""
    folder = tmp_path_factory.mktemp("transfer") / "mlp-controller"
    train_tiny(folder, load_task_spec("mnist1d-mlp", **TINY))
    return folder


def header(path) -> list[str]:
    with open(path, newline="") as handle:
        return next(csv.reader(handle))


@pytest.mark.slow
def test_transfer_across_architectures_writes_every_output(tmp_path, checkpoint, capsys):
    config = save_choice({**CHOICE, "tuned_on": {"name": "mnist1d-mlp"}}, tmp_path / "choice.json")
    out = tmp_path / "transfer"
    code = main([
        "transfer", str(checkpoint), "mnist1d-lenet", "--seeds", "2", "--jobs", "1",
        "--baseline-config", str(config), "--target-baselines", "constant",
        "--out", str(out), *TINY_FLAGS,
    ])
    assert code == 0
    assert header(out / "results.csv") == list(RESULT_COLUMNS)
    assert header(out / "trajectories.csv") == list(TRAJECTORY_COLUMNS)
    rows = read_results(out / "results.csv")
    labels = {row["agent"] for row in rows}
    assert labels == {TRANSFERRED_BASELINE, controller_label(checkpoint), "constant (target)"}
    assert len(rows) == 3 * 2
    transferred = [row for row in rows if row["agent"] == TRANSFERRED_BASELINE]
    assert all(row["first_lr"] == pytest.approx(0.01) for row in transferred)  # applied unchanged
    summary = (out / "summary.md").read_text()
    assert "Transfer mnist1d-mlp -> mnist1d-lenet" in summary
    assert f"Against `{TRANSFERRED_BASELINE}`" in summary
    assert "model: mlp -> lenet" in summary
    for name in ("lr.png", "val_loss.png"):
        assert (out / name).is_file()
    assert (out / "tensorboard").is_dir()
    assert "| rank | agent |" in capsys.readouterr().out


def test_the_choice_saved_in_the_checkpoint_folder_is_transferred(checkpoint):
    source = load_task_spec("mnist1d-mlp", **TINY)
    saved = save_choice({**CHOICE, "initial_lr": 0.003}, cache_path(checkpoint, source, load_agent_spec("step-grid")))
    try:
        plan = plan_transfer(checkpoint, load_task_spec("mnist1d-lenet", **TINY), target_baselines=())
    finally:
        saved.unlink()
    transferred = next(entry for entry in plan.entries if entry.label == TRANSFERRED_BASELINE)
    assert transferred.options["config"]["initial_lr"] == 0.003
    assert plan.source == source and plan.reference == TRANSFERRED_BASELINE
    assert any("saved in the checkpoint folder" in note for note in plan.notes)


@pytest.mark.slow
def test_a_controller_brings_its_action_mode_to_the_target(checkpoint, tmp_path):
    out = tmp_path / "out"
    assert main(["transfer", str(checkpoint), "mnist1d-lenet", "--set", "action=discrete", *TINY_FLAGS,
                 "--out", str(out)]) == 0
    assert "action='scale'" in (out / "summary.md").read_text()  # the controller acted in its own mode


def test_mismatched_spaces_are_a_clear_error(checkpoint, tmp_path, capsys):
    import json
    import shutil

    edited = tmp_path / "edited"
    shutil.copytree(checkpoint, edited)
    card = json.loads((edited / "card.json").read_text())
    card["signature"]["features"] = ["a feature this lrgym does not compute"]
    (edited / "card.json").write_text(json.dumps(card))
    assert main(["transfer", str(edited), "mnist1d-lenet", *TINY_FLAGS]) == 2
    error = capsys.readouterr().err
    assert "space signature mismatch" in error and "features" in error


def test_a_folder_without_a_card_is_a_clear_error(tmp_path, capsys):
    assert main(["transfer", str(tmp_path), "mnist1d-lenet"]) == 2
    assert "not a controller checkpoint" in capsys.readouterr().err

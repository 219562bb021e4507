"""`lrgym aggregate`: the study's write-up from an evaluation folder (lrgym.evaluation.aggregate_report)."""

from __future__ import annotations

import csv

import pytest

from lrgym.cli import main

COLUMNS = ("instance", "agent", "seed", "test_loss_at_best_val", "diverged", "initial_val_loss", "optimizer",
           "model", "batch_size", "steps")


def write_evaluation(folder):
    rows, trajectories = [], []
    for instance in range(6):
        optimizer = "adam" if instance % 2 else "sgd"
        for seed in range(3):
            for agent, loss in (("ref", 1.0), ("good", 0.9 if optimizer == "sgd" else 1.0), ("bad", 1.2)):
                rows.append({"instance": instance, "agent": agent, "seed": seed, "test_loss_at_best_val": loss,
                             "diverged": agent == "bad" and seed == 0, "initial_val_loss": 2.3,
                             "optimizer": optimizer, "model": "mlp", "batch_size": 32, "steps": 40})
                for decision in range(2):
                    trajectories.append({"instance": instance, "agent": agent, "seed": seed, "decision": decision,
                                         "step": 20 * (decision + 1), "lr": 0.01 / (decision + 1)})
    for name, data in (("results.csv", rows), ("trajectories.csv", trajectories)):
        with open(folder / name, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(data[0]))
            writer.writeheader()
            writer.writerows(data)


def test_aggregate_writes_tables_by_optimizer_and_figures(tmp_path, capsys):
    write_evaluation(tmp_path)
    code = main(["aggregate", str(tmp_path), "--reference", "ref", "--compare-with", "bad",
                 "--plot-agents", "good", "--plot-instances", "2", "--repetitions", "50"])
    assert code == 0
    text = (tmp_path / "aggregate.md").read_text()
    assert "| good | 18 | 0 | 0.950 |" in text  # half the instances 0.9, half 1.0: IQM 0.95
    assert "optimizer=sgd (3 instances)" in text and "## Against `bad`" in text
    # "bad" diverged on seed 0 of every instance: scored at its initial loss 2.3, never left out
    assert "| bad | 18 | 6 |" in text
    for name in ("intervals.png", "profile.png", "instance_lrs.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "aggregate.md" in capsys.readouterr().out


def test_aggregate_names_the_agents_when_the_reference_is_unknown(tmp_path, capsys):
    write_evaluation(tmp_path)
    assert main(["aggregate", str(tmp_path), "--reference", "nope"]) == 2
    assert "ref, good, bad" in capsys.readouterr().err


def test_aggregate_says_how_to_get_results(tmp_path, capsys):
    assert main(["aggregate", str(tmp_path), "--reference", "ref"]) == 2
    assert "lrgym evaluate" in capsys.readouterr().err


@pytest.mark.parametrize("repetitions", ["0", "5"])
def test_aggregate_refuses_too_few_bootstrap_replicates(tmp_path, repetitions):
    write_evaluation(tmp_path)
    assert main(["aggregate", str(tmp_path), "--reference", "ref", "--repetitions", repetitions]) == 2


def test_aggregate_pools_evaluations_of_the_same_runs_and_refuses_unpaired_ones(tmp_path):
    first, second, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    for folder in (first, second):
        folder.mkdir()
        write_evaluation(folder)
    # the second evaluation holds other agents on the same instances and seeds
    text = (second / "results.csv").read_text().replace("ref,", "ref2,").replace("good,", "good2,").replace(
        "bad,", "bad2,")
    (second / "results.csv").write_text(text)
    (second / "trajectories.csv").write_text(
        (second / "trajectories.csv").read_text().replace("ref,", "ref2,").replace("good,", "good2,").replace(
            "bad,", "bad2,"))
    assert main(["aggregate", str(first), str(second), "--reference", "ref", "--out", str(out),
                 "--repetitions", "20"]) == 0
    assert "| good2 |" in (out / "aggregate.md").read_text()
    assert main(["aggregate", str(first), str(first), "--reference", "ref", "--out", str(out)]) == 2  # agents twice

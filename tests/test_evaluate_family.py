"""Evaluation on family instances and the family / per-instance step decay."""

from __future__ import annotations

import json
import math

import pytest

import lrgym.agents.step_grid_family as step_grid_family
from lrgym.agents import make_agent, run_episode
from lrgym.agents.step_grid import load_choice, tune_step_grid
from lrgym.evaluation.evaluate import read_results
from lrgym.evaluation.family import evaluate_instances, write_family_evaluation
from lrgym.runners.options import RunOptions
from lrgym.tasks.family import load_family
from lrgym.tasks.specs import AgentSpec

from .test_family import FAST


@pytest.fixture
def family():
    return load_family("mnist1d-family", **FAST)


def tiny_grid(kind: str = "step-grid-family", **params) -> AgentSpec:
    return AgentSpec(name=f"tiny-{kind}", kind=kind, params={
        "scheduler": "StepLR", "initial_lrs": [0.1, 0.0001], "grid": {"step_size": [4], "gamma": [0.5]},
        "tuning_seeds": [1000], **params,
    })


def test_every_agent_runs_every_instance_with_paired_seeds(tmp_path, family):
    instances = [200_000, 200_001]
    evaluation = evaluate_instances(family, instances, ["constant", "cosine"], [0, 1], RunOptions(progress=False))
    assert len(evaluation.results) == 2 * 2 * 2
    by_run = {}
    for row in evaluation.results:
        task = family.instance(row["instance"])
        assert (row["model"], row["optimizer"], row["batch_size"]) == (task.model, task.optimizer, task.batch_size)
        assert json.loads(row["model_kwargs"]) == task.model_kwargs
        by_run.setdefault((row["instance"], row["seed"]), set()).add(row["initial_lr"])
    assert all(len(rates) == 1 for rates in by_run.values())  # paired: one draw per (instance, seed)

    paths = write_family_evaluation(evaluation, tmp_path)
    rows = read_results(paths["results"])
    assert {row["instance"] for row in rows} == set(instances) and isinstance(rows[0]["model"], str)
    summary = paths["summary"].read_text()
    assert "2 test instances of mnist1d-family" in summary and "## By optimizer" in summary
    assert all(f"| {index} |" in summary for index in instances)


@pytest.mark.slow
def test_step_grid_is_tuned_on_each_instance_and_cached(tmp_path, family, monkeypatch):
    tasks = [family.instance(200_000), family.instance(200_001)]
    spec = tiny_grid("step-grid")
    choices = step_grid_family.tune_instances(tasks, spec, RunOptions(progress=False, cache_dir=tmp_path))
    for task, choice in zip(tasks, choices, strict=True):
        alone = tune_step_grid(task, spec, options=RunOptions(progress=False))
        assert (choice["initial_lr"], choice["kwargs"], choice["score"]) == (
            alone["initial_lr"], alone["kwargs"], alone["score"])
        assert load_choice(step_grid_family.instance_cache_path(tmp_path, task, spec)) == choice

    def no_more_runs(*args):
        raise AssertionError("a cached instance was tuned again")

    monkeypatch.setattr(step_grid_family, "score_configuration", no_more_runs)
    assert step_grid_family.tune_instances(tasks, spec, RunOptions(progress=False, cache_dir=tmp_path)) == choices


def test_family_tuning_normalises_each_instance_by_its_best(monkeypatch, family):
    # The first instance has small losses, the second large ones: raw means would pick
    # the first rate (the second instance dominates); normalised, the second rate wins.
    first, second = family.indices("train")[0], family.indices("train")[1]
    losses = {(first, 0.1): 0.2, (first, 0.0001): 0.1, (second, 0.1): 2.0, (second, 0.0001): 2.2}

    def fake_score(task, configuration, seed, env_options):
        return losses[int(task.name.split("#")[1]), configuration["initial_lr"]]

    monkeypatch.setattr(step_grid_family, "score_configuration", fake_score)
    choice = step_grid_family.tune_step_grid_family(family, tiny_grid(tuning_instances=2), RunOptions(progress=False))
    assert choice["initial_lr"] == 0.0001 and choice["tuning_instances"] == [first, second]
    assert choice["score"] == pytest.approx((1.0 + 1.1) / 2)
    assert [value for row in choice["grid"] for value in row["normalised"]] == pytest.approx([2.0, 1.0, 1.0, 1.1])

    losses[second, 0.0001] = math.inf  # a diverged run counts the instance's divergence_loss
    choice = step_grid_family.tune_step_grid_family(family, tiny_grid(tuning_instances=2), RunOptions(progress=False))
    assert choice["grid"][1]["best_val_losses"][1] == family.instance(second).divergence_loss
    assert choice["initial_lr"] == 0.1


@pytest.mark.slow
def test_the_family_choice_is_cached_shared_across_rewards_and_runs_as_an_agent(tmp_path, family):
    spec = tiny_grid(tuning_instances=2)
    choice = step_grid_family.tune_step_grid_family(family, spec, RunOptions(progress=False, cache_dir=tmp_path))
    path = step_grid_family.family_cache_path(tmp_path, family, spec)
    assert load_choice(path) == choice
    assert step_grid_family.family_cache_path(tmp_path, family.with_overrides(reward="log_val_loss"), spec) == path
    assert step_grid_family.family_cache_path(tmp_path, family.with_overrides(steps=16), spec) != path
    task = family.instance(family.indices("test")[0])
    agent = make_agent("step-grid-family", task, config=str(path))
    assert run_episode(agent, task, seed=0).first_lr == choice["initial_lr"]
    with pytest.raises(ValueError, match="config.*family"):
        make_agent("step-grid-family", task)


@pytest.mark.slow
def test_cli_evaluates_family_instances(tmp_path, capsys):
    from lrgym.cli import main

    overrides = ["--set", "steps=8", "--set", "decisions=2", "--set", "val_size=50", "--set", "dataset_kwargs={}"]
    out = tmp_path / "eval"
    code = main(["evaluate", "mnist1d-family", "--instances", "test:3-4", "--seeds", "1", "--agents",
                 "constant,cosine", "-j", "1", "--out", str(out), *overrides])
    assert code == 0 and "2 test instances of mnist1d-family" in capsys.readouterr().out
    assert {row["instance"] for row in read_results(out / "results.csv")} == {200_003, 200_004}
    assert main(["evaluate", "mnist1d-family", "--agents", "constant", *overrides]) == 2
    assert "--instances test:20" in capsys.readouterr().err
    assert main(["evaluate", "mnist1d-mlp", "--instances", "test:2", "--agents", "constant"]) == 2
    assert "single task" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_tune_writes_per_instance_choices(tmp_path, capsys):
    from lrgym.cli import main

    overrides = ["--set", "steps=8", "--set", "decisions=2", "--set", "val_size=50", "--set", "dataset_kwargs={}"]
    code = main(["tune", "mnist1d-family", "--agent", "step-grid-small", "--instances", "test:1", "-j", "1",
                 "--out", str(tmp_path), *overrides])
    assert code == 0 and "mnist1d-family#200000: StepLR" in capsys.readouterr().out
    (written,) = tmp_path.glob("step-grid-small-mnist1d-family-200000-*.json")
    assert load_choice(written)["scheduler"] == "StepLR"
    assert main(["tune", "mnist1d-family", "--agent", "step-grid-small", *overrides]) == 2
    assert "give --instances" in capsys.readouterr().err

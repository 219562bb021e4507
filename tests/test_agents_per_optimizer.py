"""Schedules tuned per optimizer across a family (lrgym/agents/per_optimizer.py), the tuned-rate
agents, grids of composed schedules and the resumable per-instance tuning."""

from __future__ import annotations

import dataclasses
import json

import pytest

import lrgym.agents.step_grid_family as step_grid_family
from lrgym.agents import make_agent, run_episode
from lrgym.agents.per_optimizer import (
    family_optimizers,
    optimizer_cache_path,
    optimizer_instances,
    tune_per_optimizer,
)
from lrgym.agents.step_grid import choice_agent, grid_configurations, load_choice
from lrgym.agents.step_grid_family import family_cache_path
from lrgym.runners.options import RunOptions
from lrgym.tasks.family import load_family
from lrgym.tasks.specs import AgentSpec, load_agent_spec
from lrgym.trainee.schedule_rates import scheduler_rates

from .test_family import FAST

QUIET = RunOptions(progress=False)
# The rate each optimizer's instances like best in the fake tunings below.
BEST_RATE = {"adam": 0.001, "momentum": 0.1, "sgd": 1.0}


@pytest.fixture
def family():
    return load_family("mnist1d-family", **FAST)


def tiny_spec(**params) -> AgentSpec:
    return AgentSpec(name="tiny-per-optimizer", kind="step-grid-per-optimizer", params={
        "scheduler": "StepLR", "initial_lrs": [1.0, 0.1, 0.001], "grid": {"step_size": [4], "gamma": [0.5]},
        "tuning_seeds": [1000], "tuning_instances": 2, **params,
    })


@pytest.fixture
def fake_runs(monkeypatch):
    """Every tuning run scored without training: the loss grows with the distance (in decades)
    from its optimizer's best rate. Returns the list of runs made."""
    import math

    runs = []

    def fake_score(task, configuration, seed, env_options):
        runs.append((task.name, task.optimizer, configuration["initial_lr"]))
        return 1.0 + abs(math.log10(configuration["initial_lr"] / BEST_RATE[task.optimizer]))

    monkeypatch.setattr(step_grid_family, "score_configuration", fake_score)
    return runs


def test_the_family_optimizers_and_the_first_train_instances_of_each(family):
    assert family_optimizers(family) == ["adam", "momentum", "sgd"]
    assert family_optimizers(family.with_overrides(optimizer="prodigy")) == ["prodigy"]
    found = optimizer_instances(family, ["adam", "momentum", "sgd"], 3)
    train = family.indices("train")
    for optimizer, indices in found.items():
        assert len(indices) == 3 and all(family.instance(i).optimizer == optimizer for i in indices)
        earlier = [i for i in train[: indices[-1]] if family.instance(i).optimizer == optimizer]
        assert earlier == indices[:-1]  # the first ones, in order
    with pytest.raises(ValueError, match="fewer than 2 train instances of optimizer.*'rmsprop'"):
        optimizer_instances(family, ["rmsprop"], 2)


def test_each_optimizer_gets_the_configuration_best_on_its_own_instances(family, fake_runs, tmp_path):
    choice = tune_per_optimizer(family, tiny_spec(), QUIET.replace(cache_dir=tmp_path))
    assert {optimizer: part["initial_lr"] for optimizer, part in choice["by_optimizer"].items()} == BEST_RATE
    for optimizer, part in choice["by_optimizer"].items():
        assert [family.instance(i).optimizer for i in part["tuning_instances"]] == [optimizer] * 2
        assert part["score"] == 1.0
    assert len(fake_runs) == 3 * 2 * 3  # optimizers x instances x configurations
    assert load_choice(family_cache_path(tmp_path, family, tiny_spec())) == choice


def test_a_stopped_tuning_keeps_the_optimizers_it_finished(family, fake_runs, monkeypatch, tmp_path):
    options = QUIET.replace(cache_dir=tmp_path)
    scored = step_grid_family.score_configuration

    def stop_at_sgd(task, configuration, seed, env_options):
        if task.optimizer == "sgd":
            raise KeyboardInterrupt
        return scored(task, configuration, seed, env_options)

    monkeypatch.setattr(step_grid_family, "score_configuration", stop_at_sgd)
    with pytest.raises(KeyboardInterrupt):
        tune_per_optimizer(family, tiny_spec(), options)
    assert optimizer_cache_path(tmp_path, family, tiny_spec(), "momentum").is_file()
    assert not family_cache_path(tmp_path, family, tiny_spec()).is_file()
    monkeypatch.setattr(step_grid_family, "score_configuration", scored)
    fake_runs.clear()
    choice = tune_per_optimizer(family, tiny_spec(), options)
    assert {optimizer for _, optimizer, _ in fake_runs} == {"sgd"}  # only what was left
    assert choice["by_optimizer"]["sgd"]["initial_lr"] == BEST_RATE["sgd"]


def test_the_agent_runs_the_choice_of_its_tasks_optimizer(family, fake_runs, tmp_path):
    choice = tune_per_optimizer(family, tiny_spec(), QUIET.replace(cache_dir=tmp_path))
    path = family_cache_path(tmp_path, family, tiny_spec())
    for index in family.indices("test")[:3]:
        task = family.instance(index)
        agent = make_agent("step-grid-per-optimizer", task, config=str(path))
        assert run_episode(agent, task, seed=0).first_lr == min(BEST_RATE[task.optimizer], task.lr_max)
    prodigy = family.instance(family.indices("test")[0]).replace(optimizer="prodigy", optimizer_kwargs={})
    with pytest.raises(ValueError, match="no configuration for optimizer 'prodigy'; it has: adam, momentum, sgd"):
        make_agent("step-grid-per-optimizer", prodigy, config=choice)
    with pytest.raises(ValueError, match="config.*family"):
        make_agent("step-grid-per-optimizer", prodigy)


@pytest.mark.parametrize("agent", ["constant-tuned", "cosine-tuned", "hypergradient-tuned"])
def test_tuned_rate_agents_start_from_the_rate_tuned_for_the_tasks_optimizer(agent, family, fake_runs, tmp_path):
    choice = tune_per_optimizer(family, tiny_spec(), QUIET)
    for index in family.indices("test")[:3]:
        task = family.instance(index)
        episode = run_episode(make_agent(agent, task, config=choice), task, seed=0)
        assert episode.first_lr == pytest.approx(BEST_RATE[task.optimizer])
        assert episode.initial_lr != pytest.approx(BEST_RATE[task.optimizer])  # not the drawn rate


def test_tuned_rate_refuses_a_rate_source_that_is_not_tuned_on_a_family(family):
    spec = dataclasses.replace(load_agent_spec("constant-tuned"), params={"agent": "constant", "rate_from": "cosine"})
    from lrgym.agents.per_optimizer import make_tuned_rate_agent

    with pytest.raises(ValueError, match="rate_from must name a spec of kind step-grid-family or"):
        make_tuned_rate_agent(spec, family.instance(0), config={"initial_lr": 0.1})


def test_a_grid_of_a_composed_schedule_runs_it_at_each_rate():
    spec = load_agent_spec("warmup-cosine-per-optimizer")
    configurations = grid_configurations(spec.params)
    assert [c["initial_lr"] for c in configurations] == spec.params["initial_lrs"]
    agent = choice_agent(configurations[4])  # 0.1
    expected = scheduler_rates(
        {key: spec.params[key] for key in ("scheduler", "budget_fractions", "schedulers")} | {"kwargs": {}}, 200, 0.1)
    agent.rates = []
    from lrgym.agents.base import EpisodeStart

    class Env:
        def set_lr_sampler(self, sampler):
            pass

    task = load_family("mnist1d-family").instance(0).replace(steps=200, lr_max=10.0)
    agent.reset(EpisodeStart(task, 0.5, 0, Env()))
    assert agent.rates == pytest.approx(expected)
    assert agent.rates[0] == pytest.approx(0.01) and max(agent.rates) == pytest.approx(0.1)
    assert agent.rates[-1] < 0.001


def test_a_per_optimizer_choice_is_read_back_and_a_broken_one_refused(tmp_path):
    good = {"by_optimizer": {"adam": {"initial_lr": 0.01, "scheduler": "StepLR", "kwargs": {}}}}
    (tmp_path / "good.json").write_text(json.dumps(good))
    assert load_choice(tmp_path / "good.json") == good
    broken = {"by_optimizer": {"adam": {"initial_lr": 0.01, "kwargs": {}}}}
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"lacks scheduler \(by_optimizer.adam\)"):
        load_choice(tmp_path / "broken.json")


def test_per_instance_tuning_writes_each_choice_as_it_is_made(family, monkeypatch, tmp_path):
    tasks = [family.instance(index) for index in family.indices("test")[:3]]
    spec = dataclasses.replace(tiny_spec(), kind="step-grid")
    runs = []

    def score(task, configuration, seed, env_options):
        runs.append(task.name)
        if len(set(runs)) == 3:
            raise KeyboardInterrupt  # stopped while tuning the third instance
        return configuration["initial_lr"]

    monkeypatch.setattr(step_grid_family, "score_configuration", score)
    options = QUIET.replace(cache_dir=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        step_grid_family.tune_instances(tasks, spec, options)
    written = [step_grid_family.instance_cache_path(tmp_path, task, spec).is_file() for task in tasks]
    assert written == [True, True, False]
    runs.clear()
    monkeypatch.setattr(step_grid_family, "score_configuration",
                        lambda task, configuration, seed, env_options: runs.append(task.name) or 1.0)
    choices = step_grid_family.tune_instances(tasks, spec, options)
    assert set(runs) == {tasks[2].name} and len(choices) == 3
    assert [choice["initial_lr"] for choice in choices[:2]] == [0.001, 0.001]


def test_cli_tunes_per_optimizer_then_evaluates_from_the_saved_choice(fake_runs, tmp_path, capsys):
    from lrgym.cli import main
    from lrgym.evaluation.outputs import read_results

    overrides = ["--set", "steps=8", "--set", "decisions=2", "--set", "val_size=50", "--set", "dataset_kwargs={}"]
    code = main(["tune", "mnist1d-family", "--agent", "step-grid-per-optimizer", "-j", "1", "--out",
                 str(tmp_path / "tune"), *overrides])
    printed = capsys.readouterr().out
    assert code == 0 and "mnist1d-family sgd: StepLR(initial_lr=1, step_size=25, gamma=0.9)" in printed
    assert len(fake_runs) == 42 * 8 * 3
    whole = family_cache_path(tmp_path / "tune", load_family("mnist1d-family", **FAST),
                              load_agent_spec("step-grid-per-optimizer"))
    out = tmp_path / "evaluate"
    code = main(["evaluate", "mnist1d-family", "--instances", "test:0-2", "--seeds", "1", "--agents", "constant-tuned",
                 "--agent-config", f"constant-tuned={whole}", "-j", "1", "--out", str(out), *overrides])
    assert code == 0
    for result in read_results(out / "results.csv"):
        assert result["first_lr"] == pytest.approx(min(BEST_RATE[result["optimizer"]], 10.0))
        assert result["torch_threads"] == 1
    assert main(["evaluate", "mnist1d-family", "--instances", "test:0", "--agents", "constant",
                 "--agent-config", f"cosine={whole}", *overrides]) == 2
    assert "--agent-config names cosine, not among --agents (constant)" in capsys.readouterr().err

"""The tuned step-decay grid: the paper's grid, the choice, saving it and running it unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from torch.optim import lr_scheduler

from lrgym.agents import make_agent
from lrgym.agents import step_grid as step_grid_module
from lrgym.agents.step_grid import (
    cache_path,
    grid_configurations,
    load_choice,
    save_choice,
    score_configuration,
    tune_step_grid,
)
from lrgym.runners.options import RunOptions
from lrgym.tasks.specs import AgentSpec, load_agent_spec

from .test_agents_fixed_schedules import record_optimizer_rates, torch_sequence

SMALL_GRID = AgentSpec(
    name="small-grid",
    kind="step-grid",
    params={
        "scheduler": "StepLR",
        "initial_lrs": [3e-3, 1e-6],
        "grid": {"step_size": [10], "gamma": [0.9, 0.5]},
        "tuning_seeds": [1000, 1001],
    },
)


def test_shipped_grid_is_the_papers():
    configurations = grid_configurations(load_agent_spec("step-grid").params)
    assert len(configurations) == 4 * 4 * 3
    assert {c["initial_lr"] for c in configurations} == {0.1, 0.01, 0.001, 0.0001}
    assert {c["kwargs"]["step_size"] for c in configurations} == {10, 20, 50, 100}
    assert {c["kwargs"]["gamma"] for c in configurations} == {0.99, 0.9, 0.88}
    assert min(load_agent_spec("step-grid").params["tuning_seeds"]) >= 1000  # apart from 0, 1, ...


@pytest.mark.slow
def test_tuning_picks_the_lowest_mean_best_validation_loss(tiny_task):
    choice = tune_step_grid(tiny_task, SMALL_GRID, options=RunOptions(progress=False))
    assert len(choice["grid"]) == 4 and choice["tuning_seeds"] == [1000, 1001]
    means = [row["mean"] for row in choice["grid"]]
    assert choice["score"] == min(means)
    assert choice["initial_lr"] == 3e-3  # 1e-6 barely trains in 40 steps
    best = choice["grid"][means.index(min(means))]
    assert (choice["scheduler"], choice["kwargs"]) == (best["scheduler"], best["kwargs"])
    # The scores are those of single episodes on the tuning seeds (run as a population:
    # equal within its float tolerance, lrgym.environment.population_env).
    assert best["scores"][1] == pytest.approx(score_configuration(tiny_task, best, 1001, {}), rel=1e-5)
    assert choice["tuned_on"]["name"] == tiny_task.name


@pytest.mark.slow
def test_parallel_tuning_gives_the_same_choice(tiny_task):
    spec = AgentSpec(
        name="two", kind="step-grid",
        params={**SMALL_GRID.params, "initial_lrs": [3e-3], "tuning_seeds": [1000]},
    )
    options = RunOptions(progress=False, env_options={"device": "cpu"})
    serial = tune_step_grid(tiny_task, spec, options=options)
    parallel = tune_step_grid(tiny_task, spec, options=options.replace(jobs=2))
    assert parallel["grid"] == serial["grid"]


def test_saved_choice_runs_unchanged_as_step_lr_on_another_task(tiny_task, tmp_path):
    choice = {"initial_lr": 0.02, "scheduler": "StepLR", "kwargs": {"step_size": 10, "gamma": 0.5}}
    path = save_choice({**choice, "tuned_on": {"name": "somewhere-else"}}, tmp_path / "choice.json")
    assert load_choice(path)["kwargs"] == choice["kwargs"]
    task = tiny_task.replace(initial_lrs=[1e-4])  # the choice's rate wins over the env's
    rates, _ = record_optimizer_rates(make_agent("step-grid", task, config=str(path)), task)
    expected = torch_sequence(lambda o: lr_scheduler.StepLR(o, step_size=10, gamma=0.5), task.steps, 0.02)
    np.testing.assert_allclose(rates[:, 0], expected, rtol=1e-12)
    rates_from_dict, _ = record_optimizer_rates(make_agent("step-grid", task, config=choice), task)
    np.testing.assert_array_equal(rates_from_dict, rates)


def test_cache_dir_tunes_once_then_reads_the_choice(tiny_task, tmp_path, monkeypatch):
    calls = []

    def fake_tune(task, spec, **kwargs):
        calls.append(kwargs)
        return {"initial_lr": 0.01, "scheduler": "StepLR", "kwargs": {"step_size": 20, "gamma": 0.9}}

    monkeypatch.setattr(step_grid_module, "tune_step_grid", fake_tune)
    make_agent("step-grid", tiny_task, cache_dir=str(tmp_path), device="cpu", progress=False)
    agent = make_agent("step-grid", tiny_task, cache_dir=str(tmp_path))
    assert len(calls) == 1 and calls[0]["options"].env_options["device"] == "cpu"
    assert cache_path(tmp_path, tiny_task, load_agent_spec("step-grid")).is_file()
    assert agent.initial_lr == 0.01 and agent.schedule["kwargs"] == {"step_size": 20, "gamma": 0.9}
    make_agent("step-grid", tiny_task.replace(steps=50), cache_dir=str(tmp_path), progress=False)
    assert len(calls) == 2  # another task: tuned again, not a stale choice


def test_unknown_option_and_bad_choice_are_clear_errors(tiny_task, tmp_path):
    with pytest.raises(ValueError, match="unknown option"):
        make_agent("step-grid", tiny_task, confg="x.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a step-grid choice"):
        make_agent("step-grid", tiny_task, config=str(tmp_path / "bad.json"))
    with pytest.raises(FileNotFoundError):
        make_agent("step-grid", tiny_task, config=str(tmp_path / "missing.json"))


@pytest.mark.slow
def test_tuning_prints_what_it_runs_and_its_estimated_time_first(tiny_task, capsys):
    tune_step_grid(tiny_task, SMALL_GRID, options=RunOptions(progress=False, env_options={"device": "cpu"}))
    out = capsys.readouterr().out
    assert "tuning small-grid on mnist1d-mlp: 4 configurations x 2 tuning seeds = 8 episodes of 4 decisions" in out
    assert "so about" in out and "on 1 worker(s)" in out


def test_a_tuning_estimated_longer_than_the_bound_is_refused_before_it_starts(tiny_task, monkeypatch):
    runs = []
    monkeypatch.setattr(step_grid_module, "run_jobs", lambda *args, **kwargs: runs.append(args))
    options = RunOptions(progress=False, env_options={"device": "cpu"}, max_tuning_s=1e-6)
    with pytest.raises(ValueError, match=r"8 episodes .* longer than the 0.0 min allowed .*--allow-long-tuning"):
        tune_step_grid(tiny_task, SMALL_GRID, options=options)
    assert not runs


def test_transfer_refuses_a_long_source_tuning_without_the_flag(tmp_path, capsys, monkeypatch):
    """`lrgym transfer` of a controller without a saved choice: a tuning over the bound is one line, exit 2."""
    import shutil

    from lrgym.cli import main
    from lrgym.tasks.specs import project_root

    folder = tmp_path / "controller"
    shutil.copytree(project_root() / "checkpoints" / "mnist1d-mlp-ppo", folder,
                    ignore=shutil.ignore_patterns("step-grid-*"))
    monkeypatch.setattr(step_grid_module, "LONG_TUNING_S", 1e-6)
    code = main(["transfer", str(folder), "mnist1d-lenet", "--seeds", "1", "--jobs", "1", "--device", "cpu",
                 "--out", str(tmp_path / "transfer")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "tuning step-grid on mnist1d-mlp: 48 configurations x 3 tuning seeds = 144 episodes" in err
    assert "--allow-long-tuning" in err

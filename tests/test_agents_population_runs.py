"""Agents in populations (lrgym/agents/population_runs.py):
member k's episode equals the agent's single episode on seed k."""

from __future__ import annotations

import pytest

from lrgym.agents import make_agent, run_episode
from lrgym.agents.population_runs import can_run_as_population, run_population_episodes
from lrgym.evaluation.evaluate import evaluate
from lrgym.runners.options import RunOptions
from lrgym.tasks.specs import load_task_spec

from .tiny_training import train_tiny

TINY = dict(steps=20, interval=5, val_size=100, batch_size=50)
SEEDS = [0, 1, 2]
RTOL = 1e-4


@pytest.fixture
def task():
    return load_task_spec("mnist1d-mlp", **TINY)


def assert_same_episode(population_episode, single_episode):
    assert [row.lr for row in population_episode.trajectory] == [row.lr for row in single_episode.trajectory]
    for row, single in zip(population_episode.trajectory, single_episode.trajectory, strict=True):
        assert row.val_loss == pytest.approx(single.val_loss, rel=RTOL)
        assert row.reward == pytest.approx(single.reward, rel=RTOL)
    for key in ("test_loss_at_best_val", "final_test_loss", "best_val_loss"):
        assert population_episode.final_info[key] == pytest.approx(single_episode.final_info[key], rel=RTOL)
    assert population_episode.initial_lr == single_episode.initial_lr


@pytest.mark.parametrize("name", ["cosine", "plateau", "warmup-cosine"])
def test_schedule_agents_in_a_population_run_their_single_episodes(task, name):
    agents = [make_agent(name, task) for _ in SEEDS]
    episodes = run_population_episodes(agents, task, SEEDS, device="cpu")
    for seed, episode in zip(SEEDS, episodes, strict=True):
        assert_same_episode(episode, run_episode(make_agent(name, task), task, seed, device="cpu"))


@pytest.mark.slow
def test_a_ppo_controller_trained_on_a_population_acts_in_a_population_as_on_single_envs(tmp_path, task):
    train_tiny(tmp_path / "run", task, timesteps=160, population=4)
    name = f"ppo:{tmp_path / 'run'}"
    options = RunOptions(env_options={"device": "cpu"}, progress=False)
    single = evaluate(task, [name], SEEDS, options, population=0)
    batched = evaluate(task, [name], SEEDS, options, population=1)
    for row, expected in zip(batched.results, single.results, strict=True):
        assert row["seed"] == expected["seed"] and row["first_lr"] == pytest.approx(expected["first_lr"], rel=1e-6)
        assert row["test_loss_at_best_val"] == pytest.approx(expected["test_loss_at_best_val"], rel=RTOL)
    assert [row["lr"] for row in batched.trajectories] == pytest.approx([row["lr"] for row in single.trajectories])


def test_agents_with_hooks_into_one_trainee_stay_on_single_envs(task):
    assert not can_run_as_population(make_agent("aslr", task), task)
    assert not can_run_as_population(make_agent("lookahead", task), task)
    assert can_run_as_population(make_agent("cosine", task), task)
    assert not can_run_as_population(make_agent("cosine", task), task.replace(optimizer="prodigy"))
    with pytest.raises(ValueError, match="cannot act in a population"):
        run_population_episodes([make_agent("aslr", task)], task, [0], device="cpu")


def test_a_task_with_a_carved_validation_split_stays_on_single_envs(task):
    carved = task.replace(validation_percent=10)  # members would read the dataset's own split
    assert not can_run_as_population(make_agent("cosine", carved), carved)
    assert not can_run_as_population(make_agent("dac4sgd-winner", task), task)  # it reads its trainee's epochs
    with pytest.raises(ValueError, match="validation_percent .* is not supported by populations"):
        run_population_episodes([make_agent("cosine", carved)], carved, [0], device="cpu")

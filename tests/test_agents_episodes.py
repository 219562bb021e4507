"""Every baseline agent spec completes an episode on the tiny task, on paired seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrgym.agents import Agent, make_agent, run_episode
from lrgym.tasks.specs import agent_names, load_agent_spec

STEP_GRID_CHOICE = {"initial_lr": 0.01, "scheduler": "StepLR", "kwargs": {"step_size": 10, "gamma": 0.9}}
BASELINE_KINDS = ("schedule", "aslr", "lookahead", "step-grid", "hypergradient")
BASELINES = [name for name in agent_names() if load_agent_spec(name).kind in BASELINE_KINDS]


def build(name, task):
    # step-grid would tune its grid first: give it a choice, as an evaluation does.
    options = {"config": STEP_GRID_CHOICE} if load_agent_spec(name).kind == "step-grid" else {}
    return make_agent(name, task, **options)


def test_the_issue_names_are_all_there():
    required = {
        "constant", "step", "multistep", "exponential", "linear", "cosine", "warmup-cosine",
        "onecycle", "cyclic", "cosine-restarts", "plateau", "aslr", "lookahead", "lookahead-7", "step-grid",
        "hypergradient", "prodigy", "schedulefree",
    }
    assert required <= set(BASELINES)


# Agents meant for another trainee optimizer than the task's (Adam).
OPTIMIZER_FOR = {"constant-1": "prodigy"}


@pytest.mark.parametrize("name", BASELINES)
def test_agent_completes_an_episode(name, tiny_task):
    if name in OPTIMIZER_FOR:
        tiny_task = tiny_task.replace(optimizer=OPTIMIZER_FOR[name])
    agent = build(name, tiny_task)
    assert isinstance(agent, Agent) and agent.action_mode == "lr"
    result = run_episode(agent, tiny_task, seed=0)
    assert len(result.trajectory) == tiny_task.decisions
    assert all(tiny_task.lr_min <= row.lr <= tiny_task.lr_max for row in result.trajectory)
    assert math.isfinite(result.final_info["test_loss_at_best_val"])
    assert result.final_info["lr_trajectory"] == [row.lr for row in result.trajectory]


def test_paired_seeds_give_every_agent_the_same_start(tiny_task):
    for seed in (0, 5):
        firsts = {}
        for name in BASELINES:
            result = run_episode(build(name, tiny_task), tiny_task.replace(steps=10), seed=seed)
            firsts[name] = result.first_observation
        reference = firsts["constant"]
        for name, first in firsts.items():
            np.testing.assert_array_equal(first, reference, err_msg=name)


def test_an_agent_is_reused_across_seeds_and_envs(tiny_task):
    agent = build("aslr", tiny_task)
    first = run_episode(agent, tiny_task, seed=3)
    run_episode(agent, tiny_task, seed=4)
    again = run_episode(agent, tiny_task, seed=3)
    assert [row.lr for row in again.trajectory] == [row.lr for row in first.trajectory]
    assert again.final_info["test_loss_at_best_val"] == first.final_info["test_loss_at_best_val"]

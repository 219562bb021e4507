"""Hypergradient descent: the paper's rate updates, by hand, with plain torch and in the env."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrgym.agents import EpisodeStart, make_agent, run_episode
from lrgym.agents.hypergradient import HypergradientAgent, hypergradient_rate
from lrgym.tasks.specs import load_task_spec

CURVATURE = torch.tensor([1.0, 3.0])
# The task only gives the rate bounds and the optimizer's name to the plain-torch runs.
BOUNDS = load_task_spec("mnist1d-mlp", optimizer="sgd", lr_min=1e-6, lr_max=1.0)


def quadratic_run(agent, optimizer_class, steps, initial_lr=0.1, task=None, **optimizer_kwargs):
    """``steps`` plain-torch steps on f(w) = sum(c * w**2) / 2 from w = (1, 2), rate set by ``agent``."""
    weights = torch.tensor([1.0, 2.0], requires_grad=True)
    optimizer = optimizer_class([weights], lr=initial_lr, **optimizer_kwargs)
    task = task or BOUNDS
    env = SimpleNamespace(trainee=SimpleNamespace(optimizer=optimizer))
    agent.reset(EpisodeStart(task, initial_lr, seed=0, env=env))
    used = []
    for _ in range(steps):
        optimizer.zero_grad()
        (0.5 * (CURVATURE * weights**2).sum()).backward()
        optimizer.step()
        used.append(optimizer.param_groups[0]["lr"])
    return used


def test_additive_sgd_matches_the_hand_worked_example():
    # f = (w1^2 + 3 w2^2) / 2, w0 = (1, 2), alpha0 = 0.1, beta = 0.001, plain SGD:
    #   g0 = (1, 6)                          alpha0 = 0.1 (no previous step)
    #   w1 = (0.9, 1.4),       g1 = (0.9, 4.2)    g1.g0 = 26.1       alpha1 = 0.1261
    #   w2 = (0.78651, 0.87038), g2 = (0.78651, 2.61114)
    #                                        g2.g1 = 11.674647  alpha2 = 0.137774647
    agent = HypergradientAgent(beta=1e-3, rule="additive")
    used = quadratic_run(agent, torch.optim.SGD, steps=3)
    np.testing.assert_allclose(used, [0.1, 0.1261, 0.137774647], rtol=1e-6)
    assert agent.rates == used


def test_multiplicative_sgd_matches_the_hand_worked_example():
    # Same run, alpha1 = alpha0 * (1 + beta * cos(g1, g0)) with beta = 0.02:
    #   cos = 26.1 / (|(0.9, 4.2)| |(1, 6)|) = 26.1 / (4.295346 * 6.082763) = 0.998943
    #   alpha1 = 0.1 * 1.01997886 = 0.101997886
    agent = HypergradientAgent(beta=0.02)
    used = quadratic_run(agent, torch.optim.SGD, steps=2)
    np.testing.assert_allclose(used, [0.1, 0.101997886], rtol=1e-6)


def test_additive_adam_is_the_papers_adam_hd():
    # The paper's Adam-HD (the authors' AdamHD): h = g_t . m_hat / (sqrt(v_hat) + eps) of the
    # previous step, read here from torch Adam's own moments; the agent measures the same
    # direction from the parameters instead.
    agent = HypergradientAgent(beta=1e-3, rule="additive")
    weights = torch.tensor([1.0, 2.0], requires_grad=True)
    optimizer = torch.optim.Adam([weights], lr=0.1)
    env = SimpleNamespace(trainee=SimpleNamespace(optimizer=optimizer))
    agent.reset(EpisodeStart(BOUNDS.replace(optimizer="adam"), 0.1, seed=0, env=env))
    expected_lr, previous_direction = 0.1, None
    for _ in range(5):
        optimizer.zero_grad()
        (0.5 * (CURVATURE * weights**2).sum()).backward()
        gradient = weights.grad.clone()
        if previous_direction is not None:
            expected_lr += 1e-3 * float(gradient @ previous_direction)
        optimizer.step()
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected_lr, rel=1e-5)
        state = optimizer.state[weights]
        step = float(state["step"])
        m_hat = state["exp_avg"] / (1 - 0.9**step)
        v_hat = state["exp_avg_sq"] / (1 - 0.999**step)
        previous_direction = m_hat / (v_hat.sqrt() + 1e-8)
    assert expected_lr != pytest.approx(0.1)  # the rate did move


@settings(max_examples=30, deadline=None)
@given(
    beta=st.floats(0.0, 50.0),
    rule=st.sampled_from(["multiplicative", "additive"]),
    initial_lr=st.floats(1e-4, 0.5),
    momentum=st.sampled_from([0.0, 0.9]),
)
def test_rates_start_at_the_initial_rate_and_stay_in_bounds(beta, rule, initial_lr, momentum):
    task = BOUNDS.replace(lr_min=1e-4, lr_max=0.5)
    agent = HypergradientAgent(beta=beta, rule=rule)
    used = quadratic_run(agent, torch.optim.SGD, steps=6, initial_lr=initial_lr, task=task, momentum=momentum)
    assert used[0] == initial_lr
    assert all(task.lr_min <= lr <= task.lr_max for lr in used)


def test_hypergradient_rate_keeps_the_rate_when_the_gradient_is_not_finite():
    gradient, step = torch.tensor([math.nan, 1.0]), torch.tensor([1.0, 1.0])
    for rule in ("multiplicative", "additive"):
        assert hypergradient_rate(0.01, gradient, step, 0.01, beta=0.1, rule=rule) == 0.01
    assert hypergradient_rate(0.01, torch.zeros(2), step, 0.01, beta=0.1) == 0.01  # no direction: no change


def recorded_steps(agent, task, seed=0):
    """Run an episode; record (rate, gradient, weights) at every optimizer step, after the agent set the rate."""
    steps = []

    class Recorder:
        action_mode = agent.action_mode

        def reset(self, start):
            agent.reset(start)  # registers its hook first: ours sees the rate it set

            def record(optimizer, args, kwargs):
                params = [p for group in optimizer.param_groups for p in group["params"]]
                steps.append((
                    [group["lr"] for group in optimizer.param_groups],
                    torch.cat([p.grad.reshape(-1) for p in params]).double(),
                    torch.cat([p.detach().reshape(-1) for p in params]).double(),
                ))

            start.env.trainee.optimizer.register_step_pre_hook(record)

        def act(self, observation, info):
            return agent.act(observation, info)

    return steps, run_episode(Recorder(), task, seed)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_in_the_env_every_step_runs_the_multiplicative_rule(optimizer, tiny_task):
    task = tiny_task.replace(optimizer=optimizer, initial_lrs=[0.01])
    agent = make_agent("hypergradient", task)
    steps, result = recorded_steps(agent, task)
    assert len(steps) == task.steps
    rates = [group_rates[0] for group_rates, _, _ in steps]
    assert all(len(set(group_rates)) == 1 for group_rates, _, _ in steps)  # one rate for every group
    assert rates[0] == 0.01 and rates == agent.rates
    for t in range(1, task.steps):
        (_, gradient, weights), (_, _, previous_weights) = steps[t], steps[t - 1]
        update = (previous_weights - weights).numpy() / rates[t - 1]
        cosine = gradient.numpy() @ update / (np.linalg.norm(gradient.numpy()) * np.linalg.norm(update))
        assert rates[t] == pytest.approx(rates[t - 1] * (1 + agent.beta * cosine), rel=1e-4)
    # Each decision reports the rate in force when it was made.
    assert [row.lr for row in result.trajectory] == [rates[0]] + [
        rates[row.step - 1] for row in result.trajectory[:-1]
    ]


def test_a_beta_table_must_name_the_trainee_optimizer(tiny_task):
    agent = make_agent("hypergradient-additive", tiny_task)
    assert agent.beta_for("adam") == 1e-7 and agent.beta_for("sgd") == 1e-3
    with pytest.raises(ValueError, match="no value for optimizer 'prodigy'.*adam"):
        make_agent("hypergradient-additive", tiny_task.replace(optimizer="prodigy"))


def test_bad_params_are_clear_errors(tiny_task):
    with pytest.raises(ValueError, match="rule must be one of multiplicative, additive"):
        make_agent("hypergradient", tiny_task, rule="exponential")
    with pytest.raises(ValueError, match="unknown hypergradient param"):
        make_agent("hypergradient", tiny_task, betta=0.1)
    with pytest.raises(ValueError, match="beta must be a number"):
        make_agent("hypergradient", tiny_task, beta=-1.0)

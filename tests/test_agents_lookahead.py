"""Loss-scored lookahead: batched trial losses equal the copy-per-factor version; the weighting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lrgym.agents import EpisodeStart, make_agent, make_env, run_episode
from lrgym.agents.lookahead import FACTOR_LISTS, lookahead_factor, naive_trial_losses, trial_losses
from lrgym.tasks.specs import load_task_spec

from .conftest import TINY


def trained_env(task_name, seed=0):
    """An env whose trainee has trained one interval (weights and Adam state not at init)."""
    env = make_env(load_task_spec(task_name, **TINY), "lr")
    env.reset(seed=seed)
    env.step(np.array([3e-3]))
    return env


@pytest.mark.parametrize("task_name", ["mnist1d-mlp", "mnist1d-lenet"])
@pytest.mark.parametrize("factors", ["factor_5", "factor_7"])
def test_batched_trial_losses_equal_the_copy_per_factor_version(task_name, factors):
    trainee = trained_env(task_name).trainee
    inputs, labels = trainee.sample_batch(generator=torch.Generator().manual_seed(7))
    batched = trial_losses(trainee.model, inputs, labels, 0.05, FACTOR_LISTS[factors])
    naive = naive_trial_losses(trainee.model, inputs, labels, 0.05, FACTOR_LISTS[factors])
    assert batched.shape == (len(FACTOR_LISTS[factors]),)
    assert len(set(batched.tolist())) == len(batched)  # the factors really differ
    torch.testing.assert_close(batched, naive, rtol=1e-5, atol=1e-6)


def test_chunked_trials_equal_all_at_once():
    trainee = trained_env("mnist1d-mlp").trainee
    inputs, labels = trainee.sample_batch(generator=torch.Generator().manual_seed(7))
    factors = FACTOR_LISTS["factor_7"]
    torch.testing.assert_close(
        trial_losses(trainee.model, inputs, labels, 0.05, factors, chunk_size=3),
        trial_losses(trainee.model, inputs, labels, 0.05, factors),
    )


def test_scoring_leaves_the_trainee_unchanged():
    trainee = trained_env("mnist1d-lenet").trainee
    before = {name: value.clone() for name, value in trainee.model.state_dict().items()}
    inputs, labels = trainee.sample_batch(generator=torch.Generator().manual_seed(7))
    trial_losses(trainee.model, inputs, labels, 0.05, FACTOR_LISTS["factor_5"])
    for name, value in trainee.model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_batch_norm_trials_match_and_running_statistics_stay_put():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(12, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Linear(16, 4)
    )
    inputs, labels = torch.randn(32, 12), torch.randint(4, (32,))
    before = {name: value.clone() for name, value in model.state_dict().items()}
    batched = trial_losses(model, inputs, labels, 0.1, FACTOR_LISTS["factor_5"])
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    torch.testing.assert_close(batched, naive_trial_losses(model, inputs, labels, 0.1, FACTOR_LISTS["factor_5"]))


def test_equal_losses_give_equal_weights_not_nan():
    assert lookahead_factor([1.0] * 5, FACTOR_LISTS["factor_5"]) == pytest.approx(1.0)
    assert lookahead_factor([1.0] * 3, [4.0, 2.0, 1.0]) == pytest.approx(2.0)  # geometric mean


def test_clearly_lower_loss_pulls_the_rate_toward_its_factor():
    factors = FACTOR_LISTS["factor_5"]
    up = lookahead_factor([1.0, 1.5, 2.0, 2.5, 3.0], factors)
    down = lookahead_factor([3.0, 2.5, 2.0, 1.5, 1.0], factors)
    assert up > 1.0 and down == pytest.approx(1 / up)
    sharper = lookahead_factor([1.0, 1.5, 2.0, 2.5, 3.0], factors, temperature=0.1)
    assert up < sharper <= 4.0


def test_weights_are_the_exponential_scores_of_the_normalised_losses():
    losses, factors = np.array([0.3, 0.1, 0.2]), np.array([2.0, 1.0, 0.5])
    scores = np.exp(-(losses - losses.mean()) / losses.std(ddof=1) / 0.5)
    expected = math.exp(np.sum(scores * np.log(factors)) / scores.sum())
    assert lookahead_factor(losses, factors, temperature=0.5) == pytest.approx(expected)


def test_non_finite_trial_losses_get_no_weight():
    factors = [4.0, 2.0, 1.0]
    assert lookahead_factor([math.inf, 1.0, 1.0], factors) == pytest.approx(math.sqrt(2.0))
    assert lookahead_factor([math.nan, math.inf, math.nan], factors) == 1.0  # the smallest factor


def test_agent_moves_the_rate_by_the_weighted_geometric_mean(tiny_task):
    env = make_env(tiny_task, "lr")
    obs, info = env.reset(seed=0)
    agent = make_agent("lookahead", tiny_task)
    agent.reset(EpisodeStart(env.task, info["initial_lr"], 0, env))
    action = agent.act(obs, info)
    expected = info["lr"] * lookahead_factor(agent.last_losses, FACTOR_LISTS["factor_5"])
    assert action[0] == pytest.approx(expected)
    assert len(agent.last_losses) == 5


def test_scoring_batches_come_from_the_agents_own_stream(tiny_task):
    lookahead_env, constant_env = make_env(tiny_task, "lr"), make_env(tiny_task, "lr")
    run_episode(make_agent("lookahead-7", tiny_task, scoring_batch_size=16), lookahead_env, seed=2)
    run_episode(make_agent("constant", tiny_task), constant_env, seed=2)
    assert lookahead_env.trainee._batch_generator.get_state().equal(
        constant_env.trainee._batch_generator.get_state()
    )

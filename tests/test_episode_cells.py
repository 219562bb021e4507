"""The options of study 2's cells, through the env (lrgym.environment.episode, lr_control_env,
lrgym.trainee.features, the base_schedule checks in lrgym.tasks.spec_checks, the acting
overrides in lrgym.agents.ppo):

- O: ``features = "scale-free-optimizer"`` (the optimizer's identity) and a per-optimizer base;
- P: a base over Prodigy's multiplier, sized to each task's budget (``budget_fractions``);
- R: ``base_lr_spread``, the base rate drawn per episode from its seed.
"""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import given, settings
from hypothesis import strategies as st

from lrgym.agents.ppo import acting_overrides
from lrgym.environment.episode import EpisodeTracker, base_rates, episode_task
from lrgym.tasks.optimizers import per_optimizer_key
from lrgym.tasks.specs import TaskSpec
from lrgym.trainee.features import OPTIMIZER_FEATURE_NAMES, SCALE_FREE_FEATURE_NAMES, optimizer_features

from .conftest import TINY
from .test_episode import BASE, rollout

PER_OPTIMIZER = {"by_optimizer": {
    "adam": {**BASE, "initial_lr": 0.001},
    "sgd": {**BASE, "initial_lr": 0.5},
    "momentum": {**BASE, "initial_lr": 0.05},
}}
ZERO = np.zeros(1, np.float32)


def make(**overrides):
    return gymnasium.make("lrgym/mnist1d-mlp-v0", **{**TINY, **overrides})


# ---------------------------------------------------------------------------- O
@pytest.mark.parametrize(("optimizer", "kwargs", "one_hot"), [
    ("adam", {}, (1, 0, 0)), ("adamw", {}, (1, 0, 0)), ("momentum", {}, (0, 1, 0)),
    ("sgd", {"momentum": 0.9}, (0, 1, 0)), ("sgd", {}, (0, 0, 1)), ("prodigy", {}, (0, 0, 0)),
    ("schedulefree-adamw", {}, (0, 0, 0)),
])
def test_the_optimizer_identity_is_a_one_hot_of_its_kind(optimizer, kwargs, one_hot):
    assert optimizer_features(optimizer, kwargs) == one_hot


@pytest.mark.parametrize("optimizer", ["adam", "momentum", "sgd"])
def test_scale_free_optimizer_observation_is_the_scale_free_state_then_the_one_hot(optimizer):
    plain = make(features="scale-free", optimizer=optimizer, lr_max=10.0)
    identified = make(features="scale-free-optimizer", optimizer=optimizer, lr_max=10.0)
    assert identified.observation_space.shape == (len(SCALE_FREE_FEATURE_NAMES) + len(OPTIMIZER_FEATURE_NAMES),)
    observations, _, _ = rollout(plain, [ZERO] * 4, seed=2)
    with_identity, _, _ = rollout(identified, [ZERO] * 4, seed=2)
    assert np.array_equal(with_identity[:, :12], observations)
    assert (with_identity[:, 12:] == np.array(optimizer_features(optimizer), np.float32)).all()


def test_scale_free_optimizer_env_passes_the_checker():
    gym_check_env(make(features="scale-free-optimizer", action="residual", base_schedule=PER_OPTIMIZER).unwrapped)


@pytest.mark.parametrize(("optimizer", "rate"), [("adam", 0.001), ("sgd", 0.5), ("momentum", 0.05), ("adamw", 0.001)])
def test_a_per_optimizer_base_runs_the_entry_of_the_tasks_optimizer(optimizer, rate):
    env = make(action="residual", base_schedule=PER_OPTIMIZER, optimizer=optimizer, reward="relative_terminal")
    _, rewards, infos = rollout(env, [ZERO] * 4)
    assert infos[-1]["lr_trajectory"] == pytest.approx([rate, rate / 2, rate / 4, rate / 8])
    assert rewards[-1] == 0.0  # the base run is the same entry


def test_an_optimizer_missing_from_a_per_optimizer_table_takes_its_kinds_entry():
    """AdamW takes Adam's entry and SGD with momentum the momentum entry, as the one-hot sees them."""
    assert per_optimizer_key({"adam": 1, "sgd": 2}, "adamw") == "adam"
    assert per_optimizer_key({"momentum": 1, "sgd": 2}, "sgd", {"momentum": 0.9}) == "sgd"  # its own first
    assert per_optimizer_key({"momentum": 1}, "sgd", {"momentum": 0.9}) == "momentum"
    assert per_optimizer_key({"adam": 1}, "prodigy") is None and per_optimizer_key({"adam": 1}, "sgd") is None


def test_a_per_optimizer_base_without_the_tasks_optimizer_is_refused_when_used():
    adam_only = {"by_optimizer": {"adam": BASE}}
    with pytest.raises(ValueError, match="no schedule for optimizer 'sgd'; it has: adam"):
        make(action="residual", base_schedule=adam_only, optimizer="sgd")
    make(base_schedule=adam_only, optimizer="sgd")  # not used by the scale action: no error


def test_a_base_schedule_keeps_only_what_runs_it():
    choice = {**BASE, "score": 1.2, "grid": [], "budget_fractions": {"T_max": 1.0}}
    task = TaskSpec(name="t", dataset="mnist1d", model="mlp", base_schedule={"by_optimizer": {"adam": choice}})
    assert task.base_schedule == {"by_optimizer": {"adam": {**BASE, "budget_fractions": {"T_max": 1.0}}}}
    with pytest.raises(ValueError, match="by_optimizer must be a table"):
        TaskSpec(name="t", dataset="mnist1d", model="mlp", base_schedule={"by_optimizer": []})


# ---------------------------------------------------------------------------- P
def test_a_base_over_prodigy_is_sized_to_each_tasks_budget():
    cosine = {"scheduler": "CosineAnnealingLR", "initial_lr": 1.0, "kwargs": {"eta_min": 0.0},
              "budget_fractions": {"T_max": 1.0}}
    for steps in (40, 80):
        task = make(optimizer="prodigy", optimizer_kwargs={}, action="residual", base_schedule=cosine,
                    steps=steps).unwrapped.task
        rates = base_rates(task)
        assert rates[0] == 1.0 and rates[steps // 2] == pytest.approx(0.5) and len(rates) == steps
    env = make(optimizer="prodigy", optimizer_kwargs={}, action="residual", base_schedule=cosine,
               reward="relative_terminal", features="scale-free-optimizer")
    observations, rewards, infos = rollout(env, [ZERO] * 4)
    assert rewards[-1] == 0.0 and infos[-1]["lr_trajectory"][0] == 1.0  # against Prodigy's own run
    assert (observations[:, 12:] == 0).all()  # Prodigy is none of the three kinds


def test_a_controller_trained_with_the_optimizer_imposed_brings_it_along():
    task = {"features": "scale-free", "base_schedule": BASE, "optimizer": "prodigy", "optimizer_kwargs": {}}
    card = {"task": task, "signature": {"action": "residual"}, "family": {"overrides": {"optimizer": "prodigy"}}}
    assert acting_overrides(card) == {"features": "scale-free", "action": "residual", "base_schedule": BASE,
                                      "optimizer": "prodigy"}
    del card["family"]  # trained on one task: its optimizer was the task's, not the controller's
    assert "optimizer" not in acting_overrides(card)


# ---------------------------------------------------------------------------- R
def spread_task(spread: float = 1.0, **fields) -> TaskSpec:
    return make(action="residual", base_schedule=BASE, base_lr_spread=spread, **fields).unwrapped.task


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31 - 2), st.floats(0.1, 2.0))
def test_the_drawn_base_rate_is_within_the_spread_and_the_same_for_the_same_seed(seed, spread):
    task = spread_task(spread)
    drawn = episode_task(task, seed)
    factor = drawn.base_schedule["initial_lr"] / BASE["initial_lr"]
    assert 10 ** -spread <= factor <= 10 ** spread
    assert drawn.base_lr_spread == 0 and drawn.base_schedule["kwargs"] == BASE["kwargs"]
    assert episode_task(task, seed) == drawn


def test_the_drawn_factors_cover_both_directions_log_uniformly():
    task = spread_task(1.0)
    logs = np.array([math.log10(episode_task(task, seed).base_schedule["initial_lr"] / 0.01) for seed in range(400)])
    assert abs(logs.mean()) < 0.1 and abs(logs.std() - 2 / math.sqrt(12)) < 0.05  # U(-1, 1)
    assert episode_task(spread_task(0.0), 5) == spread_task(0.0)


def test_each_episode_runs_its_drawn_base_and_the_relative_reward_uses_the_same_one():
    env = make(action="residual", base_schedule=BASE, base_lr_spread=1.0, reward="relative_terminal")
    first_rates = []
    for seed in (0, 1, 0):
        _, rewards, infos = rollout(env, [ZERO] * 4, seed=seed)
        first_rates.append(infos[-1]["lr_trajectory"][0])
        assert rewards[-1] == 0.0  # doing nothing is the drawn base: its own paired run
    assert first_rates[0] == first_rates[2] != first_rates[1]
    assert 0.001 <= min(first_rates) and max(first_rates) <= 0.1


def test_a_spread_is_refused_without_the_residual_action_and_undrawn_by_a_driver():
    with pytest.raises(ValueError, match="base_lr_spread 1.0 .* needs action 'residual'"):
        make(base_schedule=BASE, base_lr_spread=1.0)
    with pytest.raises(ValueError, match="base_lr_spread must be >= 0"):
        make(action="residual", base_schedule=BASE, base_lr_spread=-0.5)
    with pytest.raises(ValueError, match=r"draw the episode's base first \(episode_task"):
        EpisodeTracker(spread_task(), 0.01)

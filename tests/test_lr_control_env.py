"""LRControlEnv (lrgym/environment/lr_control_env.py): the contracts of design.md, checked through the public API."""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from lrgym.environment.lr_control_env import LRControlEnv
from lrgym.trainee.features import FEATURE_NAMES

from .conftest import TINY


def make(**overrides):
    return gymnasium.make("lrgym/mnist1d-mlp-v0", **{**TINY, **overrides})


def rollout(env, actions, seed=0):
    observations, rewards = [], []
    obs, info = env.reset(seed=seed)
    observations.append(obs)
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards), info


@pytest.mark.parametrize("action", ["scale", "discrete", "lr", "log_lr"])
def test_gymnasium_env_checker_passes(action):
    gym_check_env(make(action=action).unwrapped, skip_render_check=True)


@pytest.mark.parametrize("action", ["scale", "discrete", "log_lr"])
def test_sb3_env_checker_passes(action):
    sb3_check_env(make(action=action).unwrapped, warn=True)


def test_every_spec_is_registered():
    from lrgym.tasks.specs import task_names

    for name in task_names():
        assert f"lrgym/{name}-v0" in gymnasium.registry


def test_observation_is_flat_float32_with_documented_features():
    env = make()
    obs, info = env.reset(seed=0)
    assert obs.shape == (len(FEATURE_NAMES),) and obs.dtype == np.float32
    assert obs[FEATURE_NAMES.index("log10_lr")] == pytest.approx(math.log10(info["initial_lr"]))
    assert obs[FEATURE_NAMES.index("budget_fraction")] == 0.0
    obs, *_ = env.step(np.zeros(1, np.float32))
    assert obs[FEATURE_NAMES.index("budget_fraction")] == pytest.approx(10 / 40)


def test_same_seed_gives_identical_trajectory_bit_for_bit():
    actions = [np.array([a], np.float32) for a in (1.0, -0.5, 0.3, 0.0)]
    first = rollout(make(), actions, seed=3)
    second = rollout(make(), actions, seed=3)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2]["test_loss_at_best_val"] == second[2]["test_loss_at_best_val"]


def test_different_seeds_differ():
    actions = [np.zeros(1, np.float32)] * 4
    assert not np.array_equal(rollout(make(), actions, seed=1)[0], rollout(make(), actions, seed=2)[0])


def test_same_seed_gives_same_start_whatever_the_action_mode():
    scale_obs, scale_info = make(action="scale").reset(seed=5)
    lr_obs, lr_info = make(action="lr").reset(seed=5)
    np.testing.assert_array_equal(scale_obs, lr_obs)
    assert scale_info["initial_lr"] == lr_info["initial_lr"]
    a = make(action="scale").unwrapped
    b = make(action="lr").unwrapped
    a.reset(seed=5)
    b.reset(seed=5)
    for pa, pb in zip(a.trainee.model.parameters(), b.trainee.model.parameters()):
        assert (pa == pb).all()


def test_episode_lasts_steps_over_interval_decisions_and_reports_final_info():
    env = make(steps=45, interval=10)
    _, rewards, info = rollout(env, [np.zeros(1, np.float32)] * 10)
    assert len(rewards) == 5  # ceil(45 / 10)
    assert info["step"] == 45
    for key in ("test_loss_at_best_val", "test_accuracy_at_best_val", "final_test_loss",
                "final_test_accuracy", "best_val_loss", "lr_trajectory"):
        assert key in info
    assert len(info["lr_trajectory"]) == 5
    assert info["best_val_loss"] <= min(-r for r in rewards) + 1e-9


def test_reward_is_minus_validation_loss_by_default():
    env = make()
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.zeros(1, np.float32))
    assert reward == pytest.approx(-info["val_loss"])


def test_log_and_improvement_rewards():
    env = make(reward="log_val_loss")
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.zeros(1, np.float32))
    assert reward == pytest.approx(-math.log(info["val_loss"]))
    env = make(reward="improvement")
    _, first_info = env.reset(seed=0)
    _, reward, _, _, info = env.step(np.zeros(1, np.float32))
    assert reward == pytest.approx(first_info["val_loss"] - info["val_loss"])


def test_scale_action_multiplies_the_rate_and_is_clipped():
    env = make(initial_lrs=[1e-3], lr_scale=2.0, lr_max=3e-3)
    env.reset(seed=0)
    *_, info = env.step(np.array([1.0], np.float32))
    assert info["lr"] == pytest.approx(2e-3)
    *_, info = env.step(np.array([1.0], np.float32))
    assert info["lr"] == pytest.approx(3e-3)  # 4e-3 clipped to lr_max
    *_, info = env.step(np.array([-1.0], np.float32))
    assert info["lr"] == pytest.approx(1.5e-3)


def test_discrete_and_lr_actions():
    env = make(action="discrete", initial_lrs=[1e-3], lr_scale=2.0)
    env.reset(seed=0)
    assert env.step(0)[-1]["lr"] == pytest.approx(5e-4)
    assert env.step(1)[-1]["lr"] == pytest.approx(5e-4)
    assert env.step(2)[-1]["lr"] == pytest.approx(1e-3)
    env = make(action="lr", lr_min=1e-5)
    env.reset(seed=0)
    assert env.step(np.array([0.02], np.float32))[-1]["lr"] == pytest.approx(0.02)
    assert env.step(np.array([1e-9], np.float32))[-1]["lr"] == pytest.approx(1e-5)


def test_huge_initial_lr_diverges_cleanly_with_penalty():
    env = make(initial_lrs=[10.0], lr_max=10.0, optimizer="sgd", steps=100)
    obs, info = env.reset(seed=0)
    total, steps, terminated = 0.0, 0, False
    while not terminated:
        obs, reward, terminated, truncated, info = env.step(np.zeros(1, np.float32))
        assert np.all(np.isfinite(obs))
        total += reward
        steps += 1
    assert info["diverged"]
    assert steps < 10
    # the penalty charges divergence_loss for every decision left, so diverging never pays
    assert total <= -env.unwrapped.task.divergence_loss * (10 - steps + 1)
    assert math.isfinite(info["test_loss_at_best_val"])


def test_per_group_lr_sampler_sets_every_group_for_every_step():
    env = make(initial_lrs=[1e-3]).unwrapped
    env.reset(seed=0)
    seen = []

    def sampler(step, lr, groups):
        seen.append((step, lr, groups))
        return [lr * (i + 1) for i in range(groups)]

    env.set_lr_sampler(sampler)
    env.step(np.zeros(1, np.float32))
    groups = env.trainee.num_groups
    assert seen == [(s, 1e-3, groups) for s in range(10)]
    assert [g["lr"] for g in env.trainee.optimizer.param_groups] == [1e-3] * groups
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    assert len(seen) == 10  # cleared at reset


def test_test_split_never_enters_observation_or_reward(monkeypatch):
    env = make().unwrapped
    env.reset(seed=0)
    calls = []
    original = env.trainee.evaluate
    monkeypatch.setattr(env.trainee, "evaluate", lambda *a, **k: calls.append(1) or original(*a, **k))
    for _ in range(3):
        env.step(np.zeros(1, np.float32))
    assert calls == []  # only the last step evaluates the test split, for info


def test_direct_construction_with_unknown_field_fails_clearly():
    with pytest.raises(TypeError):
        LRControlEnv(name="x", dataset="mnist1d", model="mlp", bogus=1)


def test_per_group_sampler_gives_each_parameter_tensor_a_group_and_same_updates():
    plain, split = make(initial_lrs=[1e-3]).unwrapped, make(initial_lrs=[1e-3]).unwrapped
    plain.reset(seed=4)
    split.reset(seed=4)
    assert plain.trainee.num_groups == 1
    split.set_lr_sampler(lambda step, lr, groups: lr)  # the shared rate, through per-tensor groups
    assert split.trainee.num_groups == len(list(split.trainee.model.parameters()))
    first = plain.step(np.zeros(1, np.float32))
    second = split.step(np.zeros(1, np.float32))
    np.testing.assert_array_equal(first[0], second[0])


@pytest.mark.parametrize("optimizer", ["schedulefree-adamw", "schedulefree-sgd", "prodigy"])
def test_practitioner_optimizers_train_in_the_env(optimizer):
    lr = 1.0 if optimizer == "prodigy" else 1e-2
    _, rewards, info = rollout(make(optimizer=optimizer, initial_lrs=[lr]), [np.zeros(1, np.float32)] * 4)
    assert len(rewards) == 4 and not info["diverged"]
    assert info["best_val_loss"] < 2.3  # learned something from the chance level of 10 classes


def test_initial_lr_for_seed_is_what_reset_draws():
    from lrgym.environment.lr_control_env import initial_lr_for_seed

    env = make()
    for seed in range(8):
        assert initial_lr_for_seed(env.unwrapped.task, seed) == env.reset(seed=seed)[1]["initial_lr"]

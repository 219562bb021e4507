"""Scale-free features, the outcome rewards and the residual action (lrgym.environment.episode, through the env)."""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from lrgym.agents import run_episode
from lrgym.agents.step_grid import choice_agent
from lrgym.trainee.features import SCALE_FREE_FEATURE_NAMES, Measurement, ScaleFreeFeatures

from .conftest import TINY

BASE = {"scheduler": "StepLR", "initial_lr": 0.01, "kwargs": {"step_size": 10, "gamma": 0.5}}


def make(**overrides):
    return gymnasium.make("lrgym/mnist1d-mlp-v0", **{**TINY, **overrides})


def rollout(env, actions, seed=0):
    obs, info = env.reset(seed=seed)
    observations, rewards, infos = [obs], [], [info]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards), infos


def measurement(val_loss: float, parameter_norm=3.0, update_norm=0.1, cosine=0.5) -> Measurement:
    return Measurement(
        val_loss=val_loss, val_accuracy=0.5, prediction_variance=0.01, prediction_change_variance=0.001,
        final_weight_mean=0.0, final_weight_variance=0.01, probabilities=torch.zeros(1),
        parameter_norm=parameter_norm, update_norm=update_norm, update_cosine=cosine,
    )


@settings(max_examples=30, deadline=None)
@given(
    scale=st.floats(1e-3, 1e3),
    losses=st.lists(st.tuples(st.floats(1e-3, 50), st.floats(1e-3, 50)), min_size=1, max_size=6),
)
def test_scale_free_features_unchanged_when_every_loss_is_multiplied(scale, losses):
    plain, scaled = ScaleFreeFeatures(2.3), ScaleFreeFeatures(2.3 * scale)
    for step, (train_loss, val_loss) in enumerate(losses):
        args = (0.01, 1.5, step / 10, 0.2)
        a = plain.observe(train_loss, measurement(val_loss), *args)
        b = scaled.observe(train_loss * scale, measurement(val_loss * scale), *args)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_scale_free_features_unchanged_when_the_weights_are_rescaled():
    a = ScaleFreeFeatures(2.0).observe(1.0, measurement(1.5, 3.0, 0.1), 0.01, 1.0, 0.5, 0.0)
    b = ScaleFreeFeatures(2.0).observe(1.0, measurement(1.5, 300.0, 10.0), 0.01, 1.0, 0.5, 0.0)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("action", ["scale", "residual"])
def test_scale_free_env_passes_the_checkers(action):
    env = make(features="scale-free", action=action, base_schedule=BASE, reward="log_improvement").unwrapped
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=True)
    assert env.observation_space.shape == (len(SCALE_FREE_FEATURE_NAMES),)


def test_scale_free_observation_stays_finite_when_the_trainee_diverges():
    env = make(features="scale-free", optimizer="sgd", initial_lrs=[1.0], lr_max=1e4, lr_scale=100.0)
    observations, rewards, infos = rollout(env, [np.ones(1, np.float32)] * 4)
    assert infos[-1]["diverged"]
    assert np.isfinite(observations).all() and np.isfinite(rewards).all()
    assert all(env.observation_space.contains(obs) for obs in observations)
    assert observations[-1][SCALE_FREE_FEATURE_NAMES.index("budget_fraction")] == 1.0


def test_scale_free_features_report_rate_multiplier_and_previous_action():
    env = make(features="scale-free", lr_scale=2.0)
    observations, _, infos = rollout(env, [np.array([1.0], np.float32), np.array([-0.5], np.float32)])
    index = SCALE_FREE_FEATURE_NAMES.index
    assert observations[0][index("log_lr_multiplier")] == 0.0
    assert observations[1][index("log_lr_multiplier")] == pytest.approx(math.log(2.0), rel=1e-5)
    assert observations[2][index("log_lr_multiplier")] == pytest.approx(0.5 * math.log(2.0), rel=1e-5)
    assert observations[2][index("previous_action")] == pytest.approx(-0.5)
    assert observations[1][index("update_cosine")] == 0.0  # one update only
    assert observations[2][index("update_cosine")] != 0.0


def test_log_improvement_returns_sum_to_log_of_initial_over_final_validation_loss():
    _, rewards, infos = rollout(make(reward="log_improvement"), [np.zeros(1, np.float32)] * 4)
    assert rewards.sum() == pytest.approx(math.log(infos[0]["val_loss"] / infos[-1]["val_loss"]), rel=1e-6)


def test_terminal_reward_is_paid_once_at_the_end():
    _, rewards, infos = rollout(make(reward="terminal"), [np.zeros(1, np.float32)] * 4)
    assert (rewards[:-1] == 0).all()
    assert rewards[-1] == pytest.approx(-math.log(infos[-1]["best_val_loss"]))


def test_residual_doing_nothing_runs_the_base_schedule_and_earns_zero_relative_reward():
    task = make(action="residual", base_schedule=BASE, reward="relative_terminal").unwrapped.task
    zero = np.zeros(1, np.float32)
    _, rewards, infos = rollout(make(**task.to_dict()), [zero] * 4, seed=3)
    assert rewards[-1] == 0.0 and infos[-1]["base_best_val_loss"] == infos[-1]["best_val_loss"]
    assert infos[-1]["lr_trajectory"] == pytest.approx([0.01, 0.005, 0.0025, 0.00125])
    # The same run as the step-decay agent that runs the base schedule (paired seed).
    schedule = run_episode(choice_agent(BASE), task.replace(reward="val_loss"), seed=3, device="cpu")
    assert [d.val_loss for d in schedule.trajectory] == [info["val_loss"] for info in infos[1:]]


def test_residual_actions_scale_the_base_schedule():
    env = make(action="residual", base_schedule=BASE, lr_scale=2.0)
    _, _, infos = rollout(env, [np.array([1.0], np.float32), np.array([1.0], np.float32), np.zeros(1, np.float32)])
    assert [info["lr"] for info in infos[1:]] == pytest.approx([0.02, 0.02, 0.01])


def test_relative_terminal_reward_rewards_beating_the_base_schedule():
    task = make(action="residual", base_schedule={**BASE, "initial_lr": 1e-4}, reward="relative_terminal")
    _, rewards, infos = rollout(task, [np.ones(1, np.float32)] * 4)  # 1e-4 is far too low: raising it helps
    assert rewards[-1] == pytest.approx(math.log(infos[-1]["base_best_val_loss"] / infos[-1]["best_val_loss"]))
    assert rewards[-1] > 0


@pytest.mark.parametrize("reward", ["log_improvement", "terminal", "relative_terminal"])
def test_divergence_scores_below_any_finite_outcome(reward):
    options = dict(reward=reward, action="residual", base_schedule=BASE, optimizer="sgd", lr_max=1e4,
                   lr_scale=1e3, divergence_loss=5.0)
    _, rewards, infos = rollout(make(**options), [np.ones(1, np.float32)] * 4)
    assert infos[-1]["diverged"]
    initial, stuck = infos[0]["val_loss"], 5.0
    # The best finite outcome ends at a validation loss just below the limit.
    if reward == "log_improvement":
        worst_finite = math.log(initial / stuck)
    elif reward == "terminal":
        worst_finite = -math.log(stuck)
    else:
        worst_finite = math.log(infos[-1]["base_best_val_loss"] / stuck)
    assert rewards.sum() < worst_finite


def test_step_after_the_end_raises():
    env = make()
    rollout(env, [np.zeros(1, np.float32)] * 4)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1, np.float32))


def test_residual_and_relative_reward_need_a_base_schedule():
    with pytest.raises(ValueError, match="base_schedule"):
        make(action="residual")
    with pytest.raises(ValueError, match="base_schedule"):
        make(reward="relative_terminal")


@pytest.mark.slow
def test_a_residual_scale_free_controller_acts_on_any_task_of_its_spaces(tmp_path, tiny_task):
    from lrgym.agents import make_agent

    from .tiny_training import train_tiny

    trained_on = tiny_task.replace(features="scale-free", action="residual", base_schedule=BASE,
                                   reward="relative_terminal")
    train_tiny(tmp_path / "controller", trained_on, "ppo-monte-carlo", timesteps=40)
    other = tiny_task.replace(steps=30, batch_size=16)  # the default xu state and scale action
    agent = make_agent(f"ppo:{tmp_path / 'controller'}", other)
    assert agent.task_overrides == {"features": "scale-free", "action": "residual", "base_schedule": BASE}
    result = run_episode(agent, other, seed=1, device="cpu")
    assert result.task.features == "scale-free" and result.task.action == "residual"
    assert result.task.reward == "val_loss" and result.task.steps == 30  # the rest stays the task's own
    assert len(result.first_observation) == len(SCALE_FREE_FEATURE_NAMES)

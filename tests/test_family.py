"""Task families: deterministic instances, disjoint splits, overrides, and the family env."""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from lrgym.environment.family_env import FamilyEnv
from lrgym.tasks.family import SPLITS, TaskFamily, draw, load_family, parse_instances
from lrgym.tasks.specs import family_names, load_task_spec, task_names
from lrgym.trainee.data import DataNotFoundError, load_dataset

# Tiny episodes; one dataset variant (the default, generated once) keeps the tests fast.
FAST = dict(steps=8, decisions=2, val_size=50, dataset_kwargs={})


def test_families_are_listed_apart_from_tasks():
    assert {"mnist1d-family", "mnist-family"} <= set(family_names())
    assert not set(family_names()) & set(task_names())
    with pytest.raises(ValueError, match="is a task family"):
        load_task_spec("mnist1d-family")


@pytest.mark.parametrize("name", ["mnist1d-family", "mnist-family"])
def test_splits_are_disjoint(name):
    family = load_family(name)
    for split in SPLITS:
        for other in SPLITS:
            if other != split:
                assert not set(family.indices(split)) & set(family.indices(other)), (split, other)
    assert family.split_of(family.indices("test")[0]) == "test"


@settings(max_examples=30, deadline=None)
@given(index=st.integers(0, 300_000))
def test_every_index_is_in_at_most_one_split(index):
    family = load_family("mnist1d-family")
    holders = [split for split in SPLITS if index in family.indices(split)]
    assert len(holders) <= 1
    assert family.split_of(index) == (holders[0] if holders else None)


def test_overlapping_splits_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        TaskFamily("bad", {"dataset": "mnist1d", "model": "mlp"},
                   {"train": (0, 10), "validation": (5, 20), "test": (20, 30)})


@settings(max_examples=20, deadline=None)
@given(position=st.integers(0, 99_999))
def test_an_instance_is_a_pure_function_of_family_and_index(position):
    first, second = load_family("mnist1d-family"), load_family("mnist1d-family")
    assert first.instance(position) == second.instance(position)
    assert TaskFamily.from_dict(first.to_dict()).instance(position) == first.instance(position)


def test_instances_are_the_same_on_every_machine():
    # SHA-256-seeded PCG64 streams: these values hold on any platform and Python version.
    task = load_family("mnist1d-family").instance(1)
    assert task.name == "mnist1d-family#1"
    assert (task.model, task.model_kwargs, task.optimizer) == ("mlp", {"hidden": [241, 240, 41]}, "momentum")
    assert (task.batch_size, task.steps, task.interval, task.initial_lrs) == (220, 532, 27, (0.002793,))


def test_instances_follow_the_declared_distributions():
    family = load_family("mnist1d-family")
    tasks = [family.instance(index) for index in range(200)]
    assert {task.model for task in tasks} == {"mlp", "lenet"}
    assert {task.optimizer for task in tasks} == {"adam", "momentum", "sgd"}
    assert len({tuple(sorted(task.dataset_kwargs.items())) for task in tasks}) == 4
    for task in tasks:
        assert 32 <= task.batch_size <= 256 and 200 <= task.steps <= 600
        assert task.decisions <= 20 and task.interval == math.ceil(task.steps / 20)
        assert 1e-4 <= task.initial_lrs[0] <= 1e-1 and len(task.initial_lrs) == 1
        if task.model == "mlp":
            assert 1 <= len(task.model_kwargs["hidden"]) <= 3
            assert all(32 <= width <= 256 for width in task.model_kwargs["hidden"])
        else:
            assert task.model_kwargs == {}
    # log-uniform over three decades: each decade holds a fair share
    decades = np.histogram(np.log10([task.initial_lrs[0] for task in tasks]), bins=[-4, -3, -2, -1])[0]
    assert decades.min() > 40


@settings(max_examples=60, deadline=None)
@given(
    low=st.floats(1e-6, 1e3), span=st.floats(1.0, 1e3), log=st.booleans(), integer=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_range_draws_stay_within_bounds(low, span, log, integer, seed):
    high = low * span
    if integer:
        low, high = math.ceil(low), math.ceil(low) + math.floor(high - low)
    value = draw({"low": low, "high": high, "log": log, "integer": integer}, np.random.default_rng(seed))
    assert isinstance(value, int) if integer else isinstance(value, float)
    assert low * (1 - 1e-3) <= value <= high * (1 + 1e-3)  # floats keep 4 significant digits


def test_overrides_apply_to_every_instance_after_drawing():
    plain = load_family("mnist1d-family")
    family = load_family("mnist1d-family", steps=8, decisions=2, reward="log_val_loss")
    for index in (0, 1, 100_000, 200_000):
        task, drawn = family.instance(index), plain.instance(index)
        assert (task.steps, task.interval, task.reward) == (8, 4, "log_val_loss")
        assert (task.model, task.optimizer, task.batch_size) == (drawn.model, drawn.optimizer, drawn.batch_size)


def test_an_overridden_model_gets_its_own_sub_table():
    family = load_family("mnist1d-family", model="mlp")
    assert all("hidden" in family.instance(index).model_kwargs for index in range(10))


def test_unknown_fields_are_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="unknown override.*valid:.*batch_size"):
        load_family("mnist1d-family", batch=3)
    with pytest.raises(ValueError, match="no instance"):
        load_family("mnist1d-family").instance(150_000)


def test_a_single_task_is_a_family_of_one():
    family = load_family("mnist1d-mlp", steps=40)
    assert family.single and all(family.indices(split) == range(0, 1) for split in SPLITS)
    assert family.instance(0) == load_task_spec("mnist1d-mlp", steps=40)


def test_parse_instances():
    family = load_family("mnist1d-family")
    assert parse_instances("test:3", family) == [200_000, 200_001, 200_002]
    assert parse_instances("test:5-7", family) == [200_005, 200_006, 200_007]
    assert parse_instances("validation:2", family) == [100_000, 100_001]
    for bad in ("test", "holdout:3", "test:0", "validation:500", "test:a-b"):
        with pytest.raises(ValueError, match="instances"):
            parse_instances(bad, family)


# ----------------------------------------------------------------------------- the env
def make_family_env(**overrides):
    return gymnasium.make("lrgym/mnist1d-family-v0", **{**FAST, **overrides})


def test_the_reset_seed_fixes_instance_and_start():
    env = make_family_env().unwrapped
    first, info = env.reset(seed=7)
    again, info_again = env.reset(seed=7)
    np.testing.assert_array_equal(first, again)
    assert info["instance"] == info_again["instance"] and info["instance"] in env.family.indices("train")
    assert info["instance_fields"]["model"] == env.family.instance(info["instance"]).model
    instances = {env.reset(seed=seed)[1]["instance"] for seed in range(8)}
    assert len(instances) > 1


def test_an_episode_runs_and_info_names_the_instance():
    env = make_family_env()
    observation, info = env.reset(seed=3, options={"instance": 200_004})
    assert info["instance"] == 200_004 and env.observation_space.contains(observation)
    done, steps = False, 0
    while not done:
        observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
        done, steps = terminated or truncated, steps + 1
        assert info["instance"] == 200_004
    assert steps == 2 and "test_loss_at_best_val" in info


def test_every_instance_has_the_same_spaces():
    env = make_family_env().unwrapped
    for index in (0, 1, 2, 3, 100_000, 200_000):
        instance = env.instance_env(index)
        assert instance.observation_space == env.observation_space
        assert instance.action_space == env.action_space


@pytest.mark.parametrize("action", ["scale", "discrete"])
def test_gymnasium_and_sb3_env_checkers_pass(action):
    gym_check_env(make_family_env(action=action).unwrapped, skip_render_check=True)
    sb3_check_env(make_family_env(action=action).unwrapped, warn=True)


def test_the_env_cache_is_bounded():
    env = FamilyEnv("mnist1d-family", cache_size=2, **FAST)
    for seed in range(5):
        env.reset(seed=seed)
    assert len(env._envs) <= 2


def test_fashion_mnist_family_instance_runs():
    try:
        load_dataset("fashion-mnist")
    except DataNotFoundError:
        pytest.skip("Fashion-MNIST is not installed")
    family = load_family("mnist-family", **FAST)
    index = next(i for i in family.indices("test") if family.instance(i).dataset == "fashion-mnist")
    env = FamilyEnv(family, split="test")
    env.reset(seed=0, options={"instance": index})
    _, _, terminated, _, info = env.step(np.zeros(1, dtype=np.float32))
    assert info["val_loss"] is not None


def test_every_task_field_passes_through_the_family_untouched():
    base = {"scheduler": "StepLR", "initial_lr": 0.01, "kwargs": {"step_size": 4, "gamma": 0.5}}
    overrides = dict(features="scale-free", action="residual", reward="log_improvement", base_schedule=base)
    family = load_family("mnist1d-family", **FAST, **overrides)
    for index in (0, 100_000, 200_000):
        task = family.instance(index)
        assert (task.features, task.action, task.reward) == ("scale-free", "residual", "log_improvement")
        assert task.base_schedule == base
    env = FamilyEnv(family)
    env.reset(seed=0)
    assert env.step(env.action_space.sample())[4]["instance"] in family.indices("train")

"""FamilyPopulationEnv (lrgym/environment/family_population_env.py) and the base-schedule
counterfactual as members of the batch (lrgym/environment/population_env.py).

Member k of a round on instance i with seed s follows ``FamilyEnv.reset(seed=s,
options={"instance": i})``: observations, rewards, rates and infos within the population's
tolerance (tests/test_population_env.py states it), and its ``relative_terminal`` reward
uses the base run of a base member, equal to the serial base run of the single env.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lrgym.environment.family_env import FamilyEnv
from lrgym.environment.family_population_env import FamilyPopulationEnv, family_population_error
from lrgym.environment.lr_control_env import base_best_val_loss, forget_base_runs
from lrgym.environment.population_env import PopulationEnv
from lrgym.trainee.data import load_dataset

from .test_population_env import ATOL, MEMBER_RTOL, RTOL, actions_for, assert_trajectory_follows, single_episode

SEEDS = [10_000, 10_001, 10_002]
pytestmark = pytest.mark.usefixtures("fresh_base_runs")  # each test starts with no base run cached


def population_round(env: FamilyPopulationEnv, seeds: list[int], actions: list[list], instance: int | None = None):
    """One round; per member the (observation, reward, done, info) of its reset and every decision."""
    observations, infos = env.start(seeds, instance)
    trajectory = [[(observations[k], 0.0, False, infos[k])] for k in range(len(seeds))]
    decision = 0
    while not all(env.done(k) for k in range(len(seeds))):
        observations, rewards, dones, infos = env.step([member_actions[decision] for member_actions in actions])
        for k in range(len(seeds)):
            if infos[k]:
                trajectory[k].append((observations[k], rewards[k], bool(dones[k]), infos[k]))
        decision += 1
    return trajectory


def assert_follows_the_family_env(family, trajectory, index: int, seed: int, actions: list) -> None:
    env = FamilyEnv(family, device="cpu")
    assert_trajectory_follows(trajectory, single_episode(None, seed, actions, env, options={"instance": index}))


def test_member_k_follows_the_family_env_with_the_rounds_instance_and_its_seed(recipe_family):
    env = FamilyPopulationEnv(recipe_family, len(SEEDS), device="cpu")
    actions = [actions_for(env.task, seed, env.task.decisions) for seed in SEEDS]
    trajectory = population_round(env, SEEDS, actions)
    forget_base_runs()  # the single envs run their base schedules themselves, serially
    for k, seed in enumerate(SEEDS):
        assert_follows_the_family_env(recipe_family, trajectory[k], env.index, seed, actions[k])
        assert trajectory[k][-1][3]["base_best_val_loss"] is not None and trajectory[k][-1][2]


def test_the_round_runs_the_instance_the_family_env_draws_from_its_first_seed(recipe_family):
    env = FamilyPopulationEnv(recipe_family, 2, device="cpu")
    observations, infos = env.start([12_345, 12_346])
    drawn = FamilyEnv(recipe_family, device="cpu").reset(seed=12_345)[1]["instance"]
    assert env.index == drawn and {info["instance"] for info in infos} == {drawn}
    assert recipe_family.split_of(drawn) == "train" and observations.shape == (2, *env.observation_space.shape)
    assert infos[0]["instance_fields"]["model"] == env.task.model


def test_the_base_member_ends_with_the_serial_base_run_of_the_same_instance_and_seed(recipe_family):
    env = FamilyPopulationEnv(recipe_family, 2, device="cpu")
    trajectory = population_round(env, SEEDS[:2], [[np.zeros(1, np.float32)] * 4] * 2)
    assert env.env.population.size == 4  # two members and their two base members in one program
    task, dataset = env.task, load_dataset("mnist1d", device="cpu")
    forget_base_runs()
    for k in range(2):
        serial = base_best_val_loss(dataset, task, env.env.trainee_seeds[k], env.env.device)
        assert trajectory[k][-1][3]["base_best_val_loss"] == pytest.approx(serial, rel=RTOL)
        # Doing nothing in residual mode is the base schedule: the episode scores log(1) = 0.
        assert trajectory[k][-1][1] == pytest.approx(0.0, abs=1e-3)


def test_a_member_diverging_early_gets_the_serial_base_run_in_its_penalty(recipe_family):
    wild = recipe_family.with_overrides(action="lr", optimizer="sgd", model="mlp", lr_max=10.0)
    env = FamilyPopulationEnv(wild, 2, device="cpu")
    calm, loud = [np.array([1e-2])] * 4, [np.array([10.0])] * 4
    trajectory = population_round(env, SEEDS[:2], [calm, loud])
    assert trajectory[1][-1][3]["diverged"] and len(trajectory[1]) < len(trajectory[0])
    forget_base_runs()
    for k, actions in enumerate([calm, loud]):
        assert_follows_the_family_env(wild, trajectory[k], env.index, SEEDS[k], actions)


def test_base_runs_the_process_has_need_no_base_members(recipe_family):
    task = recipe_family.instance(recipe_family.indices("train")[0])
    first = PopulationEnv(2, **task.to_dict(), device="cpu")
    first.reset([1, 2])
    while not (first.done(0) and first.done(1)):
        first.step([np.zeros(1, np.float32)] * 2)
    again = PopulationEnv(2, **task.to_dict(), device="cpu")
    again.reset([1, 2])
    assert first.population.size == 4 and again.population.size == 2
    assert again.trackers[0].base_best_val_loss == first.trackers[0].base_best_val_loss


def test_a_restarted_member_runs_the_same_instance_with_its_new_seed(recipe_family):
    env = FamilyPopulationEnv(recipe_family, 2, device="cpu")
    env.start(SEEDS[:2])
    env.step([np.zeros(1, np.float32)] * 2)
    observations, infos = env.restart([1], [SEEDS[2]])
    single = FamilyEnv(recipe_family, device="cpu").reset(seed=SEEDS[2], options={"instance": env.index})
    np.testing.assert_allclose(observations[0], single[0], rtol=MEMBER_RTOL, atol=ATOL)
    assert infos[0]["instance_seed"] == single[1]["instance_seed"] and not env.done(1)


def test_a_family_that_may_draw_an_unstackable_optimizer_is_refused_with_the_limit(recipe_family):
    drawn = {**recipe_family.distributions, "optimizer": ["adam", "prodigy"]}
    mixed = dataclasses.replace(recipe_family, distributions=drawn)
    message = family_population_error(mixed)
    assert "may draw optimizer 'prodigy'" in message and "single envs" in message and "\n" not in message
    with pytest.raises(ValueError, match="prodigy"):
        FamilyPopulationEnv(mixed, 2, device="cpu")
    assert family_population_error(recipe_family) is None


def test_without_base_members_the_base_runs_serially_with_the_same_rewards(recipe_family):
    env = FamilyPopulationEnv(recipe_family, 2, device="cpu", base_members=False)
    actions = [actions_for(env.task, seed, env.task.decisions) for seed in SEEDS[:2]]
    trajectory = population_round(env, SEEDS[:2], actions)
    assert env.env.population.size == 2
    forget_base_runs()
    for k in range(2):
        assert_follows_the_family_env(recipe_family, trajectory[k], env.index, SEEDS[k], actions[k])


def test_a_randomised_base_is_drawn_once_per_round_from_the_first_members_seed(recipe_family):
    """Cell R (base_lr_spread): the members share one program, so one base; member 0 is the
    single env exactly, and every member's reward is relative to that round's base."""
    family = recipe_family.with_overrides(base_lr_spread=1.0)
    env = FamilyPopulationEnv(family, 2, device="cpu")
    actions = [actions_for(env.task, seed, env.task.decisions) for seed in SEEDS[:2]]
    trajectory = population_round(env, SEEDS[:2], actions)
    base_lr = env.env.task.base_schedule["initial_lr"]
    assert env.env.task.base_lr_spread == 0 and base_lr != recipe_family.instance(env.index).base_schedule["initial_lr"]
    assert 0.1 <= base_lr / 0.01 <= 10
    forget_base_runs()
    assert_follows_the_family_env(family, trajectory[0], env.index, SEEDS[0], actions[0])
    env.start(SEEDS[1:2] + SEEDS[:1], env.index)  # another first seed: another base
    assert env.env.task.base_schedule["initial_lr"] != base_lr

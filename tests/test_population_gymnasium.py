"""A population through the gymnasium vector API (lrgym/vec_env/population_gymnasium.py).

The reference is gymnasium's own ``SyncVectorEnv`` over single ``LRControlEnv``s in the
same autoreset mode: seeded alike, given the same actions, member k must return what its
sub-env returns, within the population's float tolerance (tests/test_population_env.py).
The SB3 face of the population is tests/test_population_sb3.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import batch_space

from lrgym.environment.lr_control_env import LRControlEnv
from lrgym.tasks.specs import load_task_spec
from lrgym.vec_env.population_gymnasium import PopulationVectorEnv

from .test_population_env import ATOL, MEMBER_RTOL, RTOL

TINY = dict(steps=20, interval=5, val_size=100, batch_size=50)
SIZE = 3


def single(task, **options) -> LRControlEnv:
    return LRControlEnv(**task.to_dict(), device="cpu", **options)


def population(task) -> PopulationVectorEnv:
    return PopulationVectorEnv(SIZE, **task.to_dict(), device="cpu")


@pytest.mark.parametrize("action", ["scale", "discrete", "lr"])
def test_the_spaces_batch_the_single_env_spaces(action):
    task = load_task_spec("mnist1d-mlp", action=action, **TINY)
    envs, reference = population(task), single(task)
    assert envs.num_envs == SIZE
    assert envs.single_observation_space == reference.observation_space
    assert envs.single_action_space == reference.action_space
    assert envs.observation_space == batch_space(reference.observation_space, SIZE)
    assert envs.action_space == batch_space(reference.action_space, SIZE)


@pytest.mark.parametrize("action", ["scale", "discrete"])
def test_member_k_does_what_a_sync_vector_env_of_single_envs_does(action):
    task = load_task_spec("mnist1d-mlp", action=action, **TINY)
    envs = population(task)
    reference = SyncVectorEnv([lambda: single(task)] * SIZE, autoreset_mode=AutoresetMode.SAME_STEP)
    assert envs.metadata["autoreset_mode"] == reference.metadata["autoreset_mode"]

    observations, infos = envs.reset(seed=10)
    expected, expected_infos = reference.reset(seed=10)  # sub-env k gets 10 + k, as member k does
    np.testing.assert_allclose(observations, expected, rtol=MEMBER_RTOL, atol=ATOL)
    np.testing.assert_array_equal(infos["initial_lr"], expected_infos["initial_lr"])
    assert infos["_initial_lr"].all()

    envs.action_space.seed(0)
    for decision in range(task.decisions):
        actions = envs.action_space.sample()
        observations, rewards, terminations, truncations, infos = envs.step(actions)
        expected, expected_rewards, expected_terminations, expected_truncations, expected_infos = reference.step(
            actions)
        assert observations.dtype == expected.dtype and observations.shape == expected.shape
        np.testing.assert_allclose(rewards, expected_rewards, rtol=RTOL, atol=ATOL)
        np.testing.assert_array_equal(terminations, expected_terminations)
        np.testing.assert_array_equal(truncations, expected_truncations)
        assert terminations.dtype == truncations.dtype == np.bool_ and rewards.shape == (SIZE,)
        if decision < task.decisions - 1:  # (at the last, both start new episodes: their seeds differ)
            np.testing.assert_allclose(observations, expected, rtol=MEMBER_RTOL, atol=ATOL)
            np.testing.assert_array_equal(infos["lr"], expected_infos["lr"])
    # The last step ended every episode: the final observations and infos, as gymnasium gives them.
    assert terminations.all() and set(infos) == set(expected_infos)
    np.testing.assert_array_equal(infos["_final_obs"], expected_infos["_final_obs"])
    np.testing.assert_allclose(np.stack(infos["final_obs"]), np.stack(expected_infos["final_obs"]),
                               rtol=MEMBER_RTOL, atol=ATOL)
    final, expected_final = infos["final_info"], expected_infos["final_info"]
    assert set(final) == set(expected_final)
    np.testing.assert_allclose(final["test_loss_at_best_val"], expected_final["test_loss_at_best_val"], rtol=RTOL)
    np.testing.assert_array_equal(final["best_val_step"], expected_final["best_val_step"])
    # Then each member starts its next episode at once, with the next seeds (13, 14, 15); gymnasium's
    # sub-envs would continue their own random streams instead.
    np.testing.assert_allclose(observations[2], single(task).reset(seed=15)[0], rtol=MEMBER_RTOL, atol=ATOL)
    assert infos["lr"][2] == single(task).reset(seed=15)[1]["initial_lr"]
    envs.close()
    reference.close()


def test_a_member_that_ends_early_is_reset_alone_with_the_next_seed():
    task = load_task_spec("mnist1d-mlp", optimizer="sgd", action="lr", lr_max=10.0, **TINY)
    envs = population(task)
    envs.reset(seed=0)
    calm = np.array([1e-2])
    for _ in range(task.decisions):
        observations, _, terminations, _, infos = envs.step(np.stack([calm, np.array([10.0]), calm]))
        if terminations.any():
            break
    assert terminations.tolist() == [False, True, False]  # rate 10 diverges plain SGD long before the end
    assert infos["_final_obs"].tolist() == [False, True, False] and infos["final_info"]["diverged"][1]
    np.testing.assert_allclose(observations[1], single(task).reset(seed=3)[0], rtol=MEMBER_RTOL, atol=ATOL)


def test_seeds_one_per_member_or_continuing_the_sequence():
    task = load_task_spec("mnist1d-mlp", **TINY)
    envs = population(task)
    first = [single(task).reset(seed=seed)[0] for seed in (7, 0, 9)]
    observations, _ = envs.reset(seed=[7, None, 9])  # None: the next of the sequence, 0 at construction
    np.testing.assert_allclose(observations, first, rtol=MEMBER_RTOL, atol=ATOL)
    again, _ = envs.reset(seed=[7, 0, 9])
    np.testing.assert_array_equal(again, observations)  # the same seeds: the same start, bit for bit
    envs.reset(seed=20)
    continued, _ = envs.reset()  # 20, 21, 22 taken: 23, 24, 25
    np.testing.assert_allclose(continued[0], single(task).reset(seed=23)[0], rtol=MEMBER_RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="need one seed per member: 3 members, 2 seeds"):
        envs.reset(seed=[1, 2])


def test_reset_options_reach_every_member():
    task = load_task_spec("mnist1d-mlp", **TINY)
    _, infos = population(task).reset(seed=0, options={"initial_lr": 0.005})
    np.testing.assert_array_equal(infos["initial_lr"], [0.005] * SIZE)
    assert infos["initial_lr"][0] == single(task).reset(seed=0, options={"initial_lr": 0.005})[1]["initial_lr"]

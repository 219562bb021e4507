"""A family population as an SB3 VecEnv (lrgym/vec_env/family_population.py), in this process
and one per worker process (lrgym/vec_env/subproc_population.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrgym.environment.family_env import FamilyEnv
from lrgym.vec_env.family_population import FamilyPopulationVecEnv
from lrgym.vec_env.subproc_population import SubprocPopulationVecEnv, balanced_shares

from .test_population_sb3 import assert_ppo_learns_with_nan_checks

pytestmark = pytest.mark.usefixtures("fresh_base_runs")  # each test starts with no base run cached



def drawn_instance(family, seed: int) -> int:
    return FamilyEnv(family, device="cpu").reset(seed=seed)[1]["instance"]


def test_a_round_runs_one_instance_and_the_next_round_draws_from_the_next_seeds(recipe_family):
    venv = FamilyPopulationVecEnv(recipe_family, 2, first_seed=100, device="cpu")
    venv.reset()
    assert {info["instance"] for info in venv.reset_infos} == {drawn_instance(recipe_family, 100)}
    for _ in range(recipe_family.instance(venv.env.index).decisions):
        venv.step_async(np.zeros((2, 1), np.float32))
        observations, rewards, dones, infos = venv.step_wait()
    assert dones.all() and all(info["TimeLimit.truncated"] is False for info in infos)
    assert all("terminal_observation" in info and "test_loss_at_best_val" in info for info in infos)
    # Members 0 and 1 took seeds 100 and 101; the next round starts from 102.
    assert venv.env.index == drawn_instance(recipe_family, 102) and venv.next_seed == 104
    assert {info["instance"] for info in venv.reset_infos} == {venv.env.index}
    assert not np.array_equal(observations, np.stack([info["terminal_observation"] for info in infos]))


def test_a_diverged_member_restarts_on_the_instance_and_is_cut_when_the_round_ends(recipe_family):
    wild = recipe_family.with_overrides(action="lr", optimizer="sgd", model="mlp", lr_max=10.0)
    venv = FamilyPopulationVecEnv(wild, 2, first_seed=200, device="cpu")
    venv.reset()
    instance, restarted = venv.env.index, None
    for _ in range(wild.instance(instance).decisions):
        venv.step_async(np.array([[1e-2], [10.0 if restarted is None else 1e-2]]))  # calm once restarted
        _, _, dones, infos = venv.step_wait()
        if dones[1] and restarted is None:
            assert infos[1]["diverged"] and venv.reset_infos[1]["instance"] == instance
            restarted = venv.reset_infos[1]["instance_seed"]
    assert restarted is not None and dones.all()
    assert infos[0]["TimeLimit.truncated"] is False and infos[1]["TimeLimit.truncated"] is True
    assert "terminal_observation" in infos[1] and "test_loss_at_best_val" not in infos[1]


@pytest.mark.slow
def test_sb3_nan_checks_pass_on_a_family_population_and_workers_draw_their_own_instances(recipe_family):
    assert_ppo_learns_with_nan_checks(FamilyPopulationVecEnv(recipe_family, 2, device="cpu"), steps=6)
    workers = SubprocPopulationVecEnv(recipe_family, 2, processes=2, first_seed=300, device="cpu")
    try:
        workers.reset()
        instances = [info["instance"] for info in workers.reset_infos]
        assert instances == [drawn_instance(recipe_family, 300)] * 2 + [drawn_instance(recipe_family, 301)] * 2
        assert workers.call_in_workers(sum, [([1, 2],), ([3],)]) == [3, 3]
    finally:
        workers.close()


@settings(max_examples=50, deadline=None)
@given(costs=st.lists(st.floats(0.1, 100.0), max_size=20), workers=st.integers(1, 4))
def test_worker_shares_hold_every_job_once_and_stay_within_the_greedy_bound(costs, workers):
    shares = balanced_shares(costs, workers)
    assert len(shares) == workers and sorted(i for share in shares for i in share) == list(range(len(costs)))
    loads = [sum(costs[i] for i in share) for share in shares]
    if costs:  # longest-processing-time first: within the largest job of the mean load
        assert max(loads) <= sum(costs) / workers + max(costs) + 1e-9

"""The population as an SB3 VecEnv, in one process and in worker processes (lrgym/vec_env/population_sb3.py),
and one check of it as a gymnasium VectorEnv (the rest: tests/test_population_gymnasium.py)."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecCheckNan, VecMonitor

from lrgym.environment.lr_control_env import LRControlEnv
from lrgym.tasks.specs import load_task_spec
from lrgym.vec_env.population_gymnasium import PopulationVectorEnv
from lrgym.vec_env.population_sb3 import PopulationVecEnv
from lrgym.vec_env.subproc_population import SubprocPopulationVecEnv

TINY = dict(steps=20, interval=5, val_size=100, batch_size=50)


@pytest.fixture
def task():
    return load_task_spec("mnist1d-mlp", **TINY)


@pytest.fixture
def wild_task():
    """Absolute rates up to 10: plain SGD at rate 10 diverges within two decisions."""
    return load_task_spec("mnist1d-mlp", optimizer="sgd", action="lr", lr_max=10.0, **TINY)


def assert_ppo_learns_with_nan_checks(population, steps: int) -> None:
    """PPO runs ``steps`` rollout steps on ``population`` behind SB3's NaN checks."""
    venv = VecCheckNan(VecMonitor(population), raise_exception=True)
    model = PPO("MlpPolicy", venv, n_steps=steps, batch_size=2 * steps, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=steps * population.num_envs * 2)
    assert model.num_timesteps == steps * population.num_envs * 2
    venv.close()


@pytest.mark.slow
def test_sb3_nan_checks_pass_and_ppo_learns_on_a_population(task):
    assert_ppo_learns_with_nan_checks(PopulationVecEnv(task, 4, device="cpu"), steps=8)


def run(venv, actions_by_member, steps):
    observations = [venv.reset()]
    dones, infos = [], []
    for _ in range(steps):
        venv.step_async(np.array([actions[0] for actions in actions_by_member]))
        obs, _, done, info = venv.step_wait()
        observations.append(obs.copy())
        dones.append(done.copy())
        infos.append(info)
    return np.array(observations), np.array(dones), infos


def test_a_diverged_member_resets_alone_with_the_next_seed_and_never_disturbs_the_others(wild_task):
    calm, wild = [np.array([1e-2])], [np.array([10.0])]
    steps = wild_task.decisions + 1
    quiet = run(PopulationVecEnv(wild_task, 3, device="cpu"), [calm, calm, calm], steps)
    loud = run(PopulationVecEnv(wild_task, 3, device="cpu"), [calm, wild, calm], steps)
    # Members 0 and 2 see exactly the same numbers whatever member 1 does (until their
    # episodes end; the next ones take the next free seeds, which member 1 moved on).
    decisions = wild_task.decisions
    np.testing.assert_array_equal(loud[0][:decisions, [0, 2]], quiet[0][:decisions, [0, 2]])
    for member in (0, 2):
        np.testing.assert_array_equal(
            loud[2][decisions - 1][member]["terminal_observation"],
            quiet[2][decisions - 1][member]["terminal_observation"],
        )
    ended = int(np.flatnonzero(loud[1][:, 1])[0])
    assert ended < wild_task.decisions - 1 and not loud[1][ended, [0, 2]].any()
    info = loud[2][ended][1]
    assert info["diverged"] and "terminal_observation" in info and "final_test_loss" in info
    # Seeds 0, 1, 2 went to the first episodes: member 1's second episode is seed 3's.
    # (the observation holds the initial rate: log10_lr)
    single_observation, _ = LRControlEnv(**wild_task.to_dict(), device="cpu").reset(seed=3)
    np.testing.assert_allclose(loud[0][ended + 1, 1], single_observation, rtol=1e-5)


def test_seed_restarts_the_sequence_unless_the_env_refuses_it(task):
    venv = PopulationVecEnv(task, 2, first_seed=100, device="cpu")
    venv.seed(7)
    venv.reset()
    assert [info["initial_lr"] for info in venv.reset_infos] == [
        LRControlEnv(**task.to_dict(), device="cpu").reset(seed=seed)[1]["initial_lr"] for seed in (7, 8)
    ]
    refusing = PopulationVecEnv(task, 2, first_seed=100, seed_stride=3, accept_seed=False, device="cpu")
    assert refusing.seed(7) == [None, None] and refusing.next_seed == 100


def test_worker_processes_each_host_a_population_with_their_own_seeds(task):
    venv = SubprocPopulationVecEnv(task, size=2, processes=2, first_seed=10, device="cpu")
    try:
        observations = venv.reset()
        assert observations.shape == (4, *venv.observation_space.shape)
        # Worker p takes seeds 10 + p, 12 + p, ...: sub-env p * 2 + k has seed 10 + p + 2k.
        expected = [LRControlEnv(**task.to_dict(), device="cpu").reset(seed=seed)[0] for seed in (10, 12, 11, 13)]
        np.testing.assert_allclose(observations, np.array(expected), rtol=1e-5)
        for _ in range(task.decisions):
            observations, rewards, dones, infos = venv.step(np.zeros((4, 1), dtype=np.float32))
        assert dones.all() and all("terminal_observation" in info for info in infos)
    finally:
        venv.close()


def test_gymnasium_vector_api_autoresets_in_the_same_step(task):
    envs = PopulationVectorEnv(3, **task.to_dict(), device="cpu")
    assert envs.metadata["autoreset_mode"].value == "SameStep"
    observations, infos = envs.reset(seed=0)
    assert observations.shape == (3, 8) and envs.observation_space.contains(observations)
    assert infos["initial_lr"].shape == (3,)
    for _ in range(task.decisions):
        observations, rewards, terminations, truncations, infos = envs.step(envs.action_space.sample())
    assert terminations.all() and not truncations.any()
    assert infos["final_obs"].shape == (3,) and infos["final_info"]["_final_test_loss"].all()
    first = LRControlEnv(**task.to_dict(), device="cpu").reset(seed=4)[0]
    np.testing.assert_allclose(observations[1], first, rtol=1e-5)  # seeds 0-2, then 3, 4, 5


@pytest.mark.slow
def test_meta_training_runs_on_a_population_and_records_it_in_the_card(tmp_path, task):
    import json

    from .tiny_training import tiny_agent, train_tiny

    agent = tiny_agent(eval_every_episodes=20, eval_episodes=3)  # held-out seeds as a population too
    result = train_tiny(tmp_path / "run", task, timesteps=160, population=4, agent=agent)  # one rollout
    assert result.timesteps == 160 and result.episodes == 40  # 4 decisions per tiny episode
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    assert card["population"] == 4 and card["n_envs"] == 1
    assert card["selection"]["rule"].startswith("lowest") and len(card["run"]["held_out_history"]) >= 2


def test_train_command_refuses_bad_populations_with_one_line(capsys, tmp_path):
    from lrgym.cli import main

    with pytest.raises(SystemExit) as exit_info:  # argparse: the usage line and exit status 2
        main(["train", "mnist1d-mlp", "--population", "0", "--out", str(tmp_path / "a")])
    assert exit_info.value.code == 2 and "--population: expected an integer >= 1" in capsys.readouterr().err
    code = main(["train", "mnist1d-mlp", "--population", "4", "--set", "optimizer=prodigy",
                 "--out", str(tmp_path / "b"), "--device", "cpu", "--no-progress"])
    assert code == 2 and "single envs only" in capsys.readouterr().err

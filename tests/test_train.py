"""Meta-training (lrgym/train.py, lrgym/callbacks.py): checkpoints, evaluation, resume, recurrent PPO."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import time
from typing import Any

import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback

from lrgym.agents import make_agent, run_episode
from lrgym.callbacks import periodic_checkpoints
from lrgym.checkpoints.checkpoint import algorithm_class
from lrgym.tasks.specs import AgentSpec, load_agent_spec
from lrgym.train import HELD_OUT_SEED_START, TRAINING_SEED_START, held_out_seeds, recipe_algorithm, train
from lrgym.vec_env.training import TrainingSeeds

from .tiny_training import tiny_agent, train_tiny


class StopAfter(BaseCallback):
    """Interrupts training, as a crash or a kill would, once ``timesteps`` are collected
    (after ``linger_s`` more seconds of work since the last checkpoint)."""

    def __init__(self, timesteps: int, linger_s: float = 0.0) -> None:
        super().__init__()
        self.timesteps = timesteps
        self.linger_s = linger_s

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.timesteps:
            time.sleep(self.linger_s)
            raise RuntimeError("interrupted")
        return True


class RecordStart(BaseCallback):
    """Remembers the step count and normalisation statistics the training starts from."""

    def _on_training_start(self) -> None:
        self.start_timesteps = self.model.num_timesteps
        self.start_obs_count = self.model.get_vec_normalize_env().obs_rms.count

    def _on_step(self) -> bool:
        return True


@pytest.mark.slow
def test_tiny_run_writes_a_checkpoint_that_acts_in_the_env(tmp_path, tiny_task):
    result = train_tiny(tmp_path / "run", tiny_task, timesteps=80)
    assert result.timesteps == 80 and result.episodes == 20  # 4 decisions per tiny episode
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    assert card["timesteps"] == 80 and card["task"] == tiny_task.to_dict()
    assert card["agent"]["kind"] == "ppo" and card["selection"]["rule"] == "final"
    assert set(card["files"]) == {"policy", "normalization", "model", "vecnormalize"}
    assert card["policy"]["name"] == "MlpPolicy" and "sha256" in card["security"]
    assert card["versions"]["stable-baselines3"] and card["signature"]["action"] == "scale"

    agent = make_agent(f"ppo:{tmp_path / 'run'}", tiny_task)
    first, second = (run_episode(agent, tiny_task, seed=3) for _ in range(2))
    assert len(first.trajectory) == 4
    assert [row.lr for row in first.trajectory] == [row.lr for row in second.trajectory]  # deterministic


@pytest.mark.slow
def test_held_out_evaluation_keeps_the_best_controller_and_logs_tensorboard(tmp_path, tiny_task):
    agent = tiny_agent(eval_every_episodes=5, eval_episodes=2)
    result = train_tiny(tmp_path / "run", tiny_task, timesteps=80, agent=agent)
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    history = card["run"]["held_out_history"]
    assert [row["episodes"] for row in history] == [0, 5, 10, 15, 20]  # and at the end
    best = min(history, key=lambda row: row["score"])
    assert card["selection"]["score"] == pytest.approx(best["score"]) == pytest.approx(result.best_score)
    assert card["selection"]["timesteps"] == best["timesteps"]
    assert len(card["seeds"]["held_out"]) == 2 and min(card["seeds"]["held_out"]) >= HELD_OUT_SEED_START
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert [event.value for event in events.Scalars("eval/best_val_loss")] == pytest.approx(
        [row["score"] for row in history]
    )
    assert len(events.Scalars("episode/best_val_loss")) == result.episodes
    assert len(events.Images("eval/lr_trajectory")) == len(history)
    assert events.Scalars("train/value_loss") and events.Scalars("time/update_fraction")


def test_training_seeds_stay_out_of_the_evaluation_ranges(tiny_task):
    from lrgym.environment.lr_control_env import LRControlEnv

    env = TrainingSeeds(LRControlEnv(**tiny_task.to_dict()), first=TRAINING_SEED_START, stride=2)
    reference = LRControlEnv(**tiny_task.to_dict())
    for expected_seed in (TRAINING_SEED_START, TRAINING_SEED_START + 2):
        observation, _ = env.reset(seed=0)  # the seed SB3 passes is ignored
        np.testing.assert_array_equal(observation, reference.reset(seed=expected_seed)[0])


def test_held_out_seeds_cover_every_initial_rate(tiny_task):
    from lrgym.environment.lr_control_env import LRControlEnv

    env = LRControlEnv(**tiny_task.to_dict())
    seeds = held_out_seeds(env, 6)
    assert len(set(seeds)) == 6 and min(seeds) >= HELD_OUT_SEED_START
    initial_lrs = sorted(env.reset(seed=seed)[1]["initial_lr"] for seed in seeds)
    assert initial_lrs == sorted(2 * list(tiny_task.initial_lrs))


@pytest.mark.slow
def test_resume_after_an_interruption_continues_the_step_count_and_statistics(tmp_path, tiny_task):
    out = tmp_path / "run"
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="interrupted"):
        train_tiny(out, tiny_task, timesteps=160, extra_callbacks=[StopAfter(100, linger_s=2.0)])
    first_session = time.perf_counter() - started
    saved = periodic_checkpoints(out / "periodic")[-1]
    saved_card = json.loads((saved / "card.json").read_text())
    assert saved_card["timesteps"] == 80  # the last completed PPO update before the interruption
    with open(saved / saved_card["files"]["vecnormalize"]["name"], "rb") as handle:
        saved_count = pickle.load(handle).obs_rms.count

    start = RecordStart()
    started = time.perf_counter()
    result = train_tiny(out, tiny_task, timesteps=160, resume=True, extra_callbacks=[start])
    second_session = time.perf_counter() - started
    assert start.start_timesteps == 80
    # The statistics continue from the saved ones (plus the first observation of the reset).
    assert start.start_obs_count == pytest.approx(saved_count + 1)
    assert result.timesteps == 160
    card = json.loads((out / "card.json").read_text())
    assert card["timesteps"] == 160
    assert len(periodic_checkpoints(out / "periodic")) == 2  # the last two are kept
    # The wall time counts both sessions whole, also the 2 s spent after the last checkpoint.
    assert card["run"]["wall_time_s"] == pytest.approx(first_session + second_session, abs=0.5)
    assert result.wall_time_s == pytest.approx(first_session + second_session, abs=0.5)


@pytest.mark.slow
def test_resume_refuses_another_task_and_a_fresh_run_refuses_an_existing_folder(tmp_path, tiny_task):
    out = tmp_path / "run"
    train_tiny(out, tiny_task, timesteps=40)
    with pytest.raises(ValueError, match="steps"):
        train_tiny(out, tiny_task.replace(steps=80), timesteps=80, resume=True)
    with pytest.raises(ValueError, match="--resume"):
        train_tiny(out, tiny_task, timesteps=40)
    with pytest.raises(FileNotFoundError, match="no training run to resume"):
        train_tiny(tmp_path / "empty", tiny_task, resume=True)


@pytest.mark.slow
def test_ppo_lstm_trains_and_acts_with_its_state_carried_and_reset(tmp_path, tiny_task):
    train_tiny(tmp_path / "lstm", tiny_task, name="ppo-lstm", timesteps=40)
    agent = make_agent(f"ppo:{tmp_path / 'lstm'}", tiny_task)
    first = run_episode(agent, tiny_task, seed=1)
    assert agent._lstm_state is not None  # carried across the decisions
    assert [row.lr for row in run_episode(agent, tiny_task, seed=1).trajectory] == [
        row.lr for row in first.trajectory
    ]  # reset at the episode start: the same episode gives the same decisions


@pytest.mark.slow
def test_two_subprocess_envs_train(tmp_path, tiny_task):
    result = train_tiny(tmp_path / "run", tiny_task, timesteps=80, n_envs=2)
    assert result.timesteps == 80 and result.episodes == 20
    assert json.loads((tmp_path / "run" / "card.json").read_text())["n_envs"] == 2


def test_training_recipes_are_not_agents(tiny_task):
    with pytest.raises(ValueError, match="lrgym train"):
        make_agent("ppo", tiny_task)


@pytest.mark.slow
def test_cli_train_writes_the_controller(tmp_path, capsys):
    from lrgym.cli import main

    out = tmp_path / "cli"
    code = main([
        "train", "mnist1d-mlp", "--timesteps", "40", "--out", str(out), "--no-progress", "--device", "cpu",
        "--set", "steps=40", "--set", "interval=10", "--set", "batch_size=32", "--set", "val_size=200",
    ])
    assert code == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert json.loads((out / "card.json").read_text())["timesteps"] >= 40


def sac_recipe(**algorithm: Any) -> AgentSpec:
    """The shipped SAC recipe, learning from its 5th decision on, no held-out evaluation."""
    spec = load_agent_spec("sac-dac4sgd")
    params = copy.deepcopy(spec.params)
    params["algorithm"].update({"learning_starts": 5, "batch_size": 8, **algorithm})
    params.update(eval_every_episodes=0, checkpoint_every_rollouts=10)
    return dataclasses.replace(spec, params=params)


def test_algorithms_are_named_by_class_or_fall_back_to_the_kinds_default():
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import PPO, SAC, TD3

    assert algorithm_class("ppo") is PPO and algorithm_class("ppo-lstm") is RecurrentPPO
    assert algorithm_class("sb3", "SAC") is SAC and algorithm_class("sb3", "stable_baselines3.TD3") is TD3
    assert algorithm_class("ppo", "sb3_contrib.RecurrentPPO") is RecurrentPPO
    with pytest.raises(ValueError, match="unknown algorithm 'Sac': name an SB3 algorithm class"):
        algorithm_class("sb3", "Sac")
    with pytest.raises(ValueError, match="stable_baselines3 or sb3_contrib classes only"):
        algorithm_class("sb3", "os.system")
    with pytest.raises(ValueError, match="no training algorithm for agent kind 'schedule'"):
        algorithm_class("schedule")


def test_a_recipe_names_its_algorithm_as_a_string_or_in_its_table():
    spec = load_agent_spec("sac-dac4sgd")
    assert recipe_algorithm(spec) == ("SAC", {"policy_kwargs": {"net_arch": [64, 64]}})
    assert recipe_algorithm(dataclasses.replace(spec, params={"algorithm": "TD3"})) == ("TD3", {})
    assert recipe_algorithm(load_agent_spec("ppo"))[0] is None


@pytest.mark.slow
def test_the_sac_recipe_trains_and_its_controller_acts_on_the_log_rate(tmp_path, tiny_task):
    task = tiny_task.replace(**load_agent_spec("sac-dac4sgd").task_overrides)
    result = train(task, sac_recipe(), tmp_path / "sac", timesteps=24, device="cpu", progress_bar=False)
    assert result.timesteps == 24 and result.update_s > 0  # SAC updated its networks
    card = json.loads((tmp_path / "sac" / "card.json").read_text())
    assert card["algorithm"] == "stable_baselines3.SAC" and card["policy"]["kwargs"]["net_arch"] == [64, 64]
    assert card["signature"]["action"] == "log_lr" and card["signature"]["lr_bounds"] == [1e-5, 1.0]
    # Acting reads the safetensors weights, and brings the log-rate action and its bounds to another task.
    agent = make_agent(f"ppo:{tmp_path / 'sac'}", tiny_task)
    assert agent.task_overrides["action"] == "log_lr" and agent.task_overrides["lr_min"] == 1e-5
    rates = [row.lr for row in run_episode(agent, tiny_task, seed=0).trajectory]
    assert len(rates) == 4 and all(1e-5 <= rate <= 1.0 for rate in rates)


@pytest.mark.slow
def test_cli_train_applies_the_recipes_task_fields_and_set_wins(tmp_path):
    from lrgym.cli import main

    out = tmp_path / "cli-sac"
    assert main([
        "train", "mnist1d-mlp", "--agent", "sac-dac4sgd", "--timesteps", "8", "--out", str(out), "--no-progress",
        "--device", "cpu", "--set", "steps=8", "--set", "interval=2", "--set", "val_size=50", "--set", "lr_min=1e-4",
    ]) == 0
    trained_on = json.loads((out / "card.json").read_text())["task"]
    assert (trained_on["action"], trained_on["reward"], trained_on["lr_min"]) == ("log_lr", "terminal", 1e-4)


def test_lrgym_train_refuses_an_agent_that_is_not_a_training_recipe():
    from lrgym.cli import main

    assert main(["train", "mnist1d-mlp", "--agent", "constant"]) == 2

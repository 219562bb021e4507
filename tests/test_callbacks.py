"""Meta-training's SB3 callbacks (lrgym/callbacks.py), driven through SB3's callback protocol.

Most tests call the hooks PPO calls (``on_training_start``, ``on_rollout_start``,
``on_step``, ``on_rollout_end``, ``on_training_end``) on a stand-in model whose step
count they set, with a hand-driven clock where time matters, so the expected numbers
are worked out by hand. One slow test checks the same callbacks inside a real tiny
``train`` run; resuming a run is tests/test_train.py.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

import lrgym.callbacks as callbacks
from lrgym.agents import run_episode
from lrgym.agents.ppo import PPOAgent
from lrgym.callbacks import (
    EpisodeLogCallback,
    HeldOutEvalCallback,
    PeriodicCheckpointCallback,
    PhaseTimerCallback,
    TrainingProgress,
    periodic_checkpoints,
)
from lrgym.environment.lr_control_env import LRControlEnv
from lrgym.resume import WallClockCallback

from .tiny_training import tiny_agent, train_tiny


class Clock:
    """A ``time.perf_counter`` that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(callbacks.time, "perf_counter", clock)
    return clock


def stand_in_model(timesteps: int = 0) -> SimpleNamespace:
    """What these callbacks read from PPO: the step count and a logger (no output formats)."""
    return SimpleNamespace(num_timesteps=timesteps, logger=Logger(folder=None, output_formats=[]))


def start(callback, model) -> None:
    callback.init_callback(model)
    callback.on_training_start({}, {})


def write_card(folder) -> None:
    folder.mkdir(parents=True)
    (folder / "card.json").write_text("{}")


# ---------------------------------------------------------------------------- periodic checkpoints
def test_periodic_checkpoints_lists_the_complete_ones_oldest_first(tmp_path):
    assert periodic_checkpoints(tmp_path / "missing") == []
    for name in ("step-000000120", "step-000000040", "other"):
        write_card(tmp_path / name)
    (tmp_path / "step-000000160").mkdir()  # a save killed before its card: not a checkpoint
    assert periodic_checkpoints(tmp_path) == [tmp_path / "step-000000040", tmp_path / "step-000000120"]


def run_rollouts(callback, model, rollouts: int, steps_per_rollout: int = 40) -> None:
    """PPO's loop: each rollout collects steps, then an update runs (no hook of its own)."""
    for _ in range(rollouts):
        callback.on_rollout_start()
        for _ in range(steps_per_rollout):
            model.num_timesteps += 1
            callback.on_step()
        callback.on_rollout_end()
    callback.on_training_end()


@pytest.mark.parametrize(("every", "saved"), [
    (1, [40, 80, 120, 160]),  # after every update, and at the end
    (2, [80, 160]),  # after every second update; the end was just saved
    (3, [120, 160]),
])
def test_a_checkpoint_is_saved_after_every_n_updates_and_at_the_end(tmp_path, every, saved):
    model, calls = stand_in_model(), []

    def save(folder):
        calls.append(model.num_timesteps)
        write_card(folder)

    callback = PeriodicCheckpointCallback(tmp_path, every, save, keep=10)
    start(callback, model)
    run_rollouts(callback, model, 4)
    assert calls == saved
    assert [path.name for path in periodic_checkpoints(tmp_path)] == [f"step-{steps:09d}" for steps in saved]


def test_only_the_last_checkpoints_are_kept(tmp_path):
    model = stand_in_model()
    callback = PeriodicCheckpointCallback(tmp_path, 1, write_card, keep=2)
    start(callback, model)
    run_rollouts(callback, model, 4)
    assert [path.name for path in periodic_checkpoints(tmp_path)] == ["step-000000120", "step-000000160"]


def test_a_resumed_run_saves_nothing_before_it_learns_something_new(tmp_path):
    model, calls = stand_in_model(timesteps=80), []  # resumed from its checkpoint at 80
    callback = PeriodicCheckpointCallback(tmp_path, 1, lambda folder: calls.append(model.num_timesteps))
    start(callback, model)
    callback.on_training_end()  # e.g. interrupted at once
    assert calls == []
    run_rollouts(callback, model, 1)
    assert calls == [120]


# ---------------------------------------------------------------------------- phase timer
def test_the_phase_timer_splits_wall_time_into_rollouts_updates_and_evaluation(clock):
    model = stand_in_model()
    evaluation = HeldOutEvalCallback([], {}, 0, TrainingProgress(), save_best=lambda *args: None)
    timer = PhaseTimerCallback(evaluation)
    start(timer, model)
    for rollout_s, evaluation_s, update_s in ((3.0, 1.0, 2.0), (3.0, 0.0, 2.0)):
        timer.on_rollout_start()
        clock.now += rollout_s  # of which evaluation_s evaluating, inside the rollout
        evaluation.seconds += evaluation_s
        timer.on_rollout_end()
        clock.now += update_s
    timer.on_training_end()
    assert (timer.rollout_seconds, timer.update_seconds, timer.evaluation_seconds) == (5.0, 4.0, 1.0)
    logged = model.logger.name_to_value
    assert logged["time/rollout_fraction"] == pytest.approx(0.5)
    assert logged["time/update_fraction"] == pytest.approx(0.4)
    assert logged["time/evaluation_fraction"] == pytest.approx(0.1)


def test_the_phase_timer_counts_no_evaluation_without_one(clock):
    model = stand_in_model()
    timer = PhaseTimerCallback()
    start(timer, model)
    timer.on_rollout_start()
    clock.now += 1.5
    timer.on_rollout_end()
    clock.now += 0.5
    timer.on_training_end()
    assert (timer.rollout_seconds, timer.update_seconds, timer.evaluation_seconds) == (1.5, 0.5, 0.0)
    assert model.logger.name_to_value["time/update_fraction"] == pytest.approx(0.25)


# ---------------------------------------------------------------------------- wall clock
def test_the_wall_clock_keeps_every_session_and_rewrites_at_most_every_every_s(tmp_path, clock):
    path = tmp_path / "run" / "wall_time.json"
    earlier = [{"started": "2024-01-01T00:00:00+0000", "seconds": 30.0}, {"started": None, "seconds": 12.5}]
    wall = WallClockCallback(path, started=clock.now, earlier_sessions=earlier, every_s=5.0)
    assert wall.earlier_s == 42.5
    start(wall, stand_in_model())
    clock.now += 1.0
    wall.on_step()  # the first step writes
    assert WallClockCallback.read_sessions(path)[-1]["seconds"] == 1.0
    clock.now += 4.0
    wall.on_step()  # 4 s since the last write: not yet
    assert WallClockCallback.read_sessions(path)[-1]["seconds"] == 1.0
    clock.now += 1.04
    wall.on_step()
    assert WallClockCallback.read_sessions(path)[-1]["seconds"] == 6.0  # rounded to 0.1 s
    clock.now += 2.0
    wall.on_training_end()  # always written at the end
    sessions = WallClockCallback.read_sessions(path)
    assert sessions[:2] == earlier and sessions[2]["seconds"] == 8.0 and len(sessions) == 3
    assert [entry.name for entry in path.parent.iterdir()] == ["wall_time.json"]  # no temporary file left


@pytest.mark.parametrize("content", [
    None, "not json", "[]", '{"runs": []}', '{"sessions": 3}',
])
def test_an_unreadable_wall_time_file_has_no_sessions(tmp_path, content):
    path = tmp_path / "wall_time.json"
    if content is not None:
        path.write_text(content)
    assert WallClockCallback.read_sessions(path) == []


def test_sessions_without_a_valid_duration_are_left_out(tmp_path):
    path = tmp_path / "wall_time.json"
    path.write_text(json.dumps({"sessions": [{"seconds": 3}, {"seconds": -1.0}, {"seconds": "2"}, {}]}))
    assert WallClockCallback.read_sessions(path) == [{"seconds": 3}]


# ---------------------------------------------------------------------------- episodes and progress
def test_each_ended_episode_is_counted_and_logged_with_divergence_as_its_penalty():
    model, progress = stand_in_model(), TrainingProgress()
    log = EpisodeLogCallback(progress, divergence_loss=9.0)
    start(log, model)
    ended = {"episode": {"r": -3.0}, "val_loss": math.nan, "best_val_loss": 1.25, "lr": 1e-3, "diverged": True}
    log.update_locals({"dones": np.array([True, False]), "infos": [ended, {}]})
    log.on_step()
    assert progress.episodes == 1
    assert model.logger.name_to_value == {
        "episode/return": -3.0, "episode/final_val_loss": 9.0, "episode/best_val_loss": 1.25,
        "episode/final_log10_lr": pytest.approx(-3.0), "episode/diverged": 1.0,
    }


def test_an_episode_cut_at_the_end_of_a_family_round_is_counted_but_not_logged():
    model, progress = stand_in_model(), TrainingProgress()
    log = EpisodeLogCallback(progress, divergence_loss=9.0)
    start(log, model)
    cut = {"episode": {"r": 0.0}, "val_loss": 1.0, "lr": 1e-3, "TimeLimit.truncated": True}
    log.update_locals({"dones": np.array([True]), "infos": [cut]})
    log.on_step()
    assert progress.episodes == 1 and model.logger.name_to_value == {}


def test_training_progress_reads_back_from_its_dict():
    progress = TrainingProgress(episodes=7, evaluations=2, next_evaluation_episode=10, best_score=0.5,
                                best_timesteps=40, last_score=0.6, wall_time_s=3.5,
                                history=[{"timesteps": 40, "episodes": 5, "score": 0.5}])
    assert TrainingProgress.from_dict(json.loads(json.dumps(progress.to_dict()))) == progress


# ---------------------------------------------------------------------------- held-out evaluation
@pytest.fixture
def untrained():
    """An untrained PPO on the tiny task behind VecNormalize, as train() builds it (no learning)."""
    from .conftest import TINY

    env = VecNormalize(DummyVecEnv([lambda: LRControlEnv(name="mnist1d-mlp", dataset="mnist1d", model="mlp",
                                                          device="cpu", **TINY)]))
    model = PPO("MlpPolicy", env, policy_kwargs={"net_arch": {"pi": [32], "vf": [32]}}, seed=0, device="cpu")
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def test_held_out_evaluation_scores_the_mean_best_validation_loss_and_saves_each_new_best(untrained, tiny_task):
    runs = [(tiny_task, 1_000_000), (tiny_task, 1_000_001)]
    progress, saved = TrainingProgress(), []
    evaluation = HeldOutEvalCallback(runs, {"device": "cpu"}, 5, progress, lambda *args: saved.append(args))
    start(evaluation, untrained)
    agent = PPOAgent(untrained.policy, untrained.get_vec_normalize_env(), "scale")
    expected = np.mean([run_episode(agent, task, seed, device="cpu").final_info["best_val_loss"]
                        for task, seed in runs])
    evaluation.on_step()  # episode 0: the first evaluation is due
    assert progress.history == [{"timesteps": 0, "episodes": 0, "score": pytest.approx(expected)}]
    assert saved == [(0, pytest.approx(expected))] and progress.best_score == pytest.approx(expected)
    assert progress.next_evaluation_episode == 5 and evaluation.seconds > 0

    progress.episodes, untrained.num_timesteps = 4, 16
    evaluation.on_step()  # not due before episode 5
    assert len(progress.history) == 1
    untrained.num_timesteps = 40
    evaluation.on_step()  # the last step of the run
    evaluation.on_training_end()  # the final policy is scored too; the same policy is no new best
    assert [row["timesteps"] for row in progress.history] == [0, 40] and len(saved) == 1
    assert progress.evaluations == 2 and progress.last_score == pytest.approx(expected)


def test_held_out_runs_as_a_population_score_as_single_episodes(untrained, tiny_task):
    from .test_population_env import RTOL

    runs = [(tiny_task, seed) for seed in (1_000_000, 1_000_001, 1_000_002)]
    scores = []
    for population in (False, True):
        evaluation = HeldOutEvalCallback(runs, {"device": "cpu"}, 1, TrainingProgress(), lambda *args: None,
                                         population=population)
        start(evaluation, untrained)
        scores.append(evaluation.evaluate())
    assert scores[1] == pytest.approx(scores[0], rel=RTOL)


@pytest.mark.slow
def test_held_out_runs_in_the_training_workers_score_as_in_this_process(untrained, monkeypatch):
    from lrgym.tasks.family import load_family
    from lrgym.train import held_out_runs
    from lrgym.vec_env.subproc_population import SubprocPopulationVecEnv

    from .test_family import FAST

    family = load_family("mnist1d-family", **FAST)
    runs = held_out_runs(family, 3, seeds=2)  # 3 validation instances x 2 seeds: 3 populations of 2
    in_process = HeldOutEvalCallback(runs, {"device": "cpu"}, 1, TrainingProgress(), lambda *args: None)
    start(in_process, untrained)
    expected = in_process.evaluate()
    workers = SubprocPopulationVecEnv(family, 2, processes=2, device="cpu")
    monkeypatch.setattr(untrained, "get_env", lambda: workers)  # what training on populations gives
    calls, call = [], workers.map_in_workers
    monkeypatch.setattr(workers, "map_in_workers", lambda *args: calls.append(args) or call(*args))
    in_workers = HeldOutEvalCallback(runs, {"device": "cpu"}, 1, TrainingProgress(), lambda *args: None,
                                     population=True)
    start(in_workers, untrained)
    # As after a PPO update, the policy holds its last action distribution (tensors with gradients).
    untrained.policy.evaluate_actions(torch.zeros((2, *untrained.observation_space.shape)), torch.zeros((2, 1)))
    try:
        assert in_workers.evaluate() == pytest.approx(expected, rel=1e-3)
        assert len(calls) == 1
    finally:
        workers.close()


# ---------------------------------------------------------------------------- in a real run
@pytest.mark.slow
def test_in_a_tiny_run_the_callbacks_checkpoint_time_and_evaluate(tmp_path, tiny_task):
    out = tmp_path / "run"
    agent = tiny_agent(eval_every_episodes=20, eval_episodes=1, checkpoint_every_rollouts=2)
    result = train_tiny(out, tiny_task, timesteps=120, agent=agent)  # 3 rollouts of 40 decisions
    assert [path.name for path in periodic_checkpoints(out / "periodic")] == ["step-000000080", "step-000000120"]
    (session,) = WallClockCallback.read_sessions(out / "wall_time.json")
    assert session["seconds"] == pytest.approx(result.wall_time_s, abs=0.2)
    assert 0 < result.rollout_s + result.update_s + result.evaluation_s <= result.wall_time_s
    assert result.evaluation_s > 0 and result.update_s > 0
    card = json.loads((out / "card.json").read_text())
    assert [row["episodes"] for row in card["run"]["held_out_history"]] == [0, 20, 30]  # and at the end
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    fractions = [events.Scalars(f"time/{phase}_fraction")[-1].value for phase in ("rollout", "update", "evaluation")]
    assert sum(fractions) == pytest.approx(1.0, abs=1e-5)
    assert len(events.Scalars("episode/return")) == result.episodes == 30

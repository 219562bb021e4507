"""Where a training session starts and its wall clock (lrgym/resume.py): a fresh run, a resumed
one, and a run killed before its first periodic checkpoint, which ``--resume`` starts again."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lrgym.callbacks import periodic_checkpoints
from lrgym.resume import TRAINING_SEED_START, WALL_TIME_FILE, WallClockCallback, starting_point, wall_clock
from lrgym.tasks.specs import AgentSpec, TaskSpec

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "mnist1d-mlp-ppo"


def shipped_run(folder: Path) -> tuple[TaskSpec, AgentSpec]:
    """``folder`` holding a run's first save and nothing periodic (the shipped controller's files),
    and the task and agent that run was trained with."""
    shutil.copytree(SHIPPED, folder)
    card = json.loads((folder / "card.json").read_text())
    task, agent = TaskSpec(**card["task"]), AgentSpec(**card["agent"])
    card["task"] = task.to_dict()  # a card of today's fields, as a run started now writes
    (folder / "card.json").write_text(json.dumps(card))
    return task, agent


def test_a_fresh_run_starts_from_nothing_in_an_empty_folder(tmp_path, tiny_task):
    start = starting_point(tmp_path, False, tiny_task, AgentSpec("ppo", "ppo"), None, 1)
    assert (start.progress.episodes, start.first_seed, start.resume_from, start.restarted) == (
        0, TRAINING_SEED_START, None, False)


def test_resume_where_no_run_was_started_says_so(tmp_path, tiny_task):
    with pytest.raises(FileNotFoundError, match="no training run to resume there; start one without --resume"):
        starting_point(tmp_path, True, tiny_task, AgentSpec("ppo", "ppo"), None, 1)


def test_resume_of_a_run_killed_before_any_save_starts_it_again(tmp_path, tiny_task, capsys):
    (tmp_path / WALL_TIME_FILE).write_text(json.dumps({"sessions": [{"started": None, "seconds": 7.9}]}))
    start = starting_point(tmp_path, True, tiny_task, AgentSpec("ppo", "ppo"), None, 1)
    assert start.restarted and start.resume_from is None and start.progress.episodes == 0
    assert "starting it again from the beginning" in capsys.readouterr().err
    clock = wall_clock(tmp_path, time.perf_counter(), start)
    clock.stop_ticking()
    assert clock.earlier_s == 7.9  # the killed session still counts
    assert [session["seconds"] for session in WallClockCallback.read_sessions(tmp_path / WALL_TIME_FILE)][0] == 7.9


def test_a_run_stopped_before_its_first_periodic_checkpoint_is_restarted_by_resume_only(tmp_path):
    out = tmp_path / "run"
    task, agent = shipped_run(out)
    with pytest.raises(ValueError, match="stopped before its first periodic checkpoint: add --resume"):
        starting_point(out, False, task, agent, None, 1)
    assert starting_point(out, True, task, agent, None, 1).restarted
    with pytest.raises(ValueError, match="cannot resume: the task spec differs from the saved run in steps"):
        starting_point(out, True, task.replace(steps=task.steps + 1), agent, None, 1)


def test_a_run_saved_before_a_task_field_existed_resumes_while_the_field_holds_its_default(tmp_path):
    out = tmp_path / "run"
    task, agent = shipped_run(out)
    card = json.loads((out / "card.json").read_text())
    del card["task"]["validation_percent"]  # a card written before the field was added
    (out / "card.json").write_text(json.dumps(card))
    assert starting_point(out, True, task, agent, None, 1).restarted
    with pytest.raises(ValueError, match="differs from the saved run in validation_percent"):
        starting_point(out, True, task.replace(validation_percent=10), agent, None, 1)


def test_the_wall_clock_ticks_between_training_steps(tmp_path):
    path = tmp_path / WALL_TIME_FILE
    clock = WallClockCallback(path, time.perf_counter(), [], every_s=0.05)
    clock.start_ticking()
    time.sleep(0.5)  # no training step, no callback: the thread alone writes
    ticked = WallClockCallback.read_sessions(path)[-1]["seconds"]
    clock.stop_ticking()
    assert 0.3 <= ticked <= 0.6 and 0.5 <= WallClockCallback.read_sessions(path)[-1]["seconds"] < 1.5


@pytest.mark.slow
def test_a_kill_in_the_first_rollout_loses_at_most_5_s_and_resume_trains_from_the_start(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "lrgym.cli", "train", "mnist1d-mlp", "--out", str(out), "--no-progress",
               "--timesteps", "240", "--device", "cpu", "--set", "steps=200", "--set", "batch_size=32",
               "--set", "val_size=200"]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for marker in (WALL_TIME_FILE, "card.json"):  # the session's start; the held-out evaluation's first save
        while not (out / marker).is_file():
            assert process.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        if marker == WALL_TIME_FILE:
            session_started = time.perf_counter()
    time.sleep(1.0)
    process.send_signal(signal.SIGKILL)
    process.wait()
    elapsed = time.perf_counter() - session_started
    assert periodic_checkpoints(out / "periodic") == []  # killed in the first rollout
    (session,) = WallClockCallback.read_sessions(out / WALL_TIME_FILE)
    assert elapsed - 5.5 <= session["seconds"] <= elapsed + 0.5
    refused = subprocess.run(command, env=environment, capture_output=True, text=True)
    assert refused.returncode == 2 and "add --resume" in refused.stderr
    resumed = subprocess.run([*command, "--resume"], env=environment, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-1000:]
    card = json.loads((out / "card.json").read_text())
    assert card["run"]["timesteps"] == 240 and card["threads"] == 1
    sessions = WallClockCallback.read_sessions(out / WALL_TIME_FILE)
    assert len(sessions) == 2 and card["run"]["wall_time_s"] >= sessions[0]["seconds"] + sessions[1]["seconds"] - 1

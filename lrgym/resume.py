"""Where a training session starts: a fresh run, or the run's last periodic checkpoint.

A fresh run refuses a folder that already holds one; a resumed run refuses a task, family
or agent spec other than the saved run's, and its wall clock counts the earlier sessions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrgym.callbacks import TrainingProgress, WallClockCallback, periodic_checkpoints
from lrgym.checkpoints.checkpoint import CARD_FILE, TRAINING_ROLES, read_card
from lrgym.tasks.family import TaskFamily
from lrgym.tasks.specs import AgentSpec, TaskSpec

TRAINING_SEED_START = 10_000
WALL_TIME_FILE = "wall_time.json"


@dataclass
class StartingPoint:
    """Where a training session starts: from nothing, or from the run's last periodic checkpoint."""

    progress: TrainingProgress
    first_seed: int
    resume_from: Path | None = None


def starting_point(
    out: Path, resume: bool, task: TaskSpec, agent: AgentSpec, family: TaskFamily | None, envs_in_flight: int
) -> StartingPoint:
    """A fresh run (refused where ``out`` already holds one), or the last periodic checkpoint's state.

    Resumed training seeds start past the episodes already counted and past the episodes
    that were in flight in the ``envs_in_flight`` envs when the checkpoint was written.
    """
    if resume:
        candidates = periodic_checkpoints(out / "periodic")
        if not candidates:
            raise FileNotFoundError(f"{out}: no periodic checkpoint to resume from")
        last = candidates[-1]
        last_card = read_card(last, TRAINING_ROLES)
        _check_same_run(last_card, task, agent, last, family)
        progress = TrainingProgress.from_dict(last_card["training_state"])
        return StartingPoint(progress, TRAINING_SEED_START + progress.episodes + envs_in_flight, last)
    if (out / CARD_FILE).exists() or periodic_checkpoints(out / "periodic"):
        raise ValueError(f"{out} already holds a training run: add --resume, or choose another --out")
    return StartingPoint(TrainingProgress(), TRAINING_SEED_START)


def wall_clock(out: Path, started: float, start: StartingPoint) -> WallClockCallback:
    """The run's wall clock, counting the earlier sessions of a resumed run."""
    resumed = start.resume_from is not None
    earlier_sessions = WallClockCallback.read_sessions(out / WALL_TIME_FILE) if resumed else []
    if resumed and not earlier_sessions:  # a run from before wall_time.json: up to its checkpoint
        earlier_sessions = [{"started": None, "seconds": start.progress.wall_time_s}]
    clock = WallClockCallback(out / WALL_TIME_FILE, started, earlier_sessions)
    clock.write()
    return clock



def _check_same_run(
    card: dict[str, Any], task: TaskSpec, agent: AgentSpec, where: Path, family: TaskFamily | None = None
) -> None:
    """Resuming with another task, family or agent spec would mix two runs: refuse."""
    pairs = [("task", card["task"], task.to_dict()), ("agent", card["agent"], agent.to_dict()),
             ("family", card.get("family") or {}, family.to_dict() if family else {})]
    for what, saved, now in pairs:
        now = json.loads(json.dumps(now))  # as the card holds it: tuples are lists
        if saved != now:
            changed = sorted(key for key in set(saved) | set(now) if saved.get(key) != now.get(key))
            raise ValueError(
                f"{where}: cannot resume: the {what} spec differs from the saved run in {', '.join(changed)}"
            )

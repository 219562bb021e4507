"""Where a training session starts (fresh, resumed, or started again), and the run's wall clock.

- A fresh run refuses a folder that already holds one.
- ``--resume`` continues from the run's last periodic checkpoint, refusing a task, family
  or agent spec other than the saved run's.
- ``--resume`` on a run stopped before its first periodic checkpoint was complete (killed
  in its first rollout, or during its first save) starts it again from the beginning in
  the same folder: nothing it learnt was saved to continue from, and the settings are
  checked against the run's card when the held-out evaluation had saved one.
- The wall clock (:class:`WallClockCallback`) counts every session of the run, restarted
  and resumed ones included, to within ``every_s`` of a kill at any moment.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from lrgym.callbacks import TrainingProgress, periodic_checkpoints
from lrgym.checkpoints.checkpoint import CARD_FILE, TRAINING_ROLES, read_card
from lrgym.tasks.family import TaskFamily
from lrgym.tasks.specs import AgentSpec, TaskSpec, without_later_defaults

TRAINING_SEED_START = 10_000
WALL_TIME_FILE = "wall_time.json"
RUN_TRACES = (CARD_FILE, WALL_TIME_FILE, "tensorboard", "periodic")  # what a started run leaves in its folder


@dataclass
class StartingPoint:
    """Where a training session starts: from nothing, or from the run's last periodic checkpoint.

    ``restarted``: from nothing again, in the folder of a run stopped before its first
    periodic checkpoint (its earlier sessions still count on the wall clock).
    """

    progress: TrainingProgress
    first_seed: int
    resume_from: Path | None = None
    restarted: bool = False


def starting_point(
    out: Path, resume: bool, task: TaskSpec, agent: AgentSpec, family: TaskFamily | None, envs_in_flight: int
) -> StartingPoint:
    """A fresh run (refused where ``out`` already holds one), the last periodic checkpoint's state,
    or, with ``resume`` and no periodic checkpoint yet, the run started again from the beginning.

    Resumed training seeds start past the episodes already counted and past the episodes
    that were in flight in the ``envs_in_flight`` envs when the checkpoint was written.
    """
    candidates = periodic_checkpoints(out / "periodic")
    if resume and candidates:
        last = candidates[-1]
        last_card = read_card(last, TRAINING_ROLES)
        _check_same_run(last_card, task, agent, last, family)
        if not isinstance(last_card.get("training_state"), dict):  # an upgraded or hand-made card
            raise ValueError(f"{last / CARD_FILE}: the card has no training_state to resume from")
        progress = TrainingProgress.from_dict(last_card["training_state"])
        return StartingPoint(progress, TRAINING_SEED_START + progress.episodes + envs_in_flight, last)
    if resume:
        if not any((out / trace).exists() for trace in RUN_TRACES):
            raise FileNotFoundError(f"{out}: no training run to resume there; start one without --resume")
        if (out / CARD_FILE).is_file():  # the held-out evaluation's first save: the run's settings
            _check_same_run(read_card(out), task, agent, out / CARD_FILE, family)
        print(f"{out}: the run stopped before its first periodic checkpoint: starting it again from the "
              "beginning (its earlier sessions still count on the wall clock)", file=sys.stderr, flush=True)
        return StartingPoint(TrainingProgress(), TRAINING_SEED_START, restarted=True)
    if candidates:
        raise ValueError(f"{out} already holds a training run: add --resume, or choose another --out")
    if (out / CARD_FILE).exists():
        raise ValueError(f"{out} holds a training run stopped before its first periodic checkpoint: add --resume "
                         "to start it again from the beginning, or choose another --out")
    return StartingPoint(TrainingProgress(), TRAINING_SEED_START)


def wall_clock(out: Path, started: float, start: StartingPoint) -> WallClockCallback:
    """The run's wall clock, counting the earlier sessions of a resumed or restarted run, already ticking."""
    continued = start.resume_from is not None or start.restarted
    earlier_sessions = WallClockCallback.read_sessions(out / WALL_TIME_FILE) if continued else []
    if start.resume_from is not None and not earlier_sessions:  # a run from before wall_time.json
        earlier_sessions = [{"started": None, "seconds": start.progress.wall_time_s}]
    clock = WallClockCallback(out / WALL_TIME_FILE, started, earlier_sessions)
    clock.start_ticking()
    return clock


def _check_same_run(
    card: dict[str, Any], task: TaskSpec, agent: AgentSpec, where: Path, family: TaskFamily | None = None
) -> None:
    """Resuming with another task, family or agent spec would mix two runs: refuse."""
    # A task field added since the run was saved, holding its default, is no difference.
    pairs = [("task", without_later_defaults(card["task"]), task.identity()), ("agent", card["agent"], agent.to_dict()),
             ("family", card.get("family") or {}, family.to_dict() if family else {})]
    for what, saved, now in pairs:
        now = json.loads(json.dumps(now))  # as the card holds it: tuples are lists
        if saved != now:
            changed = sorted(key for key in set(saved) | set(now) if saved.get(key) != now.get(key))
            raise ValueError(
                f"{where}: cannot resume: the {what} spec differs from the saved run in {', '.join(changed)}"
            )


class WallClockCallback(BaseCallback):
    """Records how long every session of a run has lasted in ``path`` (JSON), at least every ``every_s``.

    A periodic checkpoint knows the wall time up to its save; a run killed later and
    resumed has spent more. This file, rewritten atomically while the run goes, keeps
    the time each session really ran (to within ``every_s`` of a kill). It is rewritten
    from a background thread (:meth:`start_ticking`) as well as at SB3's steps, because a
    first rollout can run a minute (trainees training, a held-out evaluation) before SB3
    calls any callback.

    :param started: ``time.perf_counter()`` at the start of this session.
    :param earlier_sessions: the sessions before this one (``read_sessions``).
    """

    def __init__(self, path: Path, started: float, earlier_sessions: list[dict[str, Any]], every_s: float = 5.0):
        super().__init__()
        self.path = Path(path)
        self.started = started
        self.earlier = list(earlier_sessions)
        self.every_s = every_s
        self._began = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._last_write = -math.inf
        self._lock = threading.Lock()  # the ticking thread and the training loop both write
        self._stop = threading.Event()

    @property
    def earlier_s(self) -> float:
        return float(sum(session["seconds"] for session in self.earlier))

    @staticmethod
    def read_sessions(path: Path) -> list[dict[str, Any]]:
        """The sessions recorded in ``path`` (none when it is missing or unreadable)."""
        try:
            sessions = json.loads(Path(path).read_text())["sessions"]
            return [s for s in sessions if isinstance(s.get("seconds"), (int, float)) and s["seconds"] >= 0]
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return []

    def write(self) -> None:
        with self._lock:
            now = time.perf_counter()
            self._last_write = now
            sessions = [*self.earlier, {"started": self._began, "seconds": round(now - self.started, 1)}]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps({"sessions": sessions}, indent=1) + "\n")
            os.replace(temporary, self.path)

    def start_ticking(self) -> None:
        """Write now, then every ``every_s`` from a daemon thread until :meth:`stop_ticking`."""
        self.write()

        def tick() -> None:
            while not self._stop.wait(self.every_s):
                self.write()

        threading.Thread(target=tick, name="lrgym-wall-clock", daemon=True).start()

    def stop_ticking(self) -> None:
        """Stop the thread and write the session's final time."""
        self._stop.set()
        self.write()

    def _on_step(self) -> bool:
        if time.perf_counter() - self._last_write >= self.every_s:
            self.write()
        return True

    def _on_training_end(self) -> None:
        self.write()

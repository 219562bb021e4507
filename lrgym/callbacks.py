"""SB3 callbacks of meta-training: episode logging, held-out evaluation, checkpoints, progress, timing.

Everything :func:`lrgym.train.train` adds to PPO's loop is one of these callbacks
(SB3's extension point), so the loop itself stays SB3's; the run's wall clock, which also
ticks between callbacks, is :class:`lrgym.resume.WallClockCallback`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import TensorBoardOutputFormat

from lrgym.agents.population_runs import run_agent_jobs
from lrgym.agents.ppo import PPOAgent
from lrgym.checkpoints.policy_files import ObservationNormalizer
from lrgym.environment.lr_control_env import LRControlEnv
from lrgym.tasks.specs import TaskSpec


@dataclass
class TrainingProgress:
    """What a run has done so far; saved in every periodic checkpoint's card to resume from."""

    episodes: int = 0
    evaluations: int = 0
    next_evaluation_episode: int = 0
    best_score: float | None = None  # mean held-out best validation loss of the best controller
    best_timesteps: int | None = None
    last_score: float | None = None
    wall_time_s: float = 0.0  # of the earlier sessions of a resumed run
    history: list[dict[str, float]] = field(default_factory=list)  # one row per evaluation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingProgress:
        return cls(**data)


def summary_writer(callback: BaseCallback) -> Any:
    """The TensorBoard ``SummaryWriter`` behind SB3's logger (None when it logs no TensorBoard)."""
    for output in callback.logger.output_formats:
        if isinstance(output, TensorBoardOutputFormat):
            return output.writer
    return None


def log_scalars(callback: BaseCallback, values: dict[str, float]) -> None:
    """Write ``values`` at the current step count, each one (SB3's ``logger.record`` keeps only
    the last value of a key between two dumps, i.e. one per rollout)."""
    writer = summary_writer(callback)
    for tag, value in values.items():
        if writer is not None:
            writer.add_scalar(tag, value, callback.num_timesteps)
        else:
            callback.logger.record(tag, value)


def _loss_or_penalty(value: float | None, penalty: float) -> float:
    return penalty if value is None or not math.isfinite(value) else float(value)


class EpisodeLogCallback(BaseCallback):
    """Per training episode, to TensorBoard: return, final and best validation loss, final lr."""

    def __init__(self, progress: TrainingProgress, divergence_loss: float) -> None:
        super().__init__()
        self.progress = progress
        self.divergence_loss = divergence_loss

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if not done:
                continue
            self.progress.episodes += 1
            if info.get("TimeLimit.truncated"):  # cut when its family population's round ended: no outcome
                continue
            log_scalars(self, {
                "episode/return": info["episode"]["r"],  # added by the Monitor wrapper
                "episode/final_val_loss": _loss_or_penalty(info.get("val_loss"), self.divergence_loss),
                "episode/best_val_loss": _loss_or_penalty(info.get("best_val_loss"), self.divergence_loss),
                "episode/final_log10_lr": math.log10(info["lr"]),
                "episode/diverged": float(info.get("diverged", False)),
            })
        return True


class HeldOutEvalCallback(BaseCallback):
    """Every ``every_episodes`` training episodes, run the deterministic controller on held-out runs.

    A held-out run is a (task, seed) pair: a single task's held-out seeds, or a task
    family's validation instances, each with its seed. The score is the mean over the
    runs of the best validation loss of the episode (a diverged episode counts its
    task's ``divergence_loss``); lower is better. A new best is saved with
    ``save_best(timesteps, score)``.

    :param runs: the (task, episode seed) pairs, the same at every evaluation.
    :param env_options: ``device``, ``data_dir``, ``download`` of the envs, built once per task.
    :param population: run the runs of each task as one population (lrgym.agents.population_runs)
        when the task allows it, and on the training env's worker processes when it has them
        (training on populations does).
    """

    def __init__(
        self,
        runs: list[tuple[TaskSpec, int]],
        env_options: dict[str, Any],
        every_episodes: int,
        progress: TrainingProgress,
        save_best: Callable[[int, float], None],
        population: bool = False,
    ) -> None:
        super().__init__()
        self.runs = list(runs)
        self.env_options = dict(env_options)
        self.every_episodes = int(every_episodes)
        self.progress = progress
        self.save_best = save_best
        self.seconds = 0.0  # time spent evaluating, kept out of the rollout time by PhaseTimerCallback
        self.population = population
        self._envs: dict[str, LRControlEnv] = {}  # single envs built once per task (run_agent_jobs)

    def _on_step(self) -> bool:
        if self.every_episodes > 0 and self.progress.episodes >= self.progress.next_evaluation_episode:
            self.evaluate()
        return True

    def _on_training_end(self) -> None:
        last = self.progress.history[-1]["timesteps"] if self.progress.history else None
        if self.every_episodes > 0 and last != self.num_timesteps:
            self.evaluate()  # the final policy competes too

    def evaluate(self) -> float:
        started = time.perf_counter()
        agent = PPOAgent(self.model.policy, self.model.get_vec_normalize_env(), self.runs[0][0].action)
        results = self._run_all(agent)
        penalties = [task.divergence_loss for task, _ in self.runs]
        best = [_loss_or_penalty(r.final_info["best_val_loss"], p) for r, p in zip(results, penalties, strict=True)]
        final = [_loss_or_penalty(r.trajectory[-1].val_loss, p) for r, p in zip(results, penalties, strict=True)]
        test = [_loss_or_penalty(r.final_info["test_loss_at_best_val"], p)
                for r, p in zip(results, penalties, strict=True)]
        score = float(np.mean(best))
        progress = self.progress
        progress.evaluations += 1
        progress.next_evaluation_episode = progress.episodes + self.every_episodes
        progress.last_score = score
        progress.history.append({"timesteps": self.num_timesteps, "episodes": progress.episodes, "score": score})
        log_scalars(self, {
            "eval/best_val_loss": score,
            "eval/final_val_loss": float(np.mean(final)),
            "eval/test_loss_at_best_val": float(np.mean(test)),
            "eval/return": float(np.mean([r.episode_return for r in results])),
            "eval/diverged": float(np.mean([r.diverged for r in results])),
        })
        writer = summary_writer(self)
        if writer is not None:
            labels = [f"{task.name} seed {seed}" for task, seed in self.runs]
            writer.add_figure("eval/lr_trajectory", _lr_figure(results, labels), self.num_timesteps)
        if progress.best_score is None or score < progress.best_score:
            progress.best_score, progress.best_timesteps = score, self.num_timesteps
            self.save_best(self.num_timesteps, score)
        self.seconds += time.perf_counter() - started
        return score

    def _run_all(self, agent: PPOAgent) -> list[Any]:
        """One episode per held-out run, in order: each task's runs as one population when asked
        (and it has more than one seed: a population of one is slower than the single env), on
        the training env's worker processes when it has them (idle between rollouts)."""
        groups: dict[str, list[int]] = {}
        for index, (task, _) in enumerate(self.runs):
            groups.setdefault(repr(task), []).append(index)
        jobs = [(self.runs[indices[0]][0], [self.runs[index][1] for index in indices]) for indices in groups.values()]
        venv = self.training_env.unwrapped
        if self.population and len(jobs) > 1 and hasattr(venv, "map_in_workers"):
            # For the workers, a frozen snapshot of the live policy (rebuilt as SB3's save does: deepcopy
            # refuses the non-leaf tensors a policy holds after an update) and statistics.
            policy = self.model.policy
            snapshot = type(policy)(**policy._get_constructor_parameters()).to("cpu")
            snapshot.load_state_dict(policy.state_dict())
            normalizer = ObservationNormalizer.from_vec_normalize(self.model.get_vec_normalize_env())
            costs = [task.steps * task.batch_size * len(seeds) for task, seeds in jobs]  # trainee examples
            acting = PPOAgent(snapshot, normalizer, agent.action_mode)
            by_job = venv.map_in_workers(run_agent_jobs, jobs, costs, acting, self.env_options)
        else:
            by_job = run_agent_jobs(jobs, agent, self.env_options, self.population, self._envs)
        results = {index: episode for indices, episodes in zip(groups.values(), by_job, strict=True)
                   for index, episode in zip(indices, episodes, strict=True)}
        return [results[index] for index in range(len(self.runs))]


def _lr_figure(results: list, labels: list[str]) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no backend or global state involved

    figure = Figure(figsize=(5, 3.2))
    axes = figure.subplots()
    for result, label in zip(results, labels, strict=True):
        axes.semilogy([row.step for row in result.trajectory], [row.lr for row in result.trajectory],
                      label=label)
    axes.set_xlabel("trainee step")
    axes.set_ylabel("learning rate")
    axes.legend(fontsize=6)
    figure.tight_layout()
    return figure


class PeriodicCheckpointCallback(BaseCallback):
    """After every ``every_rollouts`` PPO updates, ``save(folder)`` into ``periodic/step-N``; keeps ``keep``.

    Saved at the start of a rollout, i.e. just after an update: the saved step count
    counts only the experience the saved policy has learnt from, and resuming collects
    the next rollout from there.
    """

    def __init__(self, folder: Path, every_rollouts: int, save: Callable[[Path], None], keep: int = 2) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.every_rollouts = max(1, int(every_rollouts))
        self.save = save
        self.keep = keep
        self._rollouts = 0
        self._last_saved: int | None = None

    def _on_training_start(self) -> None:
        self._last_saved = self.model.num_timesteps  # a resumed run starts from a saved state

    def _on_rollout_start(self) -> None:
        if self._rollouts and self._rollouts % self.every_rollouts == 0:
            self.save_now()
        self._rollouts += 1

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self.save_now()

    def save_now(self) -> None:
        timesteps = self.model.num_timesteps
        if timesteps == self._last_saved:
            return
        self.save(self.folder / f"step-{timesteps:09d}")
        self._last_saved = timesteps
        import shutil

        for old in periodic_checkpoints(self.folder)[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)


def periodic_checkpoints(folder: Path) -> list[Path]:
    """The complete (card written) periodic checkpoints in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.glob("step-*") if (path / "card.json").is_file())


class ProgressBarCallback(BaseCallback):
    """A tqdm bar over environment steps: episodes done, time left, last held-out score."""

    def __init__(self, progress: TrainingProgress) -> None:
        super().__init__()
        self.progress = progress
        self.bar = None

    def _on_training_start(self) -> None:
        from tqdm import tqdm

        # SB3 finishes the rollout that crosses total_timesteps: count to where it really stops.
        per_rollout = getattr(self.model, "n_steps", 1) * self.training_env.num_envs  # off-policy: 1 step
        start = self.model.num_timesteps
        total = start + -(-(self.locals["total_timesteps"] - start) // per_rollout) * per_rollout
        self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        postfix = {"episodes": self.progress.episodes}
        if self.progress.last_score is not None:
            postfix["held_out"] = f"{self.progress.last_score:.4f}"
        self.bar.set_postfix(postfix, refresh=False)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


class PhaseTimerCallback(BaseCallback):
    """Wall time in rollout collection (trainee training, policy inference) vs PPO updates.

    Evaluation time (``evaluation.seconds``, spent inside rollouts) is counted apart.
    Logged as ``time/*`` fractions. Put it before the evaluation callback in the list,
    so that the final evaluation at training end is not counted as update time.
    """

    def __init__(self, evaluation: HeldOutEvalCallback | None = None) -> None:
        super().__init__()
        self.evaluation = evaluation
        self.rollout_seconds = 0.0
        self.update_seconds = 0.0
        self._phase: str | None = None
        self._mark = 0.0
        self._evaluation_at_mark = 0.0

    @property
    def evaluation_seconds(self) -> float:
        return self.evaluation.seconds if self.evaluation else 0.0

    def _on_training_start(self) -> None:
        self._phase = None

    def _on_rollout_start(self) -> None:
        now = time.perf_counter()
        if self._phase == "update":
            self.update_seconds += now - self._mark
            self._record()
        self._phase, self._mark, self._evaluation_at_mark = "rollout", now, self.evaluation_seconds

    def _on_rollout_end(self) -> None:
        now = time.perf_counter()
        evaluating = self.evaluation_seconds - self._evaluation_at_mark
        self.rollout_seconds += now - self._mark - evaluating
        self._phase, self._mark = "update", now

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        if self._phase == "update":
            self.update_seconds += time.perf_counter() - self._mark
        self._phase = None
        self._record()

    def _record(self) -> None:
        total = self.rollout_seconds + self.update_seconds + self.evaluation_seconds
        if total > 0:
            self.logger.record("time/rollout_fraction", self.rollout_seconds / total)
            self.logger.record("time/update_fraction", self.update_seconds / total)
            self.logger.record("time/evaluation_fraction", self.evaluation_seconds / total)

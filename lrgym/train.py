"""Meta-training a learning-rate controller with Stable-Baselines3 PPO (or sb3-contrib RecurrentPPO,
or any SB3 algorithm a recipe names: ``algorithm = "SAC"``).

Reads top to bottom: build the training environments (each trains trainees) and
their observation normalisation, build or resume the PPO model, attach the
callbacks (episode logging, held-out evaluation keeping the best controller,
periodic checkpoints, progress bar, timing), learn, save.

Seeds, in one place: training episodes use seeds from :data:`~lrgym.resume.TRAINING_SEED_START`
up, the held-out evaluation during training uses seeds from
:data:`HELD_OUT_SEED_START` (chosen to cover every initial rate), and ``lrgym evaluate`` uses 0..N-1, so the three never
overlap.

On a task family (:mod:`lrgym.tasks.family`) the training envs are family envs: each
training episode's seed draws a *train* instance and the trainee seed; with a population,
each round draws one train instance for all its members (:mod:`lrgym.vec_env.family_population`).
The held-out evaluation runs the first ``eval_episodes`` *validation* instances, instance
``k`` with seed ``HELD_OUT_SEED_START + k`` (and ``eval_seeds - 1`` more seeds each, see
:func:`held_out_runs`); test instances are never touched.

``seed`` seeds PPO (policy initialisation, action sampling). Resuming restores the
weights, optimizer state, step count and normalisation statistics, not the random
streams: a resumed run is a faithful continuation, not a bitwise replay.

Resuming reads SB3's own training state (``model.TAG.zip``, ``vecnormalize.TAG.pkl``),
which is pickled: resume only runs you made. Acting with the saved controller never
reads those files (:func:`lrgym.checkpoints.checkpoint.load_acting_policy`).
"""

from __future__ import annotations

import inspect
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecNormalize

from lrgym.callbacks import (
    EpisodeLogCallback,
    HeldOutEvalCallback,
    PeriodicCheckpointCallback,
    PhaseTimerCallback,
    ProgressBarCallback,
    TrainingProgress,
)
from lrgym.checkpoints.checkpoint import (
    CARD_FILE,
    algorithm_class,
    annotate_card,
    load_training_state,
    save_checkpoint,
    space_signature,
)
from lrgym.environment.lr_control_env import LRControlEnv, initial_lr_for_seed, resolve_device
from lrgym.resume import TRAINING_SEED_START, StartingPoint, WallClockCallback, starting_point, wall_clock
from lrgym.runners.backend import LOCAL, Backend, local_node, pin_threads
from lrgym.tasks.family import TaskFamily
from lrgym.tasks.specs import AgentSpec, TaskSpec
from lrgym.vec_env.training import make_training_env

WALL_TIME_NOTE = (
    "wall_time_s: every session of the run from the start of `lrgym train` until it ended or was killed "
    "(each session is recorded every 5 s from its start, so a kill loses at most 5 s of it), including time "
    "after the last periodic checkpoint that a resume trains again"
)
HELD_OUT_SEED_START = 5_000
# Agent spec params that configure this module rather than the SB3 class.
DEFAULTS = {
    "timesteps": 9_600,
    "eval_every_episodes": 50,  # 0: no held-out evaluation, the final controller is kept
    "eval_episodes": 6,
    "eval_seeds": 1,  # a family: seeds per validation instance (each instance's seeds run as one population)
    "checkpoint_every_rollouts": 1,
}


def held_out_runs(task: TaskSpec | TaskFamily, count: int, seeds: int = 1) -> list[tuple[TaskSpec, int]]:
    """The (task, seed) pairs of the held-out evaluation during training.

    A task: its :func:`held_out_seeds`. A family: its first ``count`` validation
    instances, instance ``k`` with seeds ``HELD_OUT_SEED_START + k + j * count`` for
    ``j < seeds`` (one seed: ``HELD_OUT_SEED_START + k``), the runs of an instance together.
    """
    if isinstance(task, TaskFamily):
        validation = task.indices("validation")
        if not 0 <= count <= len(validation):
            raise ValueError(
                f"eval_episodes must be between 0 and the {len(validation)} validation instances of "
                f"{task.name!r}, got {count}"
            )
        limit = (TRAINING_SEED_START - HELD_OUT_SEED_START) // max(1, count)
        if not 1 <= seeds <= limit:  # the held-out seeds stay below the training seeds
            raise ValueError(f"eval_seeds must be between 1 and {limit} with eval_episodes {count}, got {seeds}")
        instances = [task.instance(validation[k]) for k in range(count)]
        return [(instances[k], HELD_OUT_SEED_START + k + j * count) for k in range(count) for j in range(seeds)]
    return [(task, seed) for seed in held_out_seeds(task, count)]


def held_out_seeds(task: TaskSpec | LRControlEnv, count: int) -> list[int]:
    """``count`` seeds from :data:`HELD_OUT_SEED_START` whose initial rates cover ``initial_lrs`` evenly.

    The episode seed draws the initial rate; the first seeds in a row may all draw the
    same one, and a controller selected on those would never be scored on the others.
    """
    task = task.task if isinstance(task, LRControlEnv) else task
    if not 0 <= count <= 50:  # 100 * count seeds searched at most: stay below the training seeds
        raise ValueError(f"eval_episodes must be between 0 and 50, got {count}")
    per_rate = -(-count // len(set(task.initial_lrs)))
    taken: Counter[float] = Counter()
    seeds: list[int] = []
    seed = HELD_OUT_SEED_START
    while len(seeds) < count:
        initial_lr = initial_lr_for_seed(task, seed)
        if taken[initial_lr] < per_rate or seed >= HELD_OUT_SEED_START + 100 * count:
            seeds.append(seed)
            taken[initial_lr] += 1
        seed += 1
    return seeds


@dataclass
class TrainResult:
    """What a call of :func:`train` did (the same numbers are in the checkpoint cards)."""

    folder: Path
    timesteps: int
    episodes: int
    wall_time_s: float  # all sessions of the run
    session_time_s: float  # this call
    best_score: float | None
    best_timesteps: int | None
    rollout_s: float  # this call: collecting experience (trainee training, policy inference)
    update_s: float  # this call: PPO updates
    evaluation_s: float  # this call: held-out evaluation


def agent_setting(agent: AgentSpec, name: str) -> Any:
    return agent.params.get(name, DEFAULTS[name])


def train(
    task: TaskSpec | TaskFamily,
    agent: AgentSpec,
    out: str | Path,
    timesteps: int | None = None,
    n_envs: int = 1,
    population: int = 1,
    device: str = "auto",
    seed: int = 0,
    resume: bool = False,
    data_dir: str | None = None,
    download: bool = False,
    progress_bar: bool = True,
    extra_callbacks: list[BaseCallback] | None = None,
    backend: Backend = LOCAL,
    eval_every: int | None = None,
    threads: int | None = None,
    rollout: int | None = None,
) -> TrainResult:
    """Meta-train a controller with training recipe ``agent`` (kind ``ppo``, ``ppo-lstm`` or ``sb3``:
    :func:`recipe_algorithm`) on ``task``. The recipe's ``[task]`` fields are not applied here:
    ``task`` is the task as trained (``lrgym train`` applies them).

    :param task: a task, or a task family: trained on its train instances, selected on
        its validation instances (a family of one is its task).
    :param out: the run folder: the best controller (``card.json`` and the files it
        names, see :mod:`lrgym.checkpoints.checkpoint`), ``periodic/step-N/`` checkpoints,
        ``tensorboard/``, ``wall_time.json``.
    :param timesteps: total environment steps (controller decisions) of the run,
        counting earlier sessions when resuming; default from the agent spec.
    :param n_envs: trainees trained in parallel (subprocesses when more than one; Ray actors
        with the ray backend, the PPO updates staying in this process).
    :param population: trainees per process, trained in lock-step as one population
        (1: one single env per process).
    :param device: trainees and policy: ``auto`` (GPU when present), ``cpu``, ``cuda``.
    :param resume: continue from the last periodic checkpoint in ``out`` (unpickles SB3's
        training state: only on your own runs).
    :param extra_callbacks: more SB3 callbacks (tests use one to interrupt a run).
    :param backend: where the training envs run (:class:`lrgym.runners.pool.Backend`), and on how
        many torch threads each trainee and this process run (``backend.threads``, recorded in the card).
    :param eval_every: held-out evaluation every this many training episodes (0: none, the
        final controller is kept); default the agent spec's ``eval_every_episodes``.
    :param threads: torch threads of this process and of each worker (default: ``backend.threads``, 1
        unless ``--threads`` says otherwise); the benchmark varies it.
    :param rollout: controller decisions per PPO rollout, all envs together: ``n_steps`` becomes
        ``ceil(rollout / (n_envs * population))`` (default: the recipe's ``n_steps`` per env), so a
        population keeps the rollout size (and the number of updates) of a single env.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder: choose a folder for the run")
    if isinstance(task, TaskFamily) and task.single:
        task = task.instance(0)
    family = task if isinstance(task, TaskFamily) else None
    # What the spaces, the action mode and the card's task come from: the family's first
    # train instance (every instance has the same spaces).
    representative = family.instance(family.indices("train")[0]) if family else task
    timesteps = int(timesteps if timesteps is not None else agent_setting(agent, "timesteps"))
    if timesteps < 1:
        raise ValueError(f"timesteps must be a positive number of controller decisions, got {timesteps}")
    device_name = str(resolve_device(device))
    env_options = {"device": device_name, "data_dir": data_dir, "download": download}
    # here, in the envs' subprocesses and in Ray actors alike
    threads = pin_threads(backend.threads if threads is None else threads)
    started = time.perf_counter()

    start = starting_point(out, resume, representative, agent, family, n_envs * population)
    clock = wall_clock(out, started, start)  # ticking from here on: a kill at any moment loses at most 5 s
    logger, venv = None, None
    try:
        venv = make_training_env(task, n_envs, start.first_seed, env_options, population, backend, threads)
        workers = {"backend": backend.name, "nodes": sorted(set(venv.nodes)) if backend.is_ray else [local_node()]}
        if backend.is_ray:
            print(f"ray: {venv.placement()}", flush=True)
        model, vec_normalize = _build_model(agent, venv, start, representative, seed, device_name, rollout)
        logger = configure(str(out / "tensorboard"), ["tensorboard"])
        model.set_logger(logger)
        if model.num_timesteps >= timesteps:
            print(f"{out}: already trained for {model.num_timesteps} >= {timesteps} timesteps")
        eval_every = int(agent_setting(agent, "eval_every_episodes") if eval_every is None else eval_every)
        held_out = int(agent_setting(agent, "eval_episodes")), int(agent_setting(agent, "eval_seeds"))
        runs = held_out_runs(task, *held_out) if eval_every > 0 else []
        card = RunCard(
            representative, family, agent, model, start.progress, device_name, clock.earlier_s, started,
            {"n_envs": n_envs, "population": population, "workers": workers, "seed": seed, "threads": threads,
             "eval_every_episodes": eval_every,
             "seeds": {"training_from": TRAINING_SEED_START, "held_out": _held_out_record(runs, family)}},
        )
        callbacks, timer = _callbacks(
            out, agent, runs, env_options, eval_every, start.progress, model, vec_normalize, card, clock,
            population > 1, extra_callbacks or [], progress_bar,
        )
        model.learn(
            total_timesteps=max(0, timesteps - model.num_timesteps),
            callback=CallbackList(callbacks),
            reset_num_timesteps=False,
        )
        if not (out / CARD_FILE).exists():  # no held-out evaluation: keep the final controller
            save_checkpoint(out, model, vec_normalize, card({"rule": "final", "timesteps": model.num_timesteps}))
        # The kept controller's card also tells how the whole run went.
        annotate_card(out, "run", {
            "timesteps": model.num_timesteps,
            "episodes": start.progress.episodes,
            "wall_time_s": round(card.wall_time_s(), 1),
            "held_out_history": start.progress.history,
        })
    finally:
        clock.stop_ticking()  # the session's final time, also after an interruption
        if logger is not None:
            logger.close()  # flushes TensorBoard, also after an interruption
        if venv is not None:
            venv.close()
    session = time.perf_counter() - started
    return TrainResult(
        folder=out,
        timesteps=model.num_timesteps,
        episodes=start.progress.episodes,
        wall_time_s=clock.earlier_s + session,
        session_time_s=session,
        best_score=start.progress.best_score,
        best_timesteps=start.progress.best_timesteps,
        rollout_s=timer.rollout_seconds,
        update_s=timer.update_seconds,
        evaluation_s=timer.evaluation_seconds,
    )


def _build_model(
    agent: AgentSpec, venv: Any, start: StartingPoint, task: TaskSpec, seed: int, device: str,
    rollout: int | None = None,
) -> tuple[Any, VecNormalize]:
    """The SB3 model and its observation normalisation: new, or loaded to resume (its own ``n_steps``)."""
    if start.resume_from is not None:
        loaded = load_training_state(start.resume_from, task, env=venv, device=device)
        return loaded.model, loaded.vec_normalize
    name, algorithm = recipe_algorithm(agent)
    if rollout is not None and "n_steps" in inspect.signature(algorithm_class(agent.kind, name)).parameters:
        algorithm["n_steps"] = -(-int(rollout) // venv.num_envs)  # on-policy: the rollout, all envs together
    normalize = {"gamma": algorithm.get("gamma", 0.99), **agent.params.get("normalize", {})}
    vec_normalize = VecNormalize(venv, **normalize)
    policy = algorithm.pop("policy", "MlpLstmPolicy" if agent.kind == "ppo-lstm" else "MlpPolicy")
    cls = algorithm_class(agent.kind, name)
    return cls(policy, vec_normalize, seed=seed, device=device, verbose=0, **algorithm), vec_normalize


def recipe_algorithm(agent: AgentSpec) -> tuple[str | None, dict[str, Any]]:
    """A training recipe's SB3 class name (``None``: its kind's default) and keyword arguments.

    The spec's ``algorithm`` is a table of the class's keyword arguments, with the class
    named by its ``class`` key (``[algorithm] class = "SAC"``), or just the class name
    (``algorithm = "SAC"``: its default arguments).
    """
    algorithm = agent.params.get("algorithm", {})
    if isinstance(algorithm, str):
        return algorithm, {}
    if not isinstance(algorithm, dict):
        raise ValueError(f"agent {agent.name!r}: algorithm must be a class name or a table, got {algorithm!r}")
    kwargs = dict(algorithm)
    return kwargs.pop("class", None), kwargs


# ---------------------------------------------------------------------------- the checkpoint card
def _held_out_record(runs: list[tuple[TaskSpec, int]], family: TaskFamily | None) -> list[Any]:
    return [{"instance": held.name, "seed": seed} for held, seed in runs] if family else [seed for _, seed in runs]


class RunCard:
    """Builds the card of every checkpoint the run saves: what was trained, how, and how far.

    ``card(selection)`` is called at each save, so timesteps, episodes and wall time are
    those of that moment.
    """

    def __init__(
        self, task: TaskSpec, family: TaskFamily | None, agent: AgentSpec, model: Any, progress: TrainingProgress,
        device: str, earlier_s: float, started: float, run: dict[str, Any],
    ) -> None:
        self.task, self.family, self.agent, self.model, self.progress = task, family, agent, model, progress
        self.device, self.earlier_s, self.started, self.run = device, earlier_s, started, run

    def wall_time_s(self) -> float:
        """All sessions of the run until now."""
        return self.earlier_s + time.perf_counter() - self.started

    def __call__(self, selection: dict[str, Any]) -> dict[str, Any]:
        wall_time = round(self.wall_time_s(), 1)
        cls = type(self.model)
        return {
            "task": self.task.to_dict(),
            **({"family": self.family.to_dict()} if self.family else {}),
            "agent": self.agent.to_dict(),
            "signature": space_signature(self.task),
            "algorithm": f"{cls.__module__.split('.')[0]}.{cls.__name__}",
            "timesteps": self.model.num_timesteps,
            "episodes": self.progress.episodes,
            "wall_time_s": wall_time,
            "wall_time_note": WALL_TIME_NOTE,
            "device": {"trainee": self.device, "policy": str(self.model.device)},
            **{key: self.run[key] for key in ("n_envs", "population", "workers", "seed", "threads", "seeds")},
            "held_out_every_episodes": self.run["eval_every_episodes"],
            "selection": selection,
            "training_state": {**self.progress.to_dict(), "wall_time_s": wall_time},
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        }


# ---------------------------------------------------------------------------- callbacks
def _callbacks(
    out: Path, agent: AgentSpec, runs: list[tuple[TaskSpec, int]], env_options: dict[str, Any], eval_every: int,
    progress: TrainingProgress, model: Any, vec_normalize: VecNormalize, card: RunCard, clock: WallClockCallback,
    as_population: bool, extra: list[BaseCallback], progress_bar: bool,
) -> tuple[list[BaseCallback], PhaseTimerCallback]:
    """Episode logging, timing, the wall clock, held-out selection, periodic checkpoints, progress;
    and the timer, which reports where the session's time went."""
    selected_on = "validation instances" if card.family else "seeds"

    def save_best(at_timesteps: int, score: float) -> None:
        rule = f"lowest mean best validation loss on the held-out {selected_on}"
        save_checkpoint(out, model, vec_normalize, card({"rule": rule, "score": score, "timesteps": at_timesteps}))

    def save_periodic(folder: Path) -> None:
        save_checkpoint(folder, model, vec_normalize, card({"rule": "periodic", "timesteps": model.num_timesteps}))

    evaluation = HeldOutEvalCallback(runs, env_options, eval_every, progress, save_best, as_population)
    timer = PhaseTimerCallback(evaluation)
    callbacks = [
        EpisodeLogCallback(progress, card.task.divergence_loss),
        timer,  # before the evaluation: see PhaseTimerCallback
        clock,
        evaluation,
        PeriodicCheckpointCallback(
            out / "periodic", int(agent_setting(agent, "checkpoint_every_rollouts")), save_periodic
        ),
        *extra,
    ]
    if progress_bar:
        callbacks.append(ProgressBarCallback(progress))
    return callbacks, timer

"""Meta-training a learning-rate controller with Stable-Baselines3 PPO (or sb3-contrib RecurrentPPO).

Reads top to bottom: build the training environments (each trains trainees) and
their observation normalisation, build or resume the PPO model, attach the
callbacks (episode logging, held-out evaluation keeping the best controller,
periodic checkpoints, progress bar, timing), learn, save.

Seeds, in one place: training episodes use seeds from :data:`TRAINING_SEED_START`
up, the held-out evaluation during training uses seeds from
:data:`HELD_OUT_SEED_START` (chosen to cover every initial rate), and ``lrgym evaluate`` uses 0..N-1, so the three never
overlap.

On a task family (:mod:`lrgym.tasks.family`) the training envs are family envs: each
training episode's seed draws a *train* instance and the trainee seed. The held-out
evaluation runs the first ``eval_episodes`` *validation* instances, instance ``k`` with
seed ``HELD_OUT_SEED_START + k``; test instances are never touched.

``seed`` seeds PPO (policy initialisation, action sampling). Resuming restores the
weights, optimizer state, step count and normalisation statistics, not the random
streams: a resumed run is a faithful continuation, not a bitwise replay.

Resuming reads SB3's own training state (``model.TAG.zip``, ``vecnormalize.TAG.pkl``),
which is pickled: resume only runs you made. Acting with the saved controller never
reads those files (:func:`lrgym.checkpoints.checkpoint.load_acting_policy`).
"""

from __future__ import annotations

import json
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
    WallClockCallback,
    periodic_checkpoints,
)
from lrgym.checkpoints.checkpoint import (
    CARD_FILE,
    TRAINING_ROLES,
    algorithm_class,
    annotate_card,
    load_training_state,
    read_card,
    save_checkpoint,
    space_signature,
)
from lrgym.environment.lr_control_env import LRControlEnv, initial_lr_for_seed, resolve_device
from lrgym.runners.backend import LOCAL, Backend, local_node
from lrgym.tasks.family import TaskFamily
from lrgym.tasks.specs import AgentSpec, TaskSpec
from lrgym.vec_env.training import make_training_env

WALL_TIME_FILE = "wall_time.json"
WALL_TIME_NOTE = (
    "wall_time_s: every session of the run from the start of `lrgym train` until it ended or was killed "
    "(each session is recorded every 5 s, so a kill loses at most 5 s of it), including time after the last "
    "periodic checkpoint that a resume trains again"
)
TRAINING_SEED_START = 10_000
HELD_OUT_SEED_START = 5_000
# Agent spec params that configure this module rather than the SB3 class.
DEFAULTS = {
    "timesteps": 9_600,
    "eval_every_episodes": 50,  # 0: no held-out evaluation, the final controller is kept
    "eval_episodes": 6,
    "checkpoint_every_rollouts": 1,
}


def held_out_runs(task: TaskSpec | TaskFamily, count: int) -> list[tuple[TaskSpec, int]]:
    """The (task, seed) pairs of the held-out evaluation during training.

    A task: its :func:`held_out_seeds`. A family: its first ``count`` validation
    instances, instance ``k`` with seed ``HELD_OUT_SEED_START + k``.
    """
    if isinstance(task, TaskFamily):
        validation = task.indices("validation")
        if not 0 <= count <= len(validation):
            raise ValueError(
                f"eval_episodes must be between 0 and the {len(validation)} validation instances of "
                f"{task.name!r}, got {count}"
            )
        return [(task.instance(validation[k]), HELD_OUT_SEED_START + k) for k in range(count)]
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
) -> TrainResult:
    """Meta-train a controller of kind ``agent.kind`` (``ppo`` or ``ppo-lstm``) on ``task``.

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
    :param backend: where the training envs run (:class:`lrgym.runners.pool.Backend`).
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
    cls = algorithm_class(agent.kind)
    timesteps = int(timesteps if timesteps is not None else agent_setting(agent, "timesteps"))
    if timesteps < 1:
        raise ValueError(f"timesteps must be a positive number of controller decisions, got {timesteps}")
    device_name = str(resolve_device(device))
    env_options = {"device": device_name, "data_dir": data_dir, "download": download}
    started = time.perf_counter()

    # ---------------------------------------------------------------- fresh run or resume
    if resume:
        candidates = periodic_checkpoints(out / "periodic")
        if not candidates:
            raise FileNotFoundError(f"{out}: no periodic checkpoint to resume from")
        last = candidates[-1]
        last_card = read_card(last, TRAINING_ROLES)
        _check_same_run(last_card, representative, agent, last, family)
        progress = TrainingProgress.from_dict(last_card["training_state"])
        first_seed = TRAINING_SEED_START + progress.episodes + n_envs * population
    else:
        if (out / CARD_FILE).exists() or periodic_checkpoints(out / "periodic"):
            raise ValueError(f"{out} already holds a training run: add --resume, or choose another --out")
        progress = TrainingProgress()
        first_seed = TRAINING_SEED_START
    venv = make_training_env(task, n_envs, first_seed, env_options, population, backend)
    workers = {"backend": backend.name, "nodes": sorted(set(venv.nodes)) if backend.is_ray else [local_node()]}
    if backend.is_ray:
        print(f"ray: {venv.placement()}", flush=True)
    logger, clock = None, None
    try:
        if resume:
            loaded = load_training_state(last, representative, env=venv, device=device_name)
            model, vec_normalize = loaded.model, loaded.vec_normalize
        else:
            algorithm = dict(agent.params.get("algorithm", {}))
            normalize = {"gamma": algorithm.get("gamma", 0.99), **agent.params.get("normalize", {})}
            vec_normalize = VecNormalize(venv, **normalize)
            policy = algorithm.pop("policy", "MlpLstmPolicy" if agent.kind == "ppo-lstm" else "MlpPolicy")
            model = cls(policy, vec_normalize, seed=seed, device=device_name, verbose=0, **algorithm)
        logger = configure(str(out / "tensorboard"), ["tensorboard"])
        model.set_logger(logger)
        if model.num_timesteps >= timesteps:
            print(f"{out}: already trained for {model.num_timesteps} >= {timesteps} timesteps")

        eval_every = int(agent_setting(agent, "eval_every_episodes"))
        runs = held_out_runs(task, int(agent_setting(agent, "eval_episodes"))) if eval_every > 0 else []
        held_out: list[Any] = (
            [{"instance": held.name, "seed": seed} for held, seed in runs] if family else [seed for _, seed in runs]
        )

        # ------------------------------------------------------------ the checkpoint card
        earlier_sessions = WallClockCallback.read_sessions(out / WALL_TIME_FILE) if resume else []
        if resume and not earlier_sessions:  # a run from before wall_time.json: up to its checkpoint
            earlier_sessions = [{"started": None, "seconds": progress.wall_time_s}]
        clock = WallClockCallback(out / WALL_TIME_FILE, started, earlier_sessions)
        clock.write()
        wall_before = clock.earlier_s

        def card(selection: dict[str, Any]) -> dict[str, Any]:
            wall_time = wall_before + time.perf_counter() - started
            return {
                "task": representative.to_dict(),
                **({"family": family.to_dict()} if family else {}),
                "agent": agent.to_dict(),
                "signature": space_signature(representative),
                "algorithm": f"{cls.__module__.split('.')[0]}.{cls.__name__}",
                "timesteps": model.num_timesteps,
                "episodes": progress.episodes,
                "wall_time_s": round(wall_time, 1),
                "wall_time_note": WALL_TIME_NOTE,
                "device": {"trainee": device_name, "policy": str(model.device)},
                "n_envs": n_envs,
                "population": population,
                "workers": workers,
                "seed": seed,
                "seeds": {"training_from": TRAINING_SEED_START, "held_out": held_out},
                "selection": selection,
                "training_state": {**progress.to_dict(), "wall_time_s": round(wall_time, 1)},
                "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            }

        def save_best(at_timesteps: int, score: float) -> None:
            rule = "lowest mean best validation loss on the held-out " + (
                "validation instances" if family else "seeds")
            save_checkpoint(out, model, vec_normalize,
                            card({"rule": rule, "score": score, "timesteps": at_timesteps}))

        def save_periodic(folder: Path) -> None:
            save_checkpoint(folder, model, vec_normalize, card({"rule": "periodic", "timesteps": model.num_timesteps}))

        # ------------------------------------------------------------ callbacks and learning
        evaluation = HeldOutEvalCallback(runs, env_options, eval_every, progress, save_best, population > 1)
        timer = PhaseTimerCallback(evaluation)
        callbacks = [
            EpisodeLogCallback(progress, representative.divergence_loss),
            timer,  # before the evaluation: see PhaseTimerCallback
            clock,
            evaluation,
            PeriodicCheckpointCallback(
                out / "periodic", int(agent_setting(agent, "checkpoint_every_rollouts")), save_periodic
            ),
            *(extra_callbacks or []),
        ]
        if progress_bar:
            callbacks.append(ProgressBarCallback(progress))
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
            "episodes": progress.episodes,
            "wall_time_s": round(wall_before + time.perf_counter() - started, 1),
            "held_out_history": progress.history,
        })
    finally:
        if clock is not None:
            clock.write()  # also after an interruption
        if logger is not None:
            logger.close()  # flushes TensorBoard, also after an interruption
        venv.close()
    session = time.perf_counter() - started
    return TrainResult(
        folder=out,
        timesteps=model.num_timesteps,
        episodes=progress.episodes,
        wall_time_s=wall_before + session,
        session_time_s=session,
        best_score=progress.best_score,
        best_timesteps=progress.best_timesteps,
        rollout_s=timer.rollout_seconds,
        update_s=timer.update_seconds,
        evaluation_s=timer.evaluation_seconds,
    )


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

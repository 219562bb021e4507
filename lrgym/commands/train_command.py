"""``lrgym train TASK``: meta-train a controller (PPO, or a recipe's SB3 algorithm); save it as a checkpoint folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from lrgym.checkpoints.algorithms import ALGORITHMS
from lrgym.commands.common import (
    TASK_HELP,
    add_task_arguments,
    backend,
    env_options,
    non_negative_int,
    out_dir,
    parse_overrides,
    positive_int,
)
from lrgym.tasks.family import load_family
from lrgym.tasks.specs import is_spec_path, load_agent_spec, project_root
from lrgym.train import train
from lrgym.vec_env.training import population_refusal

HELP = ("meta-train a learning-rate controller with PPO (or the SB3 algorithm a recipe names) on a task or a "
        "task family; save it with its model card")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "task", help=f"{TASK_HELP}; a family trains on its train instances and selects on its "
                     "validation instances",
    )
    parser.add_argument(
        "--agent", default="ppo",
        help="training recipe: ppo (MLP actor), ppo-lstm (LSTM actor), sac-dac4sgd (SAC), ..., or the path of "
             "a recipe TOML file"
    )
    parser.add_argument(
        "--timesteps", type=positive_int, default=None,
        help="total controller decisions to train on, all episodes together (default: the agent spec's)",
    )
    parser.add_argument(
        "--n-envs", type=positive_int, default=1,
        help="trainees trained in parallel (subprocesses; Ray actors with --backend ray)",
    )
    parser.add_argument(
        "--population", type=positive_int, default=1,
        help="trainees per process trained in lock-step as one population (adam, adamw, sgd, momentum; "
             "mlp, lenet); with --n-envs P, P processes of N each; on a family, each population runs "
             "one drawn train instance with N seeds at a time",
    )
    parser.add_argument(
        "--rollout", type=positive_int, default=None, metavar="DECISIONS",
        help="controller decisions per PPO rollout, all envs together (n_steps = DECISIONS / (n-envs x "
             "population)); default: the recipe's n_steps per env",
    )
    parser.add_argument(
        "--eval-every", type=non_negative_int, default=None, metavar="EPISODES",
        help="held-out evaluation every EPISODES training episodes (0: none, the final controller is kept; "
             "default: the agent spec's eval_every_episodes)",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of PPO (policy initialisation, sampling)"
    )
    parser.add_argument(
        "--out", "-f", default=None,
        help="run folder (default: checkpoints/TASK-AGENT, in the lrgym folder for a task name, here for a path)"
    )
    parser.add_argument(
        "--resume", action="store_true",
        help="continue the run in --out from its last periodic checkpoint (this unpickles SB3's saved "
             "training state: resume only your own runs)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_task_arguments(parser)


def run(args: argparse.Namespace) -> int:
    where = backend(args)  # its threads (--threads) are pinned by train(), here and in every env
    agent = load_agent_spec(args.agent)
    if agent.kind not in ALGORITHMS:
        raise ValueError(f"--agent {args.agent!r} has kind {agent.kind!r}; lrgym train needs a training recipe "
                         f"of kind {', '.join(ALGORITHMS)}")
    # The recipe's [task] fields (e.g. SAC's log-rate action), then --set, which wins.
    overrides = {**agent.task_overrides, **parse_overrides(args.overrides)}
    task = load_family(args.task, **overrides)  # a single task: a family of one
    # Refused before the run folder exists: nothing is written for a population that cannot run.
    refusal = population_refusal(task, args.n_envs, args.population, where, env_options(args))
    if refusal is not None:
        raise ValueError(refusal)
    root = Path.cwd() if is_spec_path(args.task) else project_root()  # a user's own task: not into lrgym's folder
    out = str(out_dir(args.out or root / "checkpoints" / f"{task.name}-{agent.name}"))
    try:
        result = train(
            task, agent, out, timesteps=args.timesteps, n_envs=args.n_envs, population=args.population,
            device=args.device,
            seed=args.seed, resume=args.resume, data_dir=args.data_dir, download=args.download,
            progress_bar=not args.no_progress, backend=where, eval_every=args.eval_every,
            rollout=args.rollout,
        )
    except KeyboardInterrupt:
        print(f"interrupted: continue with the same command and --resume (from the last checkpoint in {out}/periodic)")
        return 130
    busy = result.rollout_s + result.update_s + result.evaluation_s
    print(f"trained {task.name} with {agent.name}: {result.timesteps} timesteps, {result.episodes} episodes, "
          f"{result.wall_time_s:.0f} s wall ({result.session_time_s:.0f} s this session)")
    if busy > 0:
        print(f"this session: {result.rollout_s / busy:.0%} collecting experience (trainee training), "
              f"{result.update_s / busy:.0%} policy updates, {result.evaluation_s / busy:.0%} held-out evaluation")
    if result.best_score is not None:
        print(f"best held-out score (mean best validation loss): {result.best_score:.4f} "
              f"at {result.best_timesteps} timesteps")
    print(f"wrote {out} (controller: ppo:{out}; periodic checkpoints in {out}/periodic)")
    print(f"tensorboard --logdir {out}/tensorboard")
    return 0

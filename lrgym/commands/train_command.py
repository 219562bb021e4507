"""``lrgym train TASK``: meta-train a controller with PPO and save it as a checkpoint folder."""

from __future__ import annotations

import argparse

from lrgym.commands.common import (
    add_task_arguments,
    backend,
    env_options,
    non_negative_int,
    out_dir,
    parse_overrides,
    positive_int,
)
from lrgym.tasks.family import load_family
from lrgym.tasks.specs import load_agent_spec, project_root
from lrgym.train import train
from lrgym.vec_env.training import population_refusal

HELP = "meta-train a learning-rate controller with PPO on a task or a task family; save it with its model card"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "task", help="task or task family (see `lrgym list`); a family trains on its train instances "
                     "and selects on its validation instances",
    )
    parser.add_argument(
        "--agent", default="ppo", help="training recipe in agents/: ppo (MLP actor) or ppo-lstm (LSTM actor)"
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
        "--out", "-f", default=None, help="run folder (default: checkpoints/TASK-AGENT)"
    )
    parser.add_argument(
        "--resume", action="store_true",
        help="continue the run in --out from its last periodic checkpoint (this unpickles SB3's saved "
             "training state: resume only your own runs)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_task_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    where = backend(args)
    task = load_family(args.task, **parse_overrides(args.overrides))  # a single task: a family of one
    agent = load_agent_spec(args.agent)
    if agent.kind not in ("ppo", "ppo-lstm"):
        raise ValueError(f"--agent {args.agent!r} has kind {agent.kind!r}; lrgym train needs ppo or ppo-lstm")
    # One thread per trainee: a small trainee on 2 threads of a shared 2-core machine ran
    # 20x slower than on one (measured); parallelism comes from --n-envs.
    torch.set_num_threads(1)
    # Refused before the run folder exists: nothing is written for a population that cannot run.
    refusal = population_refusal(task, args.n_envs, args.population, where, env_options(args))
    if refusal is not None:
        raise ValueError(refusal)
    out = str(out_dir(args.out or project_root() / "checkpoints" / f"{task.name}-{agent.name}"))
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
              f"{result.update_s / busy:.0%} PPO updates, {result.evaluation_s / busy:.0%} held-out evaluation")
    if result.best_score is not None:
        print(f"best held-out score (mean best validation loss): {result.best_score:.4f} "
              f"at {result.best_timesteps} timesteps")
    print(f"wrote {out} (controller: ppo:{out}; periodic checkpoints in {out}/periodic)")
    print(f"tensorboard --logdir {out}/tensorboard")
    return 0

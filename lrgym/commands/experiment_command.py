"""``lrgym experiment TASK``: the source paper's whole protocol, end to end.

1. tune the step-decay grid on TASK's tuning seeds (``agents/step-grid.toml``);
2. meta-train the controller on TASK (``lrgym train``);
3. evaluate both, and the other baselines, on the evaluation seeds 0..N-1;
4. transfer the controller, and the step decay tuned on TASK, to each ``--transfer-to`` task.

Everything lands in ``--out``: ``controller/`` (the checkpoint, with the step-decay
choice saved beside it so ``lrgym transfer`` finds it), ``evaluate/``,
``transfer-TARGET/`` and ``experiment.md`` (commands, machine, wall time per stage).
A stage whose output is already there (the choice, a trained controller) is reused,
so an interrupted experiment continues with the same command.
"""

from __future__ import annotations

import argparse
import time

from lrgym.agents.step_grid import cache_path, load_choice, save_choice, tune_step_grid
from lrgym.checkpoints.checkpoint import CARD_FILE, read_card
from lrgym.commands.common import (
    backend,
    comma_list,
    env_options,
    non_negative_int,
    out_dir,
    parse_overrides,
    positive_int,
)
from lrgym.commands.evaluate_command import add_evaluation_arguments, max_tuning_s
from lrgym.environment.lr_control_env import resolve_device
from lrgym.evaluation.evaluate import AgentEntry, default_jobs, evaluate, write_evaluation
from lrgym.evaluation.transfer import run_transfer
from lrgym.tasks.specs import load_agent_spec, load_task_spec
from lrgym.train import train

HELP = "run the paper's protocol: tune step decay, meta-train, evaluate with seeds, transfer"
DEFAULT_BASELINES = "constant,cosine,aslr,lookahead"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", help="task spec to tune, train and evaluate on (see `lrgym list`)")
    parser.add_argument(
        "--transfer-to", default="",
        help="comma-separated target tasks for the transfer (their own specs; see --target-set)",
    )
    parser.add_argument(
        "--target-set", dest="target_overrides", action="append", default=[], metavar="FIELD=VALUE",
        help="override a field of every transfer target's spec (--set applies to TASK only)",
    )
    parser.add_argument("--agent", default="ppo", help="training recipe in agents/ (ppo or ppo-lstm)")
    parser.add_argument(
        "--timesteps", type=positive_int, default=None,
        help="controller decisions to meta-train on (default: the recipe's); scale down for quick runs",
    )
    parser.add_argument(
        "--n-envs", type=positive_int, default=1, help="trainees trained in parallel during meta-training"
    )
    parser.add_argument("--train-seed", type=non_negative_int, default=0, help="seed of PPO")
    parser.add_argument(
        "--baselines", default=DEFAULT_BASELINES,
        help=f"other agents in the evaluation besides step-grid and the controller (default {DEFAULT_BASELINES})",
    )
    parser.add_argument(
        "--target-baselines", default="step-grid,constant,cosine",
        help="agents run on each transfer target itself (default: step-grid,constant,cosine)",
    )
    parser.add_argument("--out", default=None, help="output folder (default runs/experiment-TASK)")
    add_evaluation_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import platform
    import sys

    import torch


    where = backend(args)
    task = load_task_spec(args.task, **parse_overrides(args.overrides))
    targets = [load_task_spec(name, **parse_overrides(args.target_overrides)) for name in comma_list(args.transfer_to)]
    recipe = load_agent_spec(args.agent)
    grid = load_agent_spec("step-grid")
    for name in comma_list(args.baselines) + comma_list(args.target_baselines):
        load_agent_spec(name)  # unknown names fail now, not after an hour of training
    jobs = args.jobs or default_jobs()
    options = env_options(args)
    folder = out_dir(args.out or f"runs/experiment-{task.name}")
    checkpoint = folder / "controller"
    seeds = list(range(args.seeds))
    stages: list[tuple[str, float, str]] = []
    started = time.perf_counter()

    def stage(name: str, since: float, result: str) -> None:
        stages.append((name, time.perf_counter() - since, result))
        print(f"[experiment] {name}: {result} ({time.perf_counter() - since:.0f} s)", flush=True)

    # 1. the step-decay grid, tuned on the task's tuning seeds
    since = time.perf_counter()
    choice_path = cache_path(folder / "step-grid", task, grid)
    if choice_path.is_file():
        choice = load_choice(choice_path)
        stage("tune step decay", since, f"reused {choice_path}")
    else:
        choice = tune_step_grid(
            task, grid, jobs=jobs, env_options=options, max_seconds=max_tuning_s(args), backend=where
        )
        save_choice(choice, choice_path)
        stage("tune step decay", since, f"{choice['scheduler']} initial_lr={choice['initial_lr']:g} "
              f"{choice['kwargs']} (mean best val loss {choice['score']:.4f})")

    # 2. meta-train the controller
    since = time.perf_counter()
    if (checkpoint / CARD_FILE).is_file():
        card = read_card(checkpoint)
        if card["task"] != task.to_dict():
            raise ValueError(f"{checkpoint} holds a controller trained on another task spec; choose another --out")
        stage("meta-train", since, f"reused {checkpoint} ({card['timesteps']} timesteps)")
    else:
        result = train(
            task, recipe, checkpoint, timesteps=args.timesteps, n_envs=args.n_envs, device=args.device,
            seed=args.train_seed, data_dir=args.data_dir, download=args.download, backend=where,
        )
        stage("meta-train", since, f"{result.timesteps} timesteps, {result.episodes} episodes")
    # beside the controller, so `lrgym transfer` transfers this exact step-decay choice
    save_choice(choice, cache_path(checkpoint, task, grid))

    # 3. evaluate on the evaluation seeds
    since = time.perf_counter()
    entries = [
        AgentEntry("step-grid", "step-grid", {"config": choice}),
        AgentEntry(f"ppo:{checkpoint.name}", f"ppo:{checkpoint}"),
        *(AgentEntry(name, name) for name in comma_list(args.baselines)),
    ]
    evaluation = evaluate(task, entries, seeds, jobs=jobs, env_options=options, backend=where)
    paths = write_evaluation(evaluation, folder / "evaluate", reference="step-grid",
                             title=f"Evaluation on {task.name}")
    stage("evaluate", since, str(paths["summary"]))
    print(paths["summary"].read_text())

    # 4. transfer
    for target in targets:
        since = time.perf_counter()
        paths = run_transfer(
            checkpoint, target, seeds, folder / f"transfer-{target.name}",
            target_baselines=comma_list(args.target_baselines), jobs=jobs, env_options=options,
            max_tuning_s=max_tuning_s(args), backend=where,
        )
        stage(f"transfer to {target.name}", since, str(paths["summary"]))
        print(paths["summary"].read_text())

    total = time.perf_counter() - started
    device = resolve_device(args.device)
    machine = (
        f"{platform.machine()} {platform.system()}, {default_jobs()} CPU cores available, "
        f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
        + f", torch {torch.__version__}" + (", runs on a Ray cluster (--backend ray)" if where.is_ray else "")
    )
    lines = [
        f"# Experiment on {task.name}", "",
        f"Command: `lrgym {' '.join(sys.argv[1:])}`" if sys.argv[0].endswith("lrgym") else
        f"Command: `{' '.join(sys.argv)}`", "",
        f"Machine: {machine}. Wall time: {total:.0f} s ({total / 60:.1f} min).", "",
        "| stage | wall time (s) | result |", "|---|---|---|",
        *(f"| {name} | {seconds:.0f} | {result} |" for name, seconds, result in stages),
    ]
    (folder / "experiment.md").write_text("\n".join(lines) + "\n")
    print(f"\nwrote {folder}/: experiment.md, step-grid/, controller/, evaluate/"
          + "".join(f", transfer-{target.name}/" for target in targets))
    print(f"experiment took {total:.0f} s ({total / 60:.1f} min)")
    return 0

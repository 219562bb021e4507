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
from pathlib import Path

from lrgym.agents.step_grid import cache_path, save_choice, step_grid_choice
from lrgym.checkpoints.checkpoint import CARD_FILE, read_card
from lrgym.commands.common import (
    comma_list,
    non_negative_int,
    out_dir,
    parse_overrides,
    positive_int,
    run_options,
)
from lrgym.commands.evaluate_command import add_evaluation_arguments
from lrgym.environment.lr_control_env import resolve_device
from lrgym.evaluation.evaluate import AgentEntry, evaluate
from lrgym.evaluation.outputs import write_evaluation
from lrgym.evaluation.transfer import run_transfer
from lrgym.runners.backend import Backend
from lrgym.runners.options import default_jobs
from lrgym.tasks.specs import AgentSpec, TaskSpec, load_agent_spec, load_task_spec
from lrgym.train import train

HELP = "run the paper's protocol: tune step decay, meta-train, evaluate with seeds, transfer"
DEFAULT_BASELINES = "constant,cosine,aslr,lookahead"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "task", help="task to tune, train and evaluate on: a name (see `lrgym list`) or the path of its TOML file"
    )
    parser.add_argument(
        "--transfer-to", default="",
        help="comma-separated target tasks for the transfer, names or paths (their own specs; see --target-set)",
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


Stage = tuple[str, float, str]  # name, wall time (s), result


def _stage(stages: list[Stage], name: str, since: float, result: str) -> None:
    stages.append((name, time.perf_counter() - since, result))
    print(f"[experiment] {name}: {result} ({time.perf_counter() - since:.0f} s)", flush=True)


def run(args: argparse.Namespace) -> int:
    options = run_options(args)  # a bad --backend fails before anything else
    task = load_task_spec(args.task, **parse_overrides(args.overrides))
    targets = [load_task_spec(name, **parse_overrides(args.target_overrides)) for name in comma_list(args.transfer_to)]
    recipe = load_agent_spec(args.agent)
    grid = load_agent_spec("step-grid")
    for name in comma_list(args.baselines) + comma_list(args.target_baselines):
        load_agent_spec(name)  # unknown names fail now, not after an hour of training
    folder = out_dir(args.out or f"runs/experiment-{task.name}")
    checkpoint = folder / "controller"
    seeds = list(range(args.seeds))
    stages: list[Stage] = []
    started = time.perf_counter()

    # 1. the step-decay grid, tuned on the task's tuning seeds (or the choice tuned before)
    since = time.perf_counter()
    tuned = step_grid_choice(task, grid, options.replace(cache_dir=folder / "step-grid"))
    choice = tuned.choice
    if tuned.origin == "cached":
        _stage(stages, "tune step decay", since, f"reused {tuned.path}")
    else:
        _stage(stages, "tune step decay", since, f"{choice['scheduler']} initial_lr={choice['initial_lr']:g} "
               f"{choice['kwargs']} (mean best val loss {choice['score']:.4f})")

    # 2. meta-train the controller
    since = time.perf_counter()
    _stage(stages, "meta-train", since, _meta_train(args, task, recipe, checkpoint, options.backend))
    # beside the controller, so `lrgym transfer` transfers this exact step-decay choice
    save_choice(choice, cache_path(checkpoint, task, grid))

    # 3. evaluate on the evaluation seeds
    since = time.perf_counter()
    entries = [
        AgentEntry("step-grid", "step-grid", {"config": choice}),
        AgentEntry(f"ppo:{checkpoint.name}", f"ppo:{checkpoint}"),
        *(AgentEntry(name, name) for name in comma_list(args.baselines)),
    ]
    # No bound here: a step-grid baseline refused after the meta-training would waste it.
    evaluation = evaluate(task, entries, seeds, options.replace(max_tuning_s=None))
    paths = write_evaluation(evaluation, folder / "evaluate", reference="step-grid",
                             title=f"Evaluation on {task.name}")
    _stage(stages, "evaluate", since, str(paths["summary"]))
    print(paths["summary"].read_text())

    # 4. transfer
    for target in targets:
        since = time.perf_counter()
        paths = run_transfer(checkpoint, target, seeds, folder / f"transfer-{target.name}",
                             target_baselines=comma_list(args.target_baselines), options=options)
        _stage(stages, f"transfer to {target.name}", since, str(paths["summary"]))
        print(paths["summary"].read_text())

    total = time.perf_counter() - started
    _write_report(args, folder / "experiment.md", task, stages, total, options.backend)
    print(f"\nwrote {folder}/: experiment.md, step-grid/, controller/, evaluate/"
          + "".join(f", transfer-{target.name}/" for target in targets))
    print(f"experiment took {total:.0f} s ({total / 60:.1f} min)")
    return 0


def _meta_train(args: argparse.Namespace, task: TaskSpec, recipe: AgentSpec, checkpoint: Path, where: Backend) -> str:
    """Stage 2: train the controller into ``checkpoint``, or reuse the one there; the stage's result."""
    if (checkpoint / CARD_FILE).is_file():
        card = read_card(checkpoint)
        if card["task"] != task.to_dict():
            raise ValueError(f"{checkpoint} holds a controller trained on another task spec; choose another --out")
        return f"reused {checkpoint} ({card['timesteps']} timesteps)"
    result = train(
        task, recipe, checkpoint, timesteps=args.timesteps, n_envs=args.n_envs, device=args.device,
        seed=args.train_seed, data_dir=args.data_dir, download=args.download, backend=where,
    )
    return f"{result.timesteps} timesteps, {result.episodes} episodes"


def _write_report(
    args: argparse.Namespace, path: Path, task: TaskSpec, stages: list[Stage], total: float, where: Backend
) -> None:
    """experiment.md: the command, the machine, the wall time of every stage."""
    import platform
    import sys

    import torch

    device = resolve_device(args.device)
    machine = (
        f"{platform.machine()} {platform.system()}, {default_jobs()} CPU cores available, "
        f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
        + f", torch {torch.__version__}, {where.threads} torch thread(s) per run (--threads)"
        + (", runs on a Ray cluster (--backend ray)" if where.is_ray else "")
    )
    lines = [
        f"# Experiment on {task.name}", "",
        f"Command: `lrgym {' '.join(sys.argv[1:])}`" if sys.argv[0].endswith("lrgym") else
        f"Command: `{' '.join(sys.argv)}`", "",
        f"Machine: {machine}. Wall time: {total:.0f} s ({total / 60:.1f} min).", "",
        "| stage | wall time (s) | result |", "|---|---|---|",
        *(f"| {name} | {seconds:.0f} | {result} |" for name, seconds, result in stages),
    ]
    path.write_text("\n".join(lines) + "\n")

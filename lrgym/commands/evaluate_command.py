"""``lrgym evaluate TASK --agents A,B,...``: agents side by side on paired seeds."""

from __future__ import annotations

import argparse

from lrgym.commands.common import (
    add_backend_arguments,
    add_data_arguments,
    add_override_argument,
    backend,
    comma_list,
    env_options,
    out_dir,
    parse_overrides,
)

HELP = "run agents on the same seeds of a task; write tables, significance tests and plots"


def add_evaluation_arguments(parser: argparse.ArgumentParser, default_seeds: int = 10) -> None:
    """Flags shared by ``evaluate``, ``transfer`` and ``experiment``."""
    parser.add_argument(
        "--seeds", type=int, default=default_seeds,
        help=f"evaluation seeds 0..N-1, the same for every agent (default {default_seeds})",
    )
    parser.add_argument(
        "--jobs", "-j", type=int, default=None,
        help="worker processes (default: one per available CPU core)",
    )
    add_override_argument(parser)
    add_data_arguments(parser)
    add_backend_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", help="task spec name (see `lrgym list`)")
    parser.add_argument(
        "--agents", required=True,
        help="comma-separated agent spec names or ppo:PATH, e.g. constant,cosine,aslr,step-grid",
    )
    parser.add_argument(
        "--reference", default=None,
        help="agent the others are tested against (default: the first of --agents)",
    )
    parser.add_argument("--out", default=None, help="output folder (default runs/evaluate-TASK)")
    add_evaluation_arguments(parser)


def print_written(paths: dict, folder) -> None:
    print(f"\nwrote {folder}/: " + ", ".join(p.name for p in paths.values()))
    print(f"  tensorboard --logdir {paths['tensorboard']}")


def run(args: argparse.Namespace) -> int:
    from lrgym.evaluate import agent_entries, default_jobs, evaluate, write_evaluation
    from lrgym.specs import load_task_spec

    where = backend(args)
    task = load_task_spec(args.task, **parse_overrides(args.overrides))
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    entries = agent_entries(comma_list(args.agents))
    labels = [entry.label for entry in entries]
    reference = args.reference or labels[0]
    if reference not in labels:
        raise ValueError(f"--reference {reference!r} is not one of --agents ({', '.join(labels)})")
    folder = out_dir(args.out or f"runs/evaluate-{task.name}")
    evaluation = evaluate(
        task, entries, list(range(args.seeds)), jobs=args.jobs or default_jobs(),
        env_options=env_options(args), cache_dir=folder / "step-grid", backend=where,
    )
    paths = write_evaluation(evaluation, folder, reference=reference)
    print(paths["summary"].read_text())
    print_written(paths, folder)
    return 0

"""``lrgym evaluate TASK --agents A,B,...``: agents side by side on paired seeds."""

from __future__ import annotations

import argparse
from pathlib import Path

from lrgym.commands.common import (
    TASK_HELP,
    add_task_arguments,
    comma_list,
    out_dir,
    parse_overrides,
    positive_int,
    run_options,
)
from lrgym.evaluation.evaluate import AgentEntry, agent_entries, evaluate
from lrgym.evaluation.family import evaluate_instances, write_family_evaluation
from lrgym.evaluation.outputs import write_evaluation
from lrgym.runners.options import RunOptions
from lrgym.tasks.family import load_family, parse_instances
from lrgym.tasks.specs import load_task_spec

HELP = ("run agents on the same seeds of a task, or of a task family's instances; "
        "write tables, significance tests and plots")


def add_evaluation_arguments(parser: argparse.ArgumentParser, default_seeds: int = 10) -> None:
    """Flags shared by ``evaluate``, ``transfer`` and ``experiment``."""
    parser.add_argument(
        "--seeds", type=positive_int, default=default_seeds,
        help=f"evaluation seeds 0..N-1, the same for every agent (default {default_seeds})",
    )
    parser.add_argument(
        "--jobs", "-j", type=positive_int, default=None,
        help="worker processes (default: one per available CPU core)",
    )
    parser.add_argument(
        "--allow-long-tuning", action="store_true",
        help="run a step-grid tuning even when it is estimated to take longer than 30 minutes here "
             "(without it such a tuning is refused before it starts)",
    )
    add_task_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", help=TASK_HELP)
    parser.add_argument(
        "--instances", default=None, metavar="SPLIT:N|SPLIT:FIRST-LAST",
        help="a family's instances to evaluate: test:20 (the first 20 test instances), test:5-24, "
             "validation:10; each instance runs --seeds paired seeds",
    )
    parser.add_argument(
        "--agents", required=True,
        help="comma-separated agents: spec names, paths of agent TOML files or ppo:PATH, "
             "e.g. constant,cosine,./my-agent.toml,ppo:checkpoints/mnist1d-mlp-ppo",
    )
    parser.add_argument(
        "--reference", default=None,
        help="agent the others are tested against (default: the first of --agents)",
    )
    parser.add_argument(
        "--agent-config", action="append", default=[], metavar="AGENT=FILE",
        help="run a tuned agent of --agents from a saved choice (e.g. step-grid-per-optimizer=CHOICE.json, "
             "tuned on a family and transferred as it is) instead of tuning it here",
    )
    parser.add_argument("--out", default=None, help="output folder (default runs/evaluate-TASK)")
    add_evaluation_arguments(parser)


def with_configs(entries: list[AgentEntry], items: list[str]) -> list[AgentEntry]:
    """``entries`` with each ``AGENT=FILE`` of ``items`` as that agent's ``config`` option."""
    configs = {}
    for item in items:
        name, _, path = item.partition("=")
        if not path:
            raise ValueError(f"--agent-config needs AGENT=FILE, got {item!r}")
        if not Path(path).is_file():
            raise ValueError(f"--agent-config {item!r}: no file {path}")
        configs[name.strip()] = path
    names = [entry.name for entry in entries]
    unknown = sorted(set(configs) - set(names))
    if unknown:
        raise ValueError(f"--agent-config names {', '.join(unknown)}, not among --agents ({', '.join(names)})")
    return [AgentEntry(entry.label, entry.name, {**entry.options, "config": configs[entry.name]})
            if entry.name in configs else entry for entry in entries]


def print_written(paths: dict, folder) -> None:
    print(f"\nwrote {folder}/: " + ", ".join(p.name for p in paths.values()))
    print(f"  tensorboard --logdir {paths['tensorboard']}")


def run(args: argparse.Namespace) -> int:
    options = run_options(args)  # a bad --backend fails before anything else
    family = load_family(args.task, **parse_overrides(args.overrides))
    if family.single and args.instances:
        raise ValueError(f"{args.task!r} is a single task: --instances is for task families")
    if not family.single and not args.instances:
        raise ValueError(f"{args.task!r} is a task family: say which instances, e.g. --instances test:20")
    entries = with_configs(agent_entries(comma_list(args.agents, "--agents")), args.agent_config)
    labels = [entry.label for entry in entries]
    reference = args.reference or labels[0]
    if reference not in labels:
        raise ValueError(f"--reference {reference!r} is not one of --agents ({', '.join(labels)})")
    if not family.single:
        return _run_family(args, options, family, parse_instances(args.instances, family), entries, reference)
    task = load_task_spec(args.task, **parse_overrides(args.overrides))
    folder = out_dir(args.out or f"runs/evaluate-{task.name}")
    evaluation = evaluate(task, entries, list(range(args.seeds)), options.replace(cache_dir=folder / "step-grid"))
    paths = write_evaluation(evaluation, folder, reference=reference)
    print(paths["summary"].read_text())
    print_written(paths, folder)
    return 0


def _run_family(
    args: argparse.Namespace, options: RunOptions, family, instances: list[int], entries: list, reference: str
) -> int:
    folder = out_dir(args.out or f"runs/evaluate-{family.name}")
    evaluation = evaluate_instances(
        family, instances, entries, list(range(args.seeds)), options.replace(cache_dir=folder / "step-grid")
    )
    paths = write_family_evaluation(evaluation, folder, reference=reference)
    print(paths["summary"].read_text())
    print(f"\nwrote {folder}/: " + ", ".join(path.name for path in paths.values()))
    return 0

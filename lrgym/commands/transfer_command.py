"""``lrgym transfer CHECKPOINT TASK``: a trained controller on a task it never saw (the paper's Table 2)."""

from __future__ import annotations

import argparse

from lrgym.commands.common import comma_list, out_dir, parse_overrides, run_options
from lrgym.commands.evaluate_command import add_evaluation_arguments, print_written
from lrgym.evaluation.transfer import run_transfer
from lrgym.tasks.specs import load_task_spec

HELP = "run a trained controller on another task against the step decay transferred the same way"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="controller checkpoint folder (from `lrgym train`)")
    parser.add_argument(
        "task", help="the target task: a name (see `lrgym list`) or the path of its TOML file, e.g. ./my-task.toml"
    )
    parser.add_argument(
        "--baseline-config", default=None,
        help="saved step-decay choice to transfer (default: the one saved in the checkpoint "
             "folder, else tuned now on the source task, refused when estimated over 30 min "
             "without --allow-long-tuning)",
    )
    parser.add_argument(
        "--target-baselines", default="step-grid,constant,cosine",
        help="comma-separated agents run on the target itself; step-grid is tuned on the target "
             "(default: step-grid,constant,cosine)",
    )
    parser.add_argument("--out", default=None, help="output folder (default runs/transfer-TASK)")
    add_evaluation_arguments(parser)


def run(args: argparse.Namespace) -> int:
    options = run_options(args)  # a bad --backend fails before anything else
    target = load_task_spec(args.task, **parse_overrides(args.overrides))
    folder = out_dir(args.out or f"runs/transfer-{target.name}")
    paths = run_transfer(
        args.checkpoint, target, range(args.seeds), folder, args.baseline_config,
        comma_list(args.target_baselines), options,
    )
    print(paths["summary"].read_text())
    print_written(paths, folder)
    return 0

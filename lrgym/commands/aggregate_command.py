"""``lrgym aggregate DIR``: interval estimates across instances for an evaluation's results.csv."""

from __future__ import annotations

import argparse

from lrgym.commands.common import comma_list
from lrgym.evaluation.aggregate_report import write_aggregate

HELP = "aggregate an evaluation across its instances: IQM, bootstrap CIs, probability of improvement, profiles"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "folders", nargs="+",
        help="evaluation folders (results.csv, trajectories.csv) on the same instances and seeds, pooled",
    )
    parser.add_argument("--out", default=None, help="where to write (default: the first folder)")
    parser.add_argument("--reference", required=True, help="the agent every score is normalised by")
    parser.add_argument(
        "--compare-with", default="",
        help="more references for probability-of-improvement tables, e.g. prodigy,hypergradient",
    )
    parser.add_argument(
        "--by", default="optimizer", help="a results.csv column to break the IQM down by (default optimizer)"
    )
    parser.add_argument(
        "--plot-agents", default="", help="agents whose learning rates are drawn on a few instances"
    )
    parser.add_argument("--plot-instances", type=int, default=4, help="instances in that figure (default 4)")
    parser.add_argument("--repetitions", type=int, default=2000, help="bootstrap replicates (default 2000)")


def run(args: argparse.Namespace) -> int:

    if args.repetitions < 10:
        raise ValueError(f"--repetitions must be at least 10, got {args.repetitions}")
    out = args.out or args.folders[0]
    paths = write_aggregate(
        args.folders, args.reference, comma_list(args.compare_with), args.by,
        comma_list(args.plot_agents), args.plot_instances, args.repetitions, out=out,
    )
    print(paths["aggregate"].read_text())
    print(f"wrote {out}/: " + ", ".join(path.name for path in paths.values()))
    return 0

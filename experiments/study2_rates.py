"""How far each study-2 cell moved the rate away from the base schedule it corrects.

For every controller folder ``SPLIT/<cell>-s<seed>`` of a study-2 split folder
(``docs/results/study2/test`` or ``.../validation``), pairs its trajectories with the base
schedule's own evaluation on the same instances, seeds and decisions (F, R:
``step-grid-family``; O: ``step-grid-per-optimizer``; P: ``prodigy``) and prints, per cell
and optimizer, the median over decisions of log10(rate / base rate) in the first and the
second half of the runs, and the median of its absolute value. A cell that learned to do
nothing scores 0 everywhere.

    python experiments/study2_rates.py docs/results/study2/test
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from lrgym.evaluation.outputs import read_results

BASES = {"F": "step-grid-family", "R": "step-grid-family", "O": "step-grid-per-optimizer", "P": "prodigy"}


def rates(folder: Path) -> dict[tuple[int, int, int], tuple[float, str]]:
    """(instance, seed, decision) -> (rate, trainee optimizer) of one evaluation folder."""
    optimizers = {row["instance"]: row["trainee_optimizer"] for row in read_results(folder / "results.csv")}
    return {(row["instance"], row["seed"], int(row["decision"])): (row["lr"], optimizers[row["instance"]])
            for row in read_results(folder / "trajectories.csv")}


def main(split: Path) -> None:
    print("| controller | base | optimizer | decisions | median log10(rate / base), first half | second half "
          "| median abs |")
    print("|---|---|---|---|---|---|---|")
    for folder in sorted(split.glob("[FOPR]-s*")):
        base_folder = split / BASES[folder.name[0]]
        if not (folder / "trajectories.csv").exists() or not (base_folder / "trajectories.csv").exists():
            continue
        controller, base = rates(folder), rates(base_folder)
        last = defaultdict(int)
        for instance, seed, decision in controller:
            last[instance, seed] = max(last[instance, seed], decision)
        ratios: dict[tuple[str, str], list[float]] = defaultdict(list)
        for key, (lr, optimizer) in controller.items():
            if key in base and lr > 0 and base[key][0] > 0:
                half = "first" if key[2] <= last[key[:2]] / 2 else "second"
                for group in (optimizer, "all"):
                    ratios[group, half].append(math.log10(lr / base[key][0]))
        for group in ["all", *sorted({group for group, _ in ratios} - {"all"})]:
            first, second = np.array(ratios[group, "first"]), np.array(ratios[group, "second"])
            both = np.concatenate([first, second])
            print(f"| {folder.name} | {BASES[folder.name[0]]} | {group} | {both.size} | {np.median(first):+.3f} "
                  f"| {np.median(second):+.3f} | {np.median(np.abs(both)):.3f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

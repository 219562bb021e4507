"""The study's write-up: an evaluation's rows aggregated across instances, as markdown and figures.

Reads what ``lrgym evaluate FAMILY --instances ...`` wrote (``results.csv``,
``trajectories.csv``) and writes ``aggregate.md`` (normalised scores with interval
estimates against the reference and against other agents, broken down by a column such
as the optimizer), ``intervals.png``, ``profile.png`` and ``instance_lrs.png``. The
definitions are in :mod:`lrgym.evaluation.aggregate`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lrgym.evaluation.aggregate import aggregate, aggregate_markdown, iqm, loss_matrices, normalised_scores
from lrgym.evaluation.evaluate import read_results


def _breakdown(rows: list[dict[str, Any]], reference: str, column: str) -> str:
    """IQM of the normalised score per agent for each value of ``column`` (e.g. per optimizer)."""
    values = sorted({str(row.get(column)) for row in rows if column in row})
    if len(values) < 2:
        return ""
    agents = list(dict.fromkeys(row["agent"] for row in rows))
    table = {}
    runs = {}
    for value in values:
        subset = [row for row in rows if str(row.get(column)) == value]
        losses, instances, _ = loss_matrices(subset)
        scores = normalised_scores(losses, reference)
        runs[value] = len(instances)
        table[value] = {agent: iqm(scores[agent]) for agent in agents if agent in scores}
    header = "| agent | " + " | ".join(f"{column}={value} ({runs[value]} instances)" for value in values) + " |"
    lines = [f"IQM of the normalised score by {column}:", "", header, "|---" * (len(values) + 1) + "|"]
    for agent in agents:
        cells = [f"{table[value].get(agent, math.nan):.3f}" for value in values]
        lines.append(f"| {agent} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pooled_rows(folders: Sequence[str | Path], name: str) -> list[dict[str, Any]]:
    """The rows of ``name`` (results.csv, trajectories.csv) of every folder, refusing an agent twice
    and folders whose instances or seeds differ (their runs would not be paired)."""
    rows: list[dict[str, Any]] = []
    seen: dict[str, Path] = {}
    runs = None
    for folder in folders:
        path = Path(folder) / name
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: run `lrgym evaluate FAMILY --instances ... --out {folder}`"
            )
        part = read_results(path)
        for agent in dict.fromkeys(row["agent"] for row in part):
            if agent in seen:
                raise ValueError(f"agent {agent!r} is in both {seen[agent]} and {folder}")
            seen[agent] = Path(folder)
        here = sorted({(row.get("instance", 0), row["seed"]) for row in part})
        if name == "results.csv" and runs is not None and here != runs:
            raise ValueError(f"{folder} ran other instances or seeds than {folders[0]}: its runs are not paired")
        runs = here
        rows.extend(part)
    return rows


def write_aggregate(
    folders: str | Path | Sequence[str | Path],
    reference: str,
    compare_with: Sequence[str] = (),
    by: str = "optimizer",
    plot_agents: Sequence[str] = (),
    plot_instances: int = 4,
    repetitions: int = 2000,
    out: str | Path | None = None,
) -> dict[str, Path]:
    """Write ``aggregate.md`` and the figures into ``out`` (default: the first folder); return their paths."""
    from lrgym.evaluation.plots import plot_instance_lrs, plot_intervals, plot_performance_profile  # matplotlib: late

    folders = [folders] if isinstance(folders, (str, Path)) else list(folders)
    rows = pooled_rows(folders, "results.csv")
    folder = Path(out) if out is not None else Path(folders[0])
    folder.mkdir(parents=True, exist_ok=True)
    results = ", ".join(f"{f}/results.csv" for f in folders)
    agents = list(dict.fromkeys(row["agent"] for row in rows))
    for name in [reference, *compare_with, *plot_agents]:
        if name not in agents:
            raise ValueError(f"agent {name!r} is not in {results}; the agents there: {', '.join(agents)}")
    instances = sorted({row.get("instance", 0) for row in rows})
    seeds = sorted({row["seed"] for row in rows})
    sections = [
        f"# Aggregate over {len(instances)} instances x {len(seeds)} seeds\n",
        f"From {results}; {repetitions} bootstrap replicates.\n",
        f"## Against `{reference}`\n",
    ]
    main = aggregate(rows, reference, repetitions)
    sections.append(aggregate_markdown(main, reference))
    breakdown = _breakdown(rows, reference, by)
    if breakdown:
        sections += [f"\n## By {by}\n", breakdown]
    for other in compare_with:
        sections += [f"\n## Against `{other}`\n", aggregate_markdown(aggregate(rows, other, repetitions), other)]
    paths = {"aggregate": folder / "aggregate.md"}
    paths["intervals"] = plot_intervals(main, folder / "intervals.png", reference)
    losses, _, _ = loss_matrices(rows)
    paths["profile"] = plot_performance_profile(normalised_scores(losses, reference), folder / "profile.png", reference)
    if plot_agents and all((Path(f) / "trajectories.csv").is_file() for f in folders):
        trajectories = pooled_rows(folders, "trajectories.csv")
        shown = instances[:plot_instances]
        titles = {}
        for row in rows:
            if row.get("instance") in shown and row.get("instance") not in titles:
                titles[row["instance"]] = (
                    f"instance {row['instance']}: {row.get('model', '')} {row.get('optimizer', '')}, "
                    f"batch {row.get('batch_size', '?'):.0f}, {row.get('steps', math.nan):.0f} steps"
                    if isinstance(row.get("batch_size"), float) else f"instance {row['instance']}"
                )
        paths["instance_lrs"] = plot_instance_lrs(
            trajectories, folder / "instance_lrs.png", [reference, *plot_agents], shown, titles, seed=seeds[0]
        )
    paths["aggregate"].write_text("\n".join(sections))
    return paths

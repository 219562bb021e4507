"""Evaluation on a task family's instances: every agent on each instance, with paired seeds.

Run ``seed`` of instance ``i`` starts from the same weights, batches and validation
subset for every agent (the instance's env derives them from the seed), so agents are
paired by (instance, seed). ``results.csv`` holds one row per (instance, agent, seed)
with the instance's fields; ``summary.md`` aggregates per agent over all instances, then
per optimizer.

Step-decay agents are tuned before the runs start:

- kind ``step-grid`` (e.g. ``step-grid``, ``step-grid-small``): on *each* instance's own
  tuning seeds, the per-instance oracle (:func:`lrgym.agents.step_grid_family.tune_instances`);
- kind ``step-grid-family`` (``step-grid-family``): once, across the family's train
  instances (:func:`lrgym.agents.step_grid_family.tune_step_grid_family`);
- kinds ``step-grid-per-optimizer`` and ``tuned-rate``: once per optimizer, across that
  optimizer's train instances (:mod:`lrgym.agents.per_optimizer`).

Both are cached under ``cache_dir`` (``lrgym evaluate`` uses ``OUT/step-grid``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrgym.agents.per_optimizer import FAMILY_TUNED_KINDS, describe_family_tuned, family_tuned_choice
from lrgym.agents.step_grid_family import tune_instances
from lrgym.evaluation.evaluate import (
    STEP_GRID_KIND,
    AgentEntry,
    _build_agent,
    checked_entries,
    describe_choice,
    run_one,
)
from lrgym.evaluation.outputs import RESULT_COLUMNS, TRAJECTORY_COLUMNS, threads_note, write_csv
from lrgym.evaluation.statistics import summarize, summary_markdown
from lrgym.runners.options import RUN_DEFAULTS, RunOptions
from lrgym.runners.pool import run_placed
from lrgym.tasks.family import INSTANCE_FIELDS, TaskFamily, instance_fields
from lrgym.tasks.specs import TaskSpec, load_agent_spec

FAMILY_RESULT_COLUMNS = ("instance", *RESULT_COLUMNS, *INSTANCE_FIELDS)
FAMILY_TRAJECTORY_COLUMNS = ("instance", *TRAJECTORY_COLUMNS)
FAMILY_STEP_GRID_KIND = "step-grid-family"
PAIR_BY = ("instance", "seed")


@dataclass
class FamilyEvaluation:
    """The rows of an evaluation on instances: one result per (instance, agent, seed)."""

    family: TaskFamily
    instances: list[int]
    agents: list[str]
    seeds: list[int]
    results: list[dict[str, Any]]
    trajectories: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def _csv_fields(task: TaskSpec) -> dict[str, Any]:
    fields = instance_fields(task)
    for key in ("dataset_kwargs", "model_kwargs"):
        fields[key] = json.dumps(fields[key], sort_keys=True, separators=(",", ":"))
    fields.pop("initial_lr")  # results.csv has the env's draw already
    return fields


def resolve_instance_agents(
    entries: Sequence[AgentEntry], family: TaskFamily, tasks: Sequence[TaskSpec], options: RunOptions = RUN_DEFAULTS
) -> tuple[dict[tuple[str, int], AgentEntry], list[str]]:
    """The entry each agent runs on each task (position in ``tasks``), step decays tuned
    with ``options`` (choices cached in its ``cache_dir``).

    :return: (label, position) -> entry, and a line per tuned agent for the summary.
    """
    resolved: dict[tuple[str, int], AgentEntry] = {}
    notes = []
    for entry in entries:
        kind = None if entry.name.startswith("ppo:") else load_agent_spec(entry.name).kind
        if kind == STEP_GRID_KIND and "config" not in entry.options:
            choices = tune_instances(tasks, entry.name, options)
            for position, choice in enumerate(choices):
                resolved[entry.label, position] = AgentEntry(
                    entry.label, entry.name, {**entry.options, "config": choice}
                )
            rates = sorted({choice["initial_lr"] for choice in choices})
            notes.append(
                f"`{entry.label}` is tuned on each instance's own tuning seeds {choices[0]['tuning_seeds']} "
                f"(the per-instance oracle; chosen initial rates: {', '.join(f'{r:g}' for r in rates)})"
            )
            continue
        if kind in FAMILY_TUNED_KINDS and "config" not in entry.options:
            choice = family_tuned_choice(family, entry.name, options)
            entry = AgentEntry(entry.label, entry.name, {**entry.options, "config": choice})
            notes.append(
                describe_choice(entry.label, choice)
                + f" across {len(choice['tuning_instances'])} train instances (mean normalised score)"
                if kind == FAMILY_STEP_GRID_KIND else describe_family_tuned(entry.label, choice)
            )
        for position in range(len(tasks)):
            resolved[entry.label, position] = entry
    return resolved, notes


def evaluate_instances(
    family: TaskFamily,
    instances: Sequence[int],
    agents: Sequence[AgentEntry | str],
    seeds: Sequence[int],
    options: RunOptions = RUN_DEFAULTS,
) -> FamilyEvaluation:
    """Run every agent on every seed of every instance of ``family`` in ``instances``.

    :param instances: instance indices (e.g. from :func:`lrgym.tasks.family.parse_instances`).
    :param seeds: episode seeds, the same for every agent on an instance (paired runs).
    :param options: ``jobs``, ``env_options``, ``progress``, ``backend`` (each row records its
        ``node``) and ``cache_dir``, where tuned step-decay choices are cached.
    :return: rows ordered by agent, instance, seed.
    """
    entries = checked_entries(agents)
    labels = [entry.label for entry in entries]
    if not entries or not seeds or not instances:
        raise ValueError("need at least one agent, one instance and one seed")
    tasks = [family.instance(index) for index in instances]
    resolved, notes = resolve_instance_agents(entries, family, tasks, options)
    for label in labels:  # a bad name or checkpoint fails here, before any worker starts
        _build_agent(resolved[label, 0], tasks[0])
    work = [(label, position, seed) for label in labels for position in range(len(tasks)) for seed in seeds]
    outcomes = run_placed(
        run_one,
        [(resolved[label, position], tasks[position], seed, options.env_options) for label, position, seed in work],
        options, description=f"evaluate {len(tasks)} {family.name} instances",
    )
    results, trajectories = [], []
    for (_, position, _), ((result, trajectory), node) in zip(work, outcomes, strict=True):
        index = int(instances[position])
        results.append({"instance": index, **result, **_csv_fields(tasks[position]), "node": node})
        trajectories.extend({"instance": index, **row} for row in trajectory)
    notes.append(threads_note(results))
    return FamilyEvaluation(family, [int(i) for i in instances], labels, list(seeds), results, trajectories, notes)


def _ranges(indices: Sequence[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``3..5, 9``."""
    parts, start = [], None
    for position, index in enumerate(indices):
        if start is None:
            start = index
        if position + 1 == len(indices) or indices[position + 1] != index + 1:
            parts.append(f"{start}..{index}" if index != start else f"{index}")
            start = None
    return ", ".join(parts)


def write_family_evaluation(
    evaluation: FamilyEvaluation, folder: str | Path, reference: str | None = None, title: str | None = None
) -> dict[str, Path]:
    """Write results.csv, trajectories.csv, summary.md (per agent, per optimizer, the instances)
    and lr.png / val_loss.png (of the first instance).

    :param reference: the agent the others are tested against, paired by (instance, seed).
    """
    from lrgym.evaluation.plots import plot_lr, plot_val_loss  # matplotlib only when drawing

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    reference = reference or evaluation.agents[0]
    if reference not in evaluation.agents:
        raise ValueError(f"reference agent {reference!r} is not among {evaluation.agents}")
    paths = {name: folder / f"{name}.{ext}" for name, ext in
             (("results", "csv"), ("trajectories", "csv"), ("summary", "md"), ("lr", "png"), ("val_loss", "png"))}
    write_csv(paths["results"], evaluation.results, FAMILY_RESULT_COLUMNS)
    write_csv(paths["trajectories"], evaluation.trajectories, FAMILY_TRAJECTORY_COLUMNS)
    family, seeds = evaluation.family, evaluation.seeds
    split = family.split_of(evaluation.instances[0]) if not family.single else "single task"
    heading = title or f"Evaluation on {len(evaluation.instances)} {split} instances of {family.name}"
    overrides = ", ".join(f"{key}={value}" for key, value in family.overrides.items()) or "none"
    lines = [
        f"# {heading}", "",
        f"Family `{family.name}` (overrides: {overrides}); instances {_ranges(evaluation.instances)}; "
        f"{len(seeds)} paired seeds per instance ({_ranges(seeds)}); runs paired by (instance, seed).", "",
        *(f"- {note}" for note in evaluation.notes),
        *([""] if evaluation.notes else []),
        "## All instances", "",
        summary_markdown(summarize(evaluation.results, reference, PAIR_BY), reference),
        "## By optimizer", "",
    ]
    for optimizer in sorted({row["optimizer"] for row in evaluation.results}):
        rows = [row for row in evaluation.results if row["optimizer"] == optimizer]
        count = len({row["instance"] for row in rows})
        lines += [f"### {optimizer} ({count} instances)", "",
                  summary_markdown(summarize(rows, reference, PAIR_BY), None)]
    lines += ["## Instances", "", "| instance | dataset | variant | model | size | optimizer | batch | steps | "
              "interval | initial lr |", "|---|---|---|---|---|---|---|---|---|---|"]
    seen = set()
    for row in evaluation.results:
        if row["instance"] in seen:
            continue
        seen.add(row["instance"])
        lines.append(
            f"| {row['instance']} | {row['dataset']} | {row['dataset_kwargs']} | {row['model']} | "
            f"{row['model_kwargs']} | {row['optimizer']} | {row['batch_size']} | {row['steps']} | "
            f"{row['interval']} | {row['initial_lr']:.3g} |"
        )
    paths["summary"].write_text("\n".join(lines) + "\n")
    first = evaluation.instances[0]
    shown = [row for row in evaluation.trajectories if row["instance"] == first]
    plot_title = f"{heading}: instance {first}"
    plot_lr(shown, paths["lr"], evaluation.agents, title=plot_title)
    plot_val_loss(shown, paths["val_loss"], evaluation.agents, title=plot_title)
    return paths

"""Step decay for task families: one configuration for the whole family, or one per instance.

Two uses of the step-decay grid (:mod:`lrgym.agents.step_grid`) on a family:

- **Family-tuned** (:func:`tune_step_grid_family`, agent kind ``step-grid-family``,
  ``agents/step-grid-family.toml``): the fair "transferred" baseline. Every
  configuration runs on the first ``tuning_instances`` *train* instances (the data a
  controller trains on), each with the spec's ``tuning_seeds`` (one by default). Rule:
  an instance's score of a configuration is its best validation loss (mean over the
  seeds; a diverged run, or one with no finite loss, counts the instance's
  ``divergence_loss``), divided by the lowest score any configuration reached on that
  instance, so every instance weighs the same whatever its loss scale (1 is the best
  configuration of that instance). The choice is the configuration with the lowest
  mean normalised score over the instances (ties: the first in grid order).
  :func:`tune_across` applies the rule to any train instances: one optimizer's, for the
  per-optimizer tuning of :mod:`lrgym.agents.per_optimizer`.
- **Per instance** (:func:`tune_instances`, the oracle): the plain ``step-grid`` kind
  on each instance's own tuning seeds (``agents/step-grid-small.toml`` is a 12-point
  grid for this, ``agents/step-grid-oracle.toml`` the full 42-point grid on two tuning
  seeds), the runs spread over workers by :func:`lrgym.runners.pool.run_jobs` and each
  instance's choice cached on disk as soon as it is made.

Both write the step-grid choice format (:func:`~lrgym.agents.step_grid.save_choice`):
``initial_lr``, ``scheduler``, ``kwargs`` and how they were chosen; a family choice can
be a residual controller's ``base_schedule``. Task fields that do not change what a
schedule does (action mode, reward, features...) are left out of the cache keys, so
controllers that differ only in those share one tuning.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from lrgym.agents.fixed_schedules import ScheduleAgent
from lrgym.agents.step_grid import (
    GRID_KEYS,
    ResolvedChoice,
    agent_run_options,
    check_agent_options,
    choice_agent,
    choose_configuration,
    configuration,
    given_choice,
    grid_configurations,
    resolve_choice,
    score_configuration,
)
from lrgym.runners.options import RUN_DEFAULTS, RunOptions
from lrgym.runners.pool import run_jobs
from lrgym.tasks.family import TaskFamily, load_family
from lrgym.tasks.specs import AgentSpec, TaskSpec, load_agent_spec

FAMILY_SELECTION = (
    "lowest mean over the tuning instances of the best validation loss divided by the instance's "
    "best over the grid (a diverged run counts divergence_loss)"
)
FAMILY_GRID_KEYS = (*GRID_KEYS, "tuning_instances")
AGENT_OPTIONS = ("config", "family", "cache_dir", "jobs", "progress")
# Fields that change what the controller sees or is paid, not what a fixed schedule does.
NOT_SCHEDULE_FIELDS = ("description", "action", "lr_scale", "reward", "features", "base_schedule")


def _schedule_identity(task: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in task.items() if key not in NOT_SCHEDULE_FIELDS}


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def instance_cache_path(cache_dir: str | Path, task: TaskSpec, spec: AgentSpec) -> Path:
    """Where the per-instance choice for ``task`` and grid ``spec`` is cached."""
    name = task.name.replace("#", "-")
    return Path(cache_dir) / f"{spec.name}-{name}-{_digest(_schedule_identity(task.to_dict()), spec.to_dict())}.json"


def family_cache_path(cache_dir: str | Path, family: TaskFamily, spec: AgentSpec) -> Path:
    """Where the family-tuned choice for ``family`` (with its overrides) and grid ``spec`` is cached."""
    identity = family.to_dict()
    identity["overrides"] = _schedule_identity(identity["overrides"])
    identity["distributions"] = _schedule_identity(identity["distributions"])
    return Path(cache_dir) / f"{spec.name}-{family.name}-{_digest(identity, spec.to_dict())}.json"


def _spec(spec: AgentSpec | str) -> AgentSpec:
    return load_agent_spec(spec) if isinstance(spec, str) else spec


def _seeds(spec: AgentSpec) -> list[int]:
    seeds = [int(seed) for seed in spec.params.get("tuning_seeds", [1000])]
    if not seeds:
        raise ValueError(f"agent {spec.name!r}: tuning_seeds must hold at least one seed")
    return seeds


def _score_grid(
    tasks: Sequence[TaskSpec],
    positions: Iterable[int],
    configurations: Sequence[Mapping[str, Any]],
    seeds: Sequence[int],
    description: str,
    options: RunOptions,
) -> dict[tuple[int, int, int], float]:
    """Every configuration on every seed of the tasks at ``positions``, all runs spread over
    the workers together: (task position, configuration index, seed) -> best validation loss."""
    runs = [(k, c, seed) for k in positions for c in range(len(configurations)) for seed in seeds]
    scores = run_jobs(
        score_configuration, [(tasks[k], configurations[c], seed, options.env_options) for k, c, seed in runs],
        options, description=description, unit="it",
    )
    return dict(zip(runs, scores, strict=True))


def tune_instances(
    tasks: Sequence[TaskSpec], spec: AgentSpec | str = "step-grid-small", options: RunOptions = RUN_DEFAULTS
) -> list[dict[str, Any]]:
    """Tune the grid on each task's own tuning seeds (the per-instance oracle).

    :param tasks: the instances (any tasks).
    :param spec: a grid spec of kind ``step-grid`` or its name.
    :param options: ``jobs`` workers for all (task, configuration, seed) runs together;
        each task's choice is read from :func:`instance_cache_path` in ``cache_dir``, or
        written there once tuned (:func:`~lrgym.agents.step_grid.resolve_choice`).
    :return: one choice per task, in order.
    """
    spec = _spec(spec)
    configurations = grid_configurations(spec.params)
    seeds = _seeds(spec)
    files = [partial(instance_cache_path, task=task, spec=spec) for task in tasks]
    cache_dir = options.cache_dir
    todo = [k for k, file_in in enumerate(files) if cache_dir is None or not file_in(cache_dir).is_file()]
    # With a cache the instances are tuned a few at a time (one per worker, their runs spread
    # over the workers together) and each choice is written as soon as it is made, so a
    # stopped tuning resumes at the first instance without one. Without a cache, all at once.
    chunk = max(1, options.jobs) if cache_dir is not None else max(1, len(todo))
    made: dict[int, dict[str, Any]] = {}

    def choose(position: int) -> dict[str, Any]:
        if position not in made:
            positions = todo[todo.index(position) :][:chunk]
            by_run = _score_grid(
                tasks, positions, configurations, seeds,
                f"tuning {spec.name} on {len(positions)} instance(s), {len(todo)} without a choice", options,
            )
            for k in positions:
                task_scores = {(index, seed): by_run[k, index, seed]
                               for index in range(len(configurations)) for seed in seeds}
                made[k] = choose_configuration(tasks[k], spec, configurations, seeds, task_scores)
        return made.pop(position)

    return [resolve_choice(partial(choose, position), file_in, cache_dir).choice
            for position, file_in in enumerate(files)]


def tune_step_grid_family(
    family: TaskFamily | str, spec: AgentSpec | str = "step-grid-family", options: RunOptions = RUN_DEFAULTS
) -> dict[str, Any]:
    """One configuration for the whole family, chosen on its train instances (see the module docstring).

    :param family: a family or its name.
    :param spec: a grid spec (kind ``step-grid-family``) with ``tuning_instances``.
    :param options: ``jobs``, ``env_options``, ``progress``, ``backend`` of the runs; the
        choice is read from :func:`family_cache_path` in ``cache_dir``, or written there.
    :return: the choice: ``initial_lr``, ``scheduler``, ``kwargs``, ``score`` (its mean
        normalised score), ``selection``, ``tuning_seeds``, ``tuning_instances`` (indices),
        ``tuned_on`` (name and family), ``agent`` and ``grid`` (per row: each instance's
        best validation loss, the normalised scores and their mean).
    """
    return family_choice(family, spec, options).choice


def family_choice(
    family: TaskFamily | str,
    spec: AgentSpec | str = "step-grid-family",
    options: RunOptions = RUN_DEFAULTS,
    saved_in: str | Path | None = None,
) -> ResolvedChoice:
    """The family-tuned choice (:func:`tune_step_grid_family`) and where it came from: read
    from ``saved_in`` or ``options.cache_dir``, else tuned now and cached."""
    family = load_family(family) if isinstance(family, str) else family
    spec = _spec(spec)
    return resolve_choice(
        lambda: tune_across(family, first_train_instances(family, spec), spec, options),
        lambda folder: family_cache_path(folder, family, spec), options.cache_dir, saved_in,
    )


def tuning_instance_count(spec: AgentSpec, available: int) -> int:
    """The spec's ``tuning_instances`` (default 12), checked against the ``available`` train instances."""
    count = int(spec.params.get("tuning_instances", 12))
    if not 1 <= count <= available:
        raise ValueError(f"tuning_instances must be between 1 and {available}, got {count}")
    return count


def first_train_instances(family: TaskFamily, spec: AgentSpec) -> list[int]:
    """The family's first ``tuning_instances`` train instances."""
    train = family.indices("train")
    return [train[position] for position in range(tuning_instance_count(spec, len(train)))]


def tune_across(
    family: TaskFamily, indices: Sequence[int], spec: AgentSpec, options: RunOptions, label: str = ""
) -> dict[str, Any]:
    """One configuration for the instances ``indices`` of ``family`` (the rule of the module
    docstring): the choice :func:`tune_step_grid_family` describes, tuned on those instances.

    :param label: what the progress bar calls the instances (default: the family's name).
    """
    configurations = grid_configurations(spec.params)
    seeds = _seeds(spec)
    indices = [int(index) for index in indices]
    count = len(indices)
    tasks = [family.instance(index) for index in indices]
    by_run = _score_grid(
        tasks, range(count), configurations, seeds,
        f"tuning {spec.name} on {count} {label or family.name} instances", options,
    )

    def instance_score(c: int, k: int) -> float:
        values = [by_run[k, c, seed] for seed in seeds]
        values = [v if math.isfinite(v) else tasks[k].divergence_loss for v in values]
        return sum(values) / len(values)

    raw = [[instance_score(c, k) for k in range(count)] for c in range(len(configurations))]
    best_of_instance = [min(raw[c][k] for c in range(len(configurations))) for k in range(count)]
    rows = []
    for c, row_configuration in enumerate(configurations):
        normalised = [raw[c][k] / best_of_instance[k] for k in range(count)]
        rows.append({**row_configuration, "best_val_losses": raw[c], "normalised": normalised,
                     "mean": sum(normalised) / count})
    best = min(rows, key=lambda row: row["mean"])
    return {
        **configuration(best),
        "score": best["mean"],
        "selection": FAMILY_SELECTION,
        "tuning_seeds": seeds,
        "tuning_instances": indices,
        "tuned_on": {"name": family.name, "family": family.to_dict()},
        "agent": spec.to_dict(),
        "grid": rows,
    }


def make_step_grid_family_agent(spec: AgentSpec, task: TaskSpec, **options: Any) -> ScheduleAgent:
    """Factory of kind ``step-grid-family``: the family-tuned configuration as a schedule agent.

    Options: ``config`` (a saved choice path or dict, used as it is) or ``family`` (a
    family or its name: tuned now, or read from ``cache_dir``); tuning takes ``jobs``,
    ``progress`` and the env options.
    """
    check_agent_options(spec, options, AGENT_OPTIONS, FAMILY_GRID_KEYS)
    choice = given_choice(options.get("config"))
    if choice is not None:
        return choice_agent(choice)
    if options.get("family") is None:
        raise ValueError(
            f"agent {spec.name!r} is tuned on a task family: give config (a saved choice) or family "
            f"(e.g. evaluate it with `lrgym evaluate FAMILY --instances test:N`, or `lrgym tune FAMILY`)"
        )
    return choice_agent(tune_step_grid_family(options["family"], spec, agent_run_options(options)))

"""Schedules tuned per optimizer across a family's train instances, and schedules started
from that tuned rate: the references a practitioner who knows their optimizer would use.

- **Per-optimizer tuned** (kind ``step-grid-per-optimizer``, :func:`tune_per_optimizer`):
  the family tuning of :mod:`lrgym.agents.step_grid_family` (every configuration of a grid
  on train instances, each instance's best validation loss divided by its best over the
  grid, the lowest mean wins) done once for each optimizer the family draws, on the first
  ``tuning_instances`` train instances *of that optimizer*. The agent runs the choice of
  the task's own optimizer. ``agents/step-grid-per-optimizer.toml`` is the step decay of
  ``step-grid-family`` (the same 42 configurations) tuned this way;
  ``agents/warmup-cosine-per-optimizer.toml`` is another shape (linear warm-up, then
  cosine to 0: a ``SequentialLR``) tuned the same way over its initial rate.
- **From the tuned rate** (kind ``tuned-rate``): another agent (``agent``: ``constant``,
  ``cosine``, ``hypergradient``...) started from the initial rate that the tuning
  ``rate_from`` chose for the task's optimizer, instead of the env's drawn rate.

A per-optimizer choice (the step-grid choice format, :func:`lrgym.agents.step_grid.load_choice`
reads it) holds ``by_optimizer``: optimizer -> a family choice of
:func:`lrgym.agents.step_grid_family.tune_across`, plus how it was made. It is cached in two
steps, so a stopped tuning loses at most one optimizer's runs: each optimizer's choice in
:func:`optimizer_cache_path`, then the whole in
:func:`lrgym.agents.step_grid_family.family_cache_path`. The whole can also be a residual
controller's ``base_schedule``: the env runs the task's optimizer's entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lrgym.agents import make_agent
from lrgym.agents.base import Agent
from lrgym.agents.step_grid import (
    ResolvedChoice,
    agent_run_options,
    check_agent_options,
    choice_agent,
    given_choice,
    resolve_choice,
)
from lrgym.agents.step_grid_family import (
    FAMILY_GRID_KEYS,
    family_cache_path,
    family_choice,
    tune_across,
    tuning_instance_count,
)
from lrgym.runners.options import RUN_DEFAULTS, RunOptions
from lrgym.tasks.family import TaskFamily, load_family
from lrgym.tasks.optimizers import per_optimizer_key
from lrgym.tasks.specs import AgentSpec, TaskSpec, load_agent_spec

PER_OPTIMIZER_KIND = "step-grid-per-optimizer"
TUNED_RATE_KIND = "tuned-rate"
FAMILY_KIND = "step-grid-family"
# Kinds whose configuration is tuned on a family's train instances (evaluations tune them first).
FAMILY_TUNED_KINDS = (FAMILY_KIND, PER_OPTIMIZER_KIND, TUNED_RATE_KIND)
PER_OPTIMIZER_SELECTION = (
    "per optimizer: lowest mean over that optimizer's tuning instances of the best validation loss divided "
    "by the instance's best over the grid (a diverged run counts divergence_loss)"
)
AGENT_OPTIONS = ("config", "family", "cache_dir", "jobs", "progress")
PER_OPTIMIZER_PARAMS = (*FAMILY_GRID_KEYS, "optimizers")
TUNED_RATE_PARAMS = ("agent", "rate_from")


def family_optimizers(family: TaskFamily) -> list[str]:
    """The optimizers ``family`` draws (its ``optimizer`` override, choice list or fixed value)."""
    if family.single:
        return [family.instance(0).optimizer]
    value = family.overrides.get("optimizer", family.distributions.get("optimizer", TaskSpec.optimizer))
    return list(dict.fromkeys(value)) if isinstance(value, list) else [str(value)]


def optimizer_instances(family: TaskFamily, optimizers: Sequence[str], count: int) -> dict[str, list[int]]:
    """For each optimizer, the first ``count`` train instances of ``family`` that use it."""
    found: dict[str, list[int]] = {optimizer: [] for optimizer in optimizers}
    train = family.indices("train")
    for index in train:
        if all(len(indices) >= count for indices in found.values()):
            break
        optimizer = family.instance(index).optimizer
        if optimizer in found and len(found[optimizer]) < count:
            found[optimizer].append(index)
    short = {optimizer: len(indices) for optimizer, indices in found.items() if len(indices) < count}
    if short:
        raise ValueError(
            f"{family.name!r} has fewer than {count} train instances of optimizer(s) {short} in {len(train)}"
        )
    return found


def optimizer_cache_path(cache_dir: str | Path, family: TaskFamily, spec: AgentSpec, optimizer: str) -> Path:
    """Where one optimizer's part of a per-optimizer choice is cached."""
    whole = family_cache_path(cache_dir, family, spec)
    return whole.with_name(f"{whole.stem}-{optimizer}.json")


def _spec(spec: AgentSpec | str) -> AgentSpec:
    return load_agent_spec(spec) if isinstance(spec, str) else spec


def per_optimizer_choice(
    family: TaskFamily | str, spec: AgentSpec | str = PER_OPTIMIZER_KIND, options: RunOptions = RUN_DEFAULTS,
    saved_in: str | Path | None = None,
) -> ResolvedChoice:
    """The per-optimizer choice (:func:`tune_per_optimizer`) and where it came from: read from
    ``saved_in`` or ``options.cache_dir``, else tuned now (each optimizer's part cached as it is made)."""
    family = load_family(family) if isinstance(family, str) else family
    spec = _spec(spec)
    return resolve_choice(
        lambda: _tune_each(family, spec, options),
        lambda folder: family_cache_path(folder, family, spec), options.cache_dir, saved_in,
    )


def tune_per_optimizer(
    family: TaskFamily | str, spec: AgentSpec | str = PER_OPTIMIZER_KIND, options: RunOptions = RUN_DEFAULTS
) -> dict[str, Any]:
    """One configuration per optimizer of ``family``, each chosen on that optimizer's train instances.

    :param family: a family or its name.
    :param spec: a grid spec of kind ``step-grid-per-optimizer``: the grid, ``tuning_instances``
        (per optimizer), ``tuning_seeds`` and optionally ``optimizers`` (default: the family's).
    :param options: ``jobs``, ``env_options``, ``progress``, ``backend``; the choice and its
        parts are read from ``cache_dir`` or written there.
    :return: ``by_optimizer`` (optimizer -> a family choice with ``initial_lr``, ``scheduler``,
        ``kwargs``, ``score``, ``tuning_instances``, ``grid``...), ``selection``,
        ``tuning_seeds``, ``tuned_on`` and ``agent``.
    """
    return per_optimizer_choice(family, spec, options).choice


def _tune_each(family: TaskFamily, spec: AgentSpec, options: RunOptions) -> dict[str, Any]:
    optimizers = [str(name) for name in spec.params.get("optimizers", family_optimizers(family))]
    count = tuning_instance_count(spec, len(family.indices("train")))
    by_optimizer = {}
    for optimizer, indices in optimizer_instances(family, optimizers, count).items():
        by_optimizer[optimizer] = resolve_choice(
            lambda indices=indices, optimizer=optimizer: tune_across(
                family, indices, spec, options, label=f"{family.name} {optimizer}"),
            lambda folder, optimizer=optimizer: optimizer_cache_path(folder, family, spec, optimizer),
            options.cache_dir,
        ).choice
    first = next(iter(by_optimizer.values()))
    return {
        "by_optimizer": by_optimizer,
        "selection": PER_OPTIMIZER_SELECTION,
        "tuning_seeds": first["tuning_seeds"],
        "tuned_on": {"name": family.name, "family": family.to_dict()},
        "agent": spec.to_dict(),
    }


def optimizer_choice(
    choice: Mapping[str, Any], optimizer: str, optimizer_kwargs: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The configuration ``choice`` gives optimizer ``optimizer``: its ``by_optimizer`` entry
    (or its kind's: AdamW takes Adam's, :func:`~lrgym.tasks.optimizers.per_optimizer_key`),
    or the choice itself when it is one configuration for every optimizer (a family choice)."""
    if "by_optimizer" not in choice:
        return dict(choice)
    table = choice["by_optimizer"]
    key = per_optimizer_key(table, optimizer, optimizer_kwargs)
    if key is None:
        raise ValueError(
            f"the per-optimizer choice has no configuration for optimizer {optimizer!r}; it has: {', '.join(table)}"
        )
    return dict(table[key])


def family_tuned_choice(
    family: TaskFamily, spec: AgentSpec | str, options: RunOptions = RUN_DEFAULTS
) -> dict[str, Any]:
    """The choice a family-tuned agent runs from (``config``), tuned or read from ``options.cache_dir``:
    a ``step-grid-family`` or ``step-grid-per-optimizer`` spec's own, a ``tuned-rate`` spec's ``rate_from``'s."""
    spec = _spec(spec)
    if spec.kind == TUNED_RATE_KIND:
        spec = _rate_from(spec)
    if spec.kind == PER_OPTIMIZER_KIND:
        return per_optimizer_choice(family, spec, options).choice
    if spec.kind == FAMILY_KIND:
        return family_choice(family, spec, options).choice
    raise ValueError(f"agent {spec.name!r} (kind {spec.kind!r}) is not tuned on a family; kinds: {FAMILY_TUNED_KINDS}")


def _rate_from(spec: AgentSpec) -> AgentSpec:
    source = load_agent_spec(str(spec.params.get("rate_from", "")))
    if source.kind not in (FAMILY_KIND, PER_OPTIMIZER_KIND):
        raise ValueError(
            f"agent {spec.name!r}: rate_from must name a spec of kind {FAMILY_KIND} or {PER_OPTIMIZER_KIND}, "
            f"got {source.name!r} (kind {source.kind!r})"
        )
    return source


def describe_family_tuned(label: str, choice: Mapping[str, Any]) -> str:
    """One line for an evaluation's summary: what a family-tuned agent runs, per optimizer."""
    parts = choice.get("by_optimizer", {"every optimizer": choice})
    configurations = "; ".join(
        f"{optimizer}: {part['scheduler']}(initial_lr={part['initial_lr']:g}"
        + "".join(f", {key}={value}" for key, value in part["kwargs"].items()) + ")"
        for optimizer, part in parts.items()
    )
    instances = sum(len(part.get("tuning_instances", [])) for part in parts.values())
    return f"`{label}` runs from a tuning on {instances} train instances ({configurations})"


def _choice(spec: AgentSpec, options: Mapping[str, Any]) -> dict[str, Any]:
    """An agent's choice: its ``config`` option as it is, else tuned on its ``family`` option."""
    choice = given_choice(options.get("config"))
    if choice is not None:
        return choice
    if options.get("family") is None:
        raise ValueError(
            f"agent {spec.name!r} is tuned on a task family: give config (a saved choice) or family "
            f"(e.g. evaluate it with `lrgym evaluate FAMILY --instances test:N`, or `lrgym tune FAMILY --agent ...`)"
        )
    family = options["family"]
    family = load_family(family) if isinstance(family, str) else family
    return family_tuned_choice(family, spec, agent_run_options(options))


def make_per_optimizer_agent(spec: AgentSpec, task: TaskSpec, **options: Any) -> Agent:
    """Factory of kind ``step-grid-per-optimizer``: the configuration tuned for ``task``'s optimizer.

    Options: ``config`` (a saved per-optimizer choice, a path or a dict) or ``family`` (tuned
    now, or read from ``cache_dir``; with ``jobs``, ``progress`` and the env options).
    """
    check_agent_options(spec, options, AGENT_OPTIONS, PER_OPTIMIZER_PARAMS)
    return choice_agent(optimizer_choice(_choice(spec, options), task.optimizer, task.optimizer_kwargs))


def make_tuned_rate_agent(spec: AgentSpec, task: TaskSpec, **options: Any) -> Agent:
    """Factory of kind ``tuned-rate``: agent ``agent`` started from the initial rate ``rate_from``
    chose for ``task``'s optimizer. Options as :func:`make_per_optimizer_agent` (``config`` is
    ``rate_from``'s choice)."""
    check_agent_options(spec, options, AGENT_OPTIONS, TUNED_RATE_PARAMS)
    _rate_from(spec)  # a bad spec fails before any tuning
    rate = optimizer_choice(_choice(spec, options), task.optimizer, task.optimizer_kwargs)["initial_lr"]
    return make_agent(str(spec.params.get("agent")), task, initial_lr=float(rate))

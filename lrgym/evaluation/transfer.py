"""Transfer: a controller drives a task it never saw, against the baseline transferred the same way.

The source paper's Table 2. A controller meta-trained on a *source* task (its
checkpoint card says which) acts on a *target* task without further training. It is
compared with

- the *transferred baseline*: the step-decay configuration tuned on the source task,
  applied unchanged (the reference of the tests, as in the paper);
- baselines on the target itself: the step-decay grid tuned on the target, and
  untuned schedules (constant, cosine by default).

Where the transferred step-decay choice comes from, in order: ``baseline_config`` (a
saved choice), the choice saved in the checkpoint folder for the source task and grid
(:func:`lrgym.agents.step_grid.cache_path`; ``lrgym experiment`` writes it there), or
tuned now on the source task's tuning seeds. A controller meta-trained on a task family
(its card has ``family``) is compared with the step decay tuned across that family's
train instances (``step-grid-family``, :mod:`lrgym.agents.step_grid_family`), found the
same ways.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrgym.agents.ppo import acting_overrides
from lrgym.agents.step_grid import cache_path, load_choice, save_choice, tune_step_grid
from lrgym.agents.step_grid_family import family_cache_path, tune_step_grid_family
from lrgym.checkpoints.checkpoint import check_signature, read_card
from lrgym.evaluation.evaluate import STEP_GRID_KIND, AgentEntry, evaluate, write_evaluation
from lrgym.runners.backend import LOCAL, Backend
from lrgym.tasks.family import TaskFamily
from lrgym.tasks.specs import TaskSpec, load_agent_spec

TRANSFERRED_BASELINE = "step-grid (transferred)"
TARGET_BASELINES = ("step-grid", "constant", "cosine")
# Task fields that change what the controller's observation or action means without
# changing the spaces: worth saying in the report when they differ.
MEANING_FIELDS = ("dataset", "model", "optimizer", "batch_size", "steps", "interval", "lr_scale", "reward")


@dataclass
class TransferPlan:
    """What a transfer runs: the agents on the target task, the reference and notes for the report."""

    checkpoint: Path
    source: TaskSpec
    target: TaskSpec
    entries: list[AgentEntry]
    reference: str
    notes: list[str]
    source_name: str = ""  # the source task's name, or the family's

    def __post_init__(self) -> None:
        self.source_name = self.source_name or self.source.name


def controller_label(checkpoint: str | Path) -> str:
    return f"ppo:{Path(checkpoint).name} (transferred)"


def differences(source: TaskSpec, target: TaskSpec) -> list[str]:
    """``field: source -> target`` for the fields in :data:`MEANING_FIELDS` that differ."""
    return [
        f"{name}: {getattr(source, name)} -> {getattr(target, name)}"
        for name in MEANING_FIELDS
        if getattr(source, name) != getattr(target, name)
    ]


def transferred_choice(
    checkpoint: Path,
    source: TaskSpec,
    baseline_config: str | Path | None = None,
    grid: str = "step-grid",
    jobs: int = 1,
    env_options: Mapping[str, Any] | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    max_tuning_s: float | None = None,
    family: TaskFamily | None = None,
    backend: Backend = LOCAL,
) -> tuple[dict[str, Any], str]:
    """The step-decay choice of the source task (or family), and where it came from.

    :param cache_dir: where a choice tuned now is saved (the checkpoint folder is not written to).
    :param max_tuning_s: refuse a tuning estimated to take longer (``None``: no bound).
    :param family: the source family of a family-trained controller: its family-tuned choice.
    """

    if baseline_config is not None:
        return load_choice(baseline_config), f"given by {baseline_config}"
    if family is not None:
        return _family_choice(checkpoint, family, jobs, env_options, cache_dir, progress)
    spec = load_agent_spec(grid)
    if spec.kind != STEP_GRID_KIND:
        raise ValueError(f"agent {grid!r} has kind {spec.kind!r}, not {STEP_GRID_KIND!r}")
    saved = cache_path(checkpoint, source, spec)
    if saved.is_file():
        return load_choice(saved), f"saved in the checkpoint folder ({saved.name})"
    cached = cache_path(cache_dir, source, spec) if cache_dir is not None else None
    if cached is not None and cached.is_file():
        return load_choice(cached), f"tuned earlier on the source task ({cached})"
    choice = tune_step_grid(
        source, spec, jobs=jobs, progress=progress, env_options=dict(env_options or {}), max_seconds=max_tuning_s,
        backend=backend,
    )
    if cached is not None:
        save_choice(choice, cached)
    return choice, "tuned now on the source task (no saved choice in the checkpoint folder)"


def _family_choice(
    checkpoint: Path,
    family: TaskFamily,
    jobs: int,
    env_options: Mapping[str, Any] | None,
    cache_dir: str | Path | None,
    progress: bool,
) -> tuple[dict[str, Any], str]:

    spec = load_agent_spec("step-grid-family")
    saved = family_cache_path(checkpoint, family, spec)
    if saved.is_file():
        return load_choice(saved), f"tuned across {family.name}, saved in the checkpoint folder ({saved.name})"
    cached = family_cache_path(cache_dir, family, spec) if cache_dir is not None else None
    origin = "tuned earlier" if cached is not None and cached.is_file() else "tuned now"
    choice = tune_step_grid_family(family, spec, jobs, progress, env_options, cache_dir)
    return choice, f"{origin} across the train instances of {family.name} ({spec.name})"


def plan_transfer(
    checkpoint: str | Path,
    target: TaskSpec,
    baseline_config: str | Path | None = None,
    target_baselines: Sequence[str] = TARGET_BASELINES,
    jobs: int = 1,
    env_options: Mapping[str, Any] | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    max_tuning_s: float | None = None,
    backend: Backend = LOCAL,
) -> TransferPlan:
    """Check that the controller fits ``target`` and choose the agents to compare.

    :param checkpoint: a controller checkpoint folder (``lrgym train``).
    :param target: the task to transfer to.
    :param baseline_config: a saved step-decay choice to transfer (default: see module doc).
    :param target_baselines: agents tuned or run on the target itself, labelled
        ``NAME (target)``; step-grid ones are tuned on the target's tuning seeds.
    :param max_tuning_s: refuse a step-decay tuning estimated to take longer (``None``: no bound).
    :raises ValueError: the controller's observation or action space does not fit the target.
    """

    checkpoint = Path(checkpoint)
    card = read_card(checkpoint)
    # a clear error before anything runs (the controller brings its state and action mode)
    check_signature(card, target.replace(**acting_overrides(card)), checkpoint)
    source = TaskSpec(**card["task"])
    family = TaskFamily.from_dict(card["family"]) if card.get("family") else None
    choice, origin = transferred_choice(
        checkpoint, source, baseline_config, jobs=jobs, env_options=env_options,
        cache_dir=cache_dir, progress=progress, max_tuning_s=max_tuning_s, family=family, backend=backend,
    )
    trained_on = f"the family `{family.name}`" if family else f"`{source.name}`"
    entries = [
        AgentEntry(TRANSFERRED_BASELINE, "step-grid", {"config": choice}),
        AgentEntry(controller_label(checkpoint), f"ppo:{checkpoint}"),
    ]
    entries += [AgentEntry(f"{name} (target)", name) for name in target_baselines]
    notes = [
        f"controller `{checkpoint}` meta-trained on {trained_on} for {card.get('timesteps')} "
        f"timesteps ({card.get('algorithm')}), acting on `{target.name}` without further training",
        f"`{TRANSFERRED_BASELINE}`: the source {'family' if family else 'task'}'s step-decay choice, {origin}",
    ]
    changed = differences(source, target) if family is None else []  # a family's fields vary
    if changed:
        notes.append("source -> target: " + "; ".join(changed))
    return TransferPlan(checkpoint, source, target, entries, TRANSFERRED_BASELINE, notes,
                        family.name if family else source.name)


def run_transfer(
    checkpoint: str | Path,
    target: TaskSpec,
    seeds: Sequence[int],
    folder: str | Path,
    baseline_config: str | Path | None = None,
    target_baselines: Sequence[str] = TARGET_BASELINES,
    jobs: int = 1,
    env_options: Mapping[str, Any] | None = None,
    max_tuning_s: float | None = None,
    backend: Backend = LOCAL,
) -> dict[str, Path]:
    """Plan the transfer, run every agent on ``target``'s ``seeds`` and write the outputs to ``folder``.

    Step-decay choices tuned here are cached in ``folder/step-grid``; a tuning estimated to
    take longer than ``max_tuning_s`` is refused before it starts (``None``: no bound);
    ``backend`` says where the runs execute.
    :returns: the written paths (as :func:`lrgym.evaluation.evaluate.write_evaluation`).
    """

    folder = Path(folder)
    cache_dir = folder / "step-grid"
    plan = plan_transfer(
        checkpoint, target, baseline_config, target_baselines, jobs=jobs,
        env_options=env_options, cache_dir=cache_dir, max_tuning_s=max_tuning_s, backend=backend,
    )
    evaluation = evaluate(
        target, plan.entries, list(seeds), jobs=jobs, env_options=env_options, cache_dir=cache_dir,
        max_tuning_s=max_tuning_s, backend=backend,
    )
    evaluation.notes[:0] = plan.notes
    title = f"Transfer {plan.source_name} -> {target.name}"
    return write_evaluation(evaluation, folder, reference=plan.reference, title=title)

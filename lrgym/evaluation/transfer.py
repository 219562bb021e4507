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
(:func:`lrgym.agents.step_grid.cache_path`; ``lrgym experiment`` writes it there), one
tuned earlier into the cache folder, or tuned now on the source task's tuning seeds and
cached (:func:`lrgym.agents.step_grid.resolve_choice` decides). A controller meta-trained
on a task family (its card has ``family``) is compared with the step decay tuned across
that family's train instances (``step-grid-family``, :mod:`lrgym.agents.step_grid_family`),
found the same ways.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrgym.agents.ppo import acting_overrides
from lrgym.agents.step_grid import load_choice, step_grid_choice
from lrgym.agents.step_grid_family import family_choice
from lrgym.checkpoints.checkpoint import check_signature, read_card
from lrgym.evaluation.evaluate import STEP_GRID_KIND, AgentEntry, evaluate
from lrgym.evaluation.family import FAMILY_STEP_GRID_KIND
from lrgym.evaluation.outputs import write_evaluation
from lrgym.runners.options import RUN_DEFAULTS, RunOptions
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
    options: RunOptions = RUN_DEFAULTS,
    family: TaskFamily | None = None,
) -> tuple[dict[str, Any], str]:
    """The step-decay choice of the source task (or family), and where it came from.

    :param options: how a tuning runs; its ``cache_dir`` is where a choice tuned now is
        saved (the checkpoint folder is read, never written to).
    :param family: the source family of a family-trained controller: its family-tuned choice.
    """
    if baseline_config is not None:
        return load_choice(baseline_config), f"given by {baseline_config}"
    if family is not None:
        spec = load_agent_spec(FAMILY_STEP_GRID_KIND)
        resolved = family_choice(family, spec, options, saved_in=checkpoint)
        if resolved.origin == "saved":
            return resolved.choice, f"tuned across {family.name}, saved in the checkpoint folder ({resolved.path.name})"
        origin = "tuned earlier" if resolved.origin == "cached" else "tuned now"
        return resolved.choice, f"{origin} across the train instances of {family.name} ({spec.name})"
    spec = load_agent_spec(grid)
    if spec.kind != STEP_GRID_KIND:
        raise ValueError(f"agent {grid!r} has kind {spec.kind!r}, not {STEP_GRID_KIND!r}")
    resolved = step_grid_choice(source, spec, options, saved_in=checkpoint)
    if resolved.origin == "saved":
        return resolved.choice, f"saved in the checkpoint folder ({resolved.path.name})"
    if resolved.origin == "cached":
        return resolved.choice, f"tuned earlier on the source task ({resolved.path})"
    return resolved.choice, "tuned now on the source task (no saved choice in the checkpoint folder)"


def plan_transfer(
    checkpoint: str | Path,
    target: TaskSpec,
    baseline_config: str | Path | None = None,
    target_baselines: Sequence[str] = TARGET_BASELINES,
    options: RunOptions = RUN_DEFAULTS,
) -> TransferPlan:
    """Check that the controller fits ``target`` and choose the agents to compare.

    :param checkpoint: a controller checkpoint folder (``lrgym train``).
    :param target: the task to transfer to.
    :param baseline_config: a saved step-decay choice to transfer (default: see module doc).
    :param target_baselines: agents tuned or run on the target itself, labelled
        ``NAME (target)``; step-grid ones are tuned on the target's tuning seeds.
    :param options: how a step-decay tuning of the source runs (:func:`transferred_choice`);
        one estimated to take longer than its ``max_tuning_s`` is refused.
    :raises ValueError: the controller's observation or action space does not fit the target.
    """
    checkpoint = Path(checkpoint)
    card = read_card(checkpoint)
    # a clear error before anything runs (the controller brings its state and action mode)
    check_signature(card, target.replace(**acting_overrides(card)), checkpoint)
    source = TaskSpec(**card["task"])
    family = TaskFamily.from_dict(card["family"]) if card.get("family") else None
    choice, origin = transferred_choice(checkpoint, source, baseline_config, options=options, family=family)
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
    options: RunOptions = RUN_DEFAULTS,
) -> dict[str, Path]:
    """Plan the transfer, run every agent on ``target``'s ``seeds`` and write the outputs to ``folder``.

    :param options: how the runs and tunings execute; step-decay choices tuned here are
        cached in ``folder/step-grid`` (in place of its ``cache_dir``), and a tuning estimated
        to take longer than its ``max_tuning_s`` is refused before it starts.
    :returns: the written paths (as :func:`lrgym.evaluation.outputs.write_evaluation`).
    """
    folder = Path(folder)
    options = options.replace(cache_dir=folder / "step-grid")
    plan = plan_transfer(checkpoint, target, baseline_config, target_baselines, options)
    evaluation = evaluate(target, plan.entries, list(seeds), options)
    evaluation.notes[:0] = plan.notes
    title = f"Transfer {plan.source_name} -> {target.name}"
    return write_evaluation(evaluation, folder, reference=plan.reference, title=title)

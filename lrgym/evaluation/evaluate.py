"""Evaluation: every agent on the same seeds of a task, in parallel.

Seeds are paired: run ``seed`` of every agent starts from the same initial weights,
sees the same batches and is scored on the same validation subset (the env derives
all of them from the seed), so agents can be compared seed by seed.

The files it becomes (results.csv, summary.md, figures) are written by
:mod:`lrgym.evaluation.outputs`.

Runs are spread over worker processes, or Ray tasks, by :func:`lrgym.runners.pool.run_placed`
(the backend decides; spawn context: CUDA and a forked torch do not mix); each worker
runs on ``--threads`` torch threads (1 by default; each row records them), loads each
dataset once (``lrgym.trainee.data`` caches it per process) and builds each agent once,
then reuses it for every seed it is given. Each result row
records the node it ran on (``node``); nothing else depends on where it ran.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lrgym.agents import make_agent, run_episode
from lrgym.agents.population_runs import can_run_as_population, run_population_episodes
from lrgym.agents.step_grid import given_choice, step_grid_choice
from lrgym.evaluation.outputs import (
    RESULT_COLUMNS,
    TRAJECTORY_COLUMNS,
    Evaluation,
    read_results,
    threads_note,
    write_evaluation,
)
from lrgym.runners.options import RUN_DEFAULTS, RunOptions
from lrgym.runners.pool import run_placed
from lrgym.tasks.specs import TaskSpec, is_spec_path, load_agent_spec
from lrgym.trainee.population import POPULATION_MIN

__all__ = [
    # the files an evaluation writes live in lrgym.evaluation.outputs; named here too
    "RESULT_COLUMNS", "TRAJECTORY_COLUMNS", "AgentEntry", "Evaluation", "STEP_GRID_KIND", "agent_entries",
    "checked_entries", "describe_choice", "episode_rows", "evaluate", "read_results", "resolve_tuned_agents",
    "run_batch", "run_one", "run_population", "write_evaluation",
]


@dataclass(frozen=True)
class AgentEntry:
    """One agent of an evaluation: a label for the tables and how to build it.

    :param label: the name shown in tables and plots (unique within an evaluation).
    :param name: an agent spec name or ``ppo:PATH``, as for :func:`lrgym.agents.make_agent`.
    :param options: keyword options passed to ``make_agent`` (e.g. a step-decay
        configuration chosen on another task). Must be picklable.
    """

    label: str
    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


def agent_entries(names: Sequence[str]) -> list[AgentEntry]:
    """Entries labelled by their own names (``ppo:PATH`` labelled ``ppo:<folder name>``, the
    path of an agent spec file by the file's stem, the path made absolute for the workers)."""
    entries = []
    for name in names:
        if name.startswith("ppo:"):
            entries.append(AgentEntry(label=f"ppo:{Path(name[4:]).name}", name=name))
        elif is_spec_path(name):
            path = Path(name).expanduser().resolve()
            entries.append(AgentEntry(label=path.stem, name=str(path)))
        else:
            entries.append(AgentEntry(label=name, name=name))
    labels = [entry.label for entry in entries]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"agent(s) listed twice: {', '.join(duplicates)}")
    return entries


def checked_entries(agents: Sequence[AgentEntry | str]) -> list[AgentEntry]:
    """Entries for ``agents`` (a name is labelled by itself), their labels checked unique."""
    entries = [a if isinstance(a, AgentEntry) else agent_entries([a])[0] for a in agents]
    labels = [entry.label for entry in entries]
    if len(set(labels)) != len(labels):
        raise ValueError(f"agent labels must be unique, got {labels}")
    return entries


# ---------------------------------------------------------------------------- one run
_WORKER_AGENTS: dict[tuple, Any] = {}  # agents built in this process, reused across seeds


def _build_agent(entry: AgentEntry, task: TaskSpec):

    key = (entry.name, repr(sorted(entry.options.items())), repr(task))
    if key not in _WORKER_AGENTS:
        _WORKER_AGENTS[key] = make_agent(entry.name, task, **dict(entry.options))
    return _WORKER_AGENTS[key]


def _number(value: Any) -> float:
    """Loss-like values from the env: ``None`` (not finite) becomes NaN."""
    return math.nan if value is None else float(value)


def run_one(
    entry: AgentEntry, task: TaskSpec, seed: int, env_options: Mapping[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One episode of ``entry`` on ``task`` with seed ``seed``: its result row and trajectory rows."""

    return episode_rows(entry, task, seed, run_episode(_build_agent(entry, task), task, seed, **dict(env_options)))


def run_population(
    entry: AgentEntry, task: TaskSpec, seeds: Sequence[int], env_options: Mapping[str, Any]
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """The episodes of ``entry`` on ``seeds`` as one population (lrgym.agents.population_runs), rows per seed."""
    import copy


    agent = _build_agent(entry, task)
    # One shallow copy per member: each keeps its own episode state, all share the policy.
    members = [copy.copy(agent) for _ in seeds]
    episodes = run_population_episodes(members, task, seeds, **dict(env_options))
    return [episode_rows(entry, task, seed, episode) for seed, episode in zip(seeds, episodes, strict=True)]


def run_batch(
    entry: AgentEntry, task: TaskSpec, seeds: Sequence[int], env_options: Mapping[str, Any], population: bool
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """One job of :func:`evaluate`: ``seeds`` of ``entry`` as a population, or one single episode."""
    if population:
        return run_population(entry, task, seeds, env_options)
    return [run_one(entry, task, seed, env_options) for seed in seeds]


def episode_rows(
    entry: AgentEntry, task: TaskSpec, seed: int, episode: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The result row and trajectory rows of one :class:`~lrgym.agents.EpisodeResult`."""
    info = episode.final_info
    last = episode.trajectory[-1] if episode.trajectory else None
    result = {
        "agent": entry.label,
        # the task's optimizer, or the one an agent that is an optimizer switched to (Prodigy ...)
        "trainee_optimizer": (episode.task or task).optimizer,
        "seed": seed,
        "initial_lr": episode.initial_lr,  # the env's draw for this seed: the same for every agent
        "first_lr": episode.first_lr,  # the rate the agent ran in the first interval
        "test_loss_at_best_val": _number(info.get("test_loss_at_best_val")),
        "test_accuracy_at_best_val": _number(info.get("test_accuracy_at_best_val")),
        "best_val_step": info.get("best_val_step"),
        "final_test_loss": _number(info.get("final_test_loss")),
        "final_test_accuracy": _number(info.get("final_test_accuracy")),
        "best_val_loss": _number(info.get("best_val_loss")),
        "final_val_loss": _number(last.val_loss) if last else math.nan,
        "diverged": episode.diverged,
        "decisions": len(episode.trajectory),
        "wall_time": episode.wall_time,
        "initial_val_loss": episode.initial_val_loss,  # a diverged run's floor (lrgym.evaluation.aggregate)
        # Results depend on it (a LeNet moved up to 12% between 1 and 2 threads): recorded per run,
        # read where it ran (--threads pins it).
        "torch_threads": torch.get_num_threads(),
    }
    trajectory = [
        {
            "agent": entry.label,
            "seed": seed,
            "decision": row.decision,
            "step": row.step,
            "lr": row.lr,
            "train_loss": _number(row.train_loss),
            "val_loss": _number(row.val_loss),
            "val_accuracy": _number(row.val_accuracy),
            "reward": row.reward,
        }
        for row in episode.trajectory
    ]
    return result, trajectory


# ---------------------------------------------------------------------------- tuned agents
STEP_GRID_KIND = "step-grid"


def describe_choice(label: str, choice: Mapping[str, Any]) -> str:
    """One line for the summary: the configuration a step-grid agent runs and where it was tuned."""
    kwargs = ", ".join(f"{key}={value}" for key, value in choice["kwargs"].items())
    tuned_on = choice.get("tuned_on", {}).get("name", "?")
    seeds = choice.get("tuning_seeds", [])
    score = choice.get("score")
    return (
        f"`{label}` runs {choice['scheduler']}(initial_lr={choice['initial_lr']:g}, {kwargs}), "
        f"chosen on `{tuned_on}`"
        + (f" with tuning seeds {seeds}" if seeds else "")
        + (f" (mean best validation loss {score:.4f})" if score is not None else "")
    )


def resolve_tuned_agents(
    entries: Sequence[AgentEntry], task: TaskSpec, options: RunOptions = RUN_DEFAULTS
) -> tuple[list[AgentEntry], list[str]]:
    """Tune every step-grid agent that has no ``config`` once, here, on ``task``'s tuning seeds.

    The workers then get the choice as the ``config`` option instead of each tuning
    the grid again. With ``options.cache_dir`` the choice is read from, or written to, the
    step-grid module's cache file there (:func:`lrgym.agents.step_grid.step_grid_choice`).
    A tuning estimated to take longer than ``options.max_tuning_s`` is refused.

    :return: the entries (step-grid ones carrying their choice) and a line per choice.
    """
    resolved, notes = [], []
    for entry in entries:
        spec = None if entry.name.startswith("ppo:") else load_agent_spec(entry.name)
        if spec is None or spec.kind != STEP_GRID_KIND:
            resolved.append(entry)
            continue
        choice = given_choice(entry.options.get("config"))
        if choice is None:  # tuned on the task its runs will have
            choice = step_grid_choice(task.replace(**spec.task_overrides), spec, options).choice
        resolved.append(AgentEntry(entry.label, entry.name, {**entry.options, "config": choice}))
        notes.append(describe_choice(entry.label, choice))
    return resolved, notes


# ---------------------------------------------------------------------------- many runs
def evaluate(
    task: TaskSpec,
    agents: Sequence[AgentEntry | str],
    seeds: Sequence[int],
    options: RunOptions = RUN_DEFAULTS,
    population: int | None = None,
) -> Evaluation:
    """Run every agent on every seed of ``task``.

    :param agents: entries, or agent names (labelled by their names).
    :param seeds: the evaluation seeds, the same for every agent (paired runs).
    :param options: ``jobs`` worker processes (1 runs in this process), ``env_options``
        (``device``, ``data_dir``, ``download``), ``progress``, ``backend``, and for the
        step-grid agents tuned first (:func:`resolve_tuned_agents`) ``cache_dir`` and
        ``max_tuning_s``.
    :param population: the seeds of a population-capable agent (schedules, tuned step
        decay, PPO controllers) run as populations, one per job, when each would have at
        least this many members and the task allows it
        (:func:`lrgym.agents.population_runs.can_run_as_population`); otherwise, and for other
        agents, one episode per job. 0 turns populations off; default
        :data:`lrgym.trainee.population.POPULATION_MIN`.
    :return: result and trajectory rows ordered by agent, then seed; each result row has
        the ``node`` it ran on.
    """
    entries = checked_entries(agents)
    if not entries or not seeds:
        raise ValueError("need at least one agent and one seed")
    entries, notes = resolve_tuned_agents(entries, task, options)
    notes += _check_agents_build(entries, task)
    work = _work(entries, task, seeds, options.jobs, POPULATION_MIN if population is None else int(population))
    placed = run_placed(
        run_batch, [(entry, task, batch, options.env_options, as_population) for entry, batch, as_population in work],
        options, description=f"evaluate {task.name}",
    )
    by_run = {
        (entry.label, seed): (outcome, node)
        for (entry, batch, _), (outcomes, node) in zip(work, placed, strict=True)
        for seed, outcome in zip(batch, outcomes, strict=True)
    }
    results, trajectories = [], []
    for entry in entries:
        for seed in seeds:
            (result, trajectory), node = by_run[entry.label, seed]
            results.append({**result, "node": node})
            trajectories.extend(trajectory)
    notes.append(threads_note(results))
    return Evaluation(task, [entry.label for entry in entries], list(seeds), results, trajectories, notes)


def _work(
    entries: Sequence[AgentEntry], task: TaskSpec, seeds: Sequence[int], jobs: int, population: int
) -> list[tuple[AgentEntry, list[int], bool]]:
    """The jobs of :func:`evaluate`: (entry, seeds, as a population). A population-capable
    agent's seeds run as populations, one per job (lrgym.agents.population_runs)."""
    work = []
    chunks = min(max(1, jobs), len(seeds))
    as_populations = population > 0 and len(seeds) // chunks >= population
    for entry in entries:
        if as_populations and can_run_as_population(_build_agent(entry, task), task):
            work += [(entry, list(seeds[index::chunks]), True) for index in range(chunks)]
        else:
            work += [(entry, [seed], False) for seed in seeds]
    return work


def _check_agents_build(entries: Sequence[AgentEntry], task: TaskSpec) -> list[str]:
    """Build each agent once here so a bad name or checkpoint fails before any worker starts.

    :return: a summary line for each agent that changes the task (e.g. the trainee's optimizer).
    """
    notes = []
    for entry in entries:
        overrides = getattr(_build_agent(entry, task), "task_overrides", None)
        if overrides:
            changes = ", ".join(f"{key}={value!r}" for key, value in overrides.items())
            notes.append(f"`{entry.label}` changes the task it runs: {changes} (its spec's [task] table)")
    return notes

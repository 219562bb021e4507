"""Evaluation: every agent on the same seeds, in parallel, written up as tables and figures.

Seeds are paired: run ``seed`` of every agent starts from the same initial weights,
sees the same batches and is scored on the same validation subset (the env derives
all of them from the seed), so agents can be compared seed by seed.

Runs are spread over worker processes, or Ray tasks, by :func:`lrgym.runners.pool.run_placed`
(the backend decides; spawn context: CUDA and a forked torch do not mix); each worker
uses one torch thread, loads each dataset once (``lrgym.trainee.data`` caches it per process)
and builds each agent once, then reuses it for every seed it is given. Each result row
records the node it ran on (``node``); nothing else depends on where it ran.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrgym.agents import make_agent, run_episode
from lrgym.agents.population_runs import can_run_as_population, run_population_episodes
from lrgym.agents.step_grid import cache_path, load_choice, save_choice, tune_step_grid
from lrgym.evaluation.statistics import summarize, summary_markdown
from lrgym.runners.backend import LOCAL, Backend
from lrgym.runners.pool import run_placed
from lrgym.tasks.specs import TaskSpec, load_agent_spec
from lrgym.trainee.population import POPULATION_MIN

RESULT_COLUMNS = (
    "agent", "trainee_optimizer", "seed", "initial_lr", "first_lr",
    "test_loss_at_best_val", "test_accuracy_at_best_val", "best_val_step",
    "final_test_loss", "final_test_accuracy",
    "best_val_loss", "final_val_loss",
    "diverged", "decisions", "wall_time", "initial_val_loss", "node",
)
TEXT_COLUMNS = ("agent", "trainee_optimizer", "node")
TRAJECTORY_COLUMNS = (
    "agent", "seed", "decision", "step", "lr", "train_loss", "val_loss", "val_accuracy", "reward",
)


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


@dataclass
class Evaluation:
    """The rows of an evaluation: one result per run and one trajectory row per decision."""

    task: TaskSpec
    agents: list[str]
    seeds: list[int]
    results: list[dict[str, Any]]
    trajectories: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)  # printed under the summary's heading


def agent_entries(names: Sequence[str]) -> list[AgentEntry]:
    """Entries labelled by their own names (``ppo:PATH`` labelled ``ppo:<folder name>``)."""
    entries = []
    for name in names:
        label = f"ppo:{Path(name[4:]).name}" if name.startswith("ppo:") else name
        entries.append(AgentEntry(label=label, name=name))
    labels = [entry.label for entry in entries]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"agent(s) listed twice: {', '.join(duplicates)}")
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
    entries: Sequence[AgentEntry],
    task: TaskSpec,
    jobs: int = 1,
    env_options: Mapping[str, Any] | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    max_tuning_s: float | None = None,
    backend: Backend = LOCAL,
) -> tuple[list[AgentEntry], list[str]]:
    """Tune every step-grid agent that has no ``config`` once, here, on ``task``'s tuning seeds.

    The workers then get the choice as the ``config`` option instead of each tuning
    the grid again. With ``cache_dir`` the choice is read from, or written to, the
    step-grid module's cache file there. A tuning estimated to take longer than
    ``max_tuning_s`` is refused (``None``: no bound).

    :return: the entries (step-grid ones carrying their choice) and a line per choice.
    """

    resolved, notes = [], []
    for entry in entries:
        if entry.name.startswith("ppo:"):
            resolved.append(entry)
            continue
        spec = load_agent_spec(entry.name)
        if spec.kind != STEP_GRID_KIND:
            resolved.append(entry)
            continue
        choice = entry.options.get("config")
        if choice is None:
            tuning_task = task.replace(**spec.task_overrides)  # the task its runs will have
            path = cache_path(cache_dir, tuning_task, spec) if cache_dir is not None else None
            if path is not None and path.is_file():
                choice = load_choice(path)
            else:
                choice = tune_step_grid(
                    tuning_task, spec, jobs=jobs, progress=progress, env_options=dict(env_options or {}),
                    max_seconds=max_tuning_s, backend=backend,
                )
                if path is not None:
                    save_choice(choice, path)
        elif not isinstance(choice, Mapping):
            choice = load_choice(choice)
        resolved.append(AgentEntry(entry.label, entry.name, {**entry.options, "config": dict(choice)}))
        notes.append(describe_choice(entry.label, choice))
    return resolved, notes


# ---------------------------------------------------------------------------- many runs
def evaluate(
    task: TaskSpec,
    agents: Sequence[AgentEntry | str],
    seeds: Sequence[int],
    jobs: int = 1,
    env_options: Mapping[str, Any] | None = None,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    population: int | None = None,
    max_tuning_s: float | None = None,
    backend: Backend = LOCAL,
) -> Evaluation:
    """Run every agent on every seed of ``task``.

    :param agents: entries, or agent names (labelled by their names).
    :param seeds: the evaluation seeds, the same for every agent (paired runs).
    :param jobs: worker processes; 1 runs in this process.
    :param env_options: ``device``, ``data_dir``, ``download``.
    :param progress: show a tqdm progress bar (on stderr).
    :param cache_dir: where tuned step-grid choices are cached (see :func:`resolve_tuned_agents`).
    :param population: the seeds of a population-capable agent (schedules, tuned step
        decay, PPO controllers) run as populations, one per job, when each would have at
        least this many members and the task allows it
        (:func:`lrgym.agents.population_runs.can_run_as_population`); otherwise, and for other
        agents, one episode per job. 0 turns populations off; default
        :data:`lrgym.trainee.population.POPULATION_MIN`.
    :param max_tuning_s: refuse a step-grid tuning estimated to take longer (``None``: no bound).
    :param backend: where the runs execute (:class:`lrgym.runners.pool.Backend`: local processes or Ray).
    :return: result and trajectory rows ordered by agent, then seed; each result row has
        the ``node`` it ran on.
    """
    entries = [a if isinstance(a, AgentEntry) else agent_entries([a])[0] for a in agents]
    labels = [entry.label for entry in entries]
    if len(set(labels)) != len(labels):
        raise ValueError(f"agent labels must be unique, got {labels}")
    if not entries or not seeds:
        raise ValueError("need at least one agent and one seed")
    env_options = dict(env_options or {})
    entries, notes = resolve_tuned_agents(
        entries, task, jobs, env_options, cache_dir, progress, max_tuning_s, backend
    )
    notes += _check_agents_build(entries, task)

    population = POPULATION_MIN if population is None else int(population)
    # A population-capable agent's seeds run as populations, one per job (lrgym.agents.population_runs).
    work = []
    chunks = min(max(1, jobs), len(seeds))
    as_populations = population > 0 and len(seeds) // chunks >= population
    for entry in entries:
        if as_populations and can_run_as_population(_build_agent(entry, task), task):
            work += [(entry, list(seeds[index::chunks]), True) for index in range(chunks)]
        else:
            work += [(entry, [seed], False) for seed in seeds]
    placed = run_placed(
        run_batch, [(entry, task, batch, env_options, as_population) for entry, batch, as_population in work],
        jobs, description=f"evaluate {task.name}", progress=progress,
        backend=backend, device=str(env_options.get("device", "auto")),
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
    return Evaluation(task, labels, list(seeds), results, trajectories, notes)


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


# ---------------------------------------------------------------------------- writing
def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _csv_value(row.get(key)) for key in columns})


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Read a ``results.csv`` back into rows with numbers and booleans (blank -> NaN; text,
    such as a family instance's model, stays text)."""
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            parsed: dict[str, Any] = {}
            for key, value in row.items():
                if key in TEXT_COLUMNS:
                    parsed[key] = value
                elif key == "diverged":
                    parsed[key] = value == "True"
                elif value == "":
                    parsed[key] = math.nan
                else:
                    try:
                        parsed[key] = float(value)
                    except ValueError:
                        parsed[key] = value
            parsed["seed"] = int(parsed["seed"])
            if "instance" in parsed:
                parsed["instance"] = int(parsed["instance"])
            rows.append(parsed)
    return rows


def write_tensorboard(evaluation: Evaluation, folder: Path) -> Path:
    """Scalars per agent (one TensorBoard run each) and seed, against trainee steps."""
    from torch.utils.tensorboard import SummaryWriter

    root = folder / "tensorboard"
    writers = {
        label: SummaryWriter(log_dir=str(root / _safe_name(label))) for label in evaluation.agents
    }
    for row in evaluation.trajectories:
        writer, prefix = writers[row["agent"]], f"seed_{row['seed']}"
        for key in ("lr", "train_loss", "val_loss", "val_accuracy"):
            if not math.isnan(row[key]):
                writer.add_scalar(f"{prefix}/{key}", row[key], global_step=row["step"])
    for row in evaluation.results:
        writer = writers[row["agent"]]
        for key in ("test_loss_at_best_val", "test_accuracy_at_best_val", "best_val_loss"):
            if not math.isnan(row[key]):
                writer.add_scalar(f"result/{key}", row[key], global_step=row["seed"])
    for writer in writers.values():
        writer.close()
    return root


def _safe_name(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def write_evaluation(
    evaluation: Evaluation, folder: str | Path, reference: str | None = None, title: str | None = None
) -> dict[str, Path]:
    """Write results.csv, trajectories.csv, summary.md, lr.png, val_loss.png and TensorBoard scalars.

    :param reference: the agent the others are tested against (default: the first).
    :return: what was written, by kind.
    """
    from lrgym.evaluation.plots import plot_lr, plot_val_loss

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    reference = reference or evaluation.agents[0]
    if reference not in evaluation.agents:
        raise ValueError(f"reference agent {reference!r} is not among {evaluation.agents}")
    paths = {
        "results": folder / "results.csv",
        "trajectories": folder / "trajectories.csv",
        "summary": folder / "summary.md",
        "lr_plot": folder / "lr.png",
        "val_loss_plot": folder / "val_loss.png",
    }
    write_csv(paths["results"], evaluation.results, RESULT_COLUMNS)
    write_csv(paths["trajectories"], evaluation.trajectories, TRAJECTORY_COLUMNS)
    summaries = summarize(evaluation.results, reference=reference)
    task = evaluation.task
    heading = title or f"Evaluation on {task.name}"
    seeds = evaluation.seeds
    seed_text = f"{seeds[0]}..{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else seeds
    text = (
        f"# {heading}\n\nTask `{task.name}` ({task.dataset}, {task.model}, {task.optimizer}, "
        f"{task.steps} steps, a decision every {task.interval}, batch {task.batch_size}); "
        f"{len(seeds)} paired seeds ({seed_text}).\n\n"
        + "".join(f"- {note}\n" for note in evaluation.notes)
        + ("\n" if evaluation.notes else "")
        + summary_markdown(summaries, reference)
    )
    paths["summary"].write_text(text)
    plot_lr(evaluation.trajectories, paths["lr_plot"], evaluation.agents, title=heading)
    plot_val_loss(evaluation.trajectories, paths["val_loss_plot"], evaluation.agents, title=heading)
    paths["tensorboard"] = write_tensorboard(evaluation, folder)
    return paths


def default_jobs() -> int:
    """One worker per CPU this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

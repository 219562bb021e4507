"""The tuned step-decay baseline: the source paper's grid search, then a fixed ``StepLR``.

The protocol of Xu et al. (2019): run every configuration of a grid (initial rate
{0.1, 0.01, 0.001, 0.0001} x decay every {10, 20, 50, 100} steps x factor
{0.99, 0.9, 0.88}) on *tuning* seeds, pick the one with the best mean best-validation
loss, then report it on fresh *evaluation* seeds. The tuning seeds are a spec field
(1000, 1001, 1002 by default), apart from the evaluation seeds 0, 1, ... that
``lrgym evaluate`` uses.

The grid is data (``agents/step-grid.toml``): ``scheduler`` names any
``torch.optim.lr_scheduler`` class, ``initial_lrs`` the rates to try and ``[grid]`` each
keyword's values (absolute, e.g. steps, not fractions of the budget: a chosen
configuration is transferred to another task unchanged, as the paper did). Another
schedule family goes through the same protocol with another spec of kind ``step-grid``.

The choice is a JSON-able dict (:func:`tune_step_grid`; :func:`save_choice` and
:func:`load_choice` write and read it) holding the chosen ``initial_lr``, ``scheduler``
and ``kwargs``, the score, the tuning seeds, the task it was tuned on and every grid
row. :func:`resolve_choice` is how every caller gets a choice: read from the file it was
kept in (:func:`cache_path` names it), or tuned now and written there. The ``step-grid``
agent runs the chosen configuration with
:class:`~lrgym.agents.fixed_schedules.ScheduleAgent`: the torch scheduler's rate at every
trainee step, starting from the chosen initial rate (not the env's).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from lrgym.agents.base import make_env, run_episode
from lrgym.agents.fixed_schedules import ENV_OPTION_KEYS, ScheduleAgent
from lrgym.agents.population_runs import run_population_episodes
from lrgym.runners.options import RUN_DEFAULTS, RunOptions
from lrgym.runners.pool import run_jobs
from lrgym.tasks.specs import AgentSpec, TaskSpec, load_agent_spec
from lrgym.trainee.population import POPULATION_MIN, population_error

SELECTION = "lowest mean over the tuning seeds of the episode's best validation loss"
# A tuning estimated to take longer than this is refused unless asked for (--allow-long-tuning):
# on a CPU the paper preset's grid takes hours, and nothing else in a command would say so.
LONG_TUNING_S = 30 * 60
# The rest of a schedule spec a grid may fix for every configuration (a composition such as
# warm-up then cosine: nested ``schedulers``, sizes as ``budget_fractions``); the grid varies
# the initial rate and the top scheduler's ``kwargs``.
FIXED_SCHEDULE_KEYS = ("budget_fractions", "lr_multiples", "budget_total_factors", "schedulers")
GRID_KEYS = ("scheduler", "initial_lrs", "grid", "tuning_seeds", *FIXED_SCHEDULE_KEYS)
AGENT_OPTIONS = ("config", "cache_dir", "jobs", "progress", "max_tuning_s")
CHOICE_KEYS = ("initial_lr", "scheduler", "kwargs")


def grid_configurations(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every configuration of a grid spec's params, in grid order (initial rate first)."""
    missing = [key for key in ("scheduler", "initial_lrs", "grid") if key not in params]
    if missing:
        raise ValueError(f"a grid spec needs {', '.join(missing)} (see agents/step-grid.toml)")
    names = list(params["grid"])
    fixed = {key: params[key] for key in FIXED_SCHEDULE_KEYS if key in params}
    configurations = []
    for initial_lr in params["initial_lrs"]:
        for values in itertools.product(*(params["grid"][name] for name in names)):
            configurations.append(
                {"initial_lr": float(initial_lr), "scheduler": params["scheduler"],
                 "kwargs": dict(zip(names, values, strict=True)), **fixed}
            )
    return configurations


def configuration(row: Mapping[str, Any]) -> dict[str, Any]:
    """What runs a schedule, from a grid row or a choice: ``initial_lr``, ``scheduler``,
    ``kwargs`` and the fixed schedule keys it has (:data:`FIXED_SCHEDULE_KEYS`)."""
    return {key: row[key] for key in (*CHOICE_KEYS, *FIXED_SCHEDULE_KEYS) if key in row}


def choice_agent(choice: Mapping[str, Any]) -> ScheduleAgent:
    """The schedule agent that runs a configuration (a grid row or a saved choice)."""
    schedule = {key: value for key, value in configuration(choice).items() if key != "initial_lr"}
    return ScheduleAgent({**schedule, "kwargs": dict(schedule["kwargs"])}, choice["initial_lr"])


# Envs built in this process, reused across configurations and seeds (the dataset and
# the env construction are paid once per worker, not once per run).
_ENVS: dict[str, Any] = {}


def _env(task: TaskSpec, env_options: Mapping[str, Any]) -> Any:
    key = json.dumps([task.to_dict(), dict(env_options)], sort_keys=True, default=str)
    if key not in _ENVS:
        _ENVS[key] = make_env(task, "lr", **env_options)
    return _ENVS[key]


def score_configuration(
    task: TaskSpec, configuration: Mapping[str, Any], seed: int, env_options: Mapping[str, Any]
) -> float:
    """The best validation loss of one episode of ``configuration`` (``inf`` if none was finite)."""
    result = run_episode(choice_agent(configuration), _env(task, env_options), seed)
    best = result.final_info.get("best_val_loss")
    return math.inf if best is None else float(best)


def tuning_plan(
    task: TaskSpec, spec: AgentSpec, seeds: Sequence[int], jobs: int, env_options: Mapping[str, Any]
) -> tuple[str, float]:
    """What a tuning will run and how long it should take here: (one line, estimated seconds).

    The estimate times one reset and one decision of ``task`` on this machine (the first
    decision, warm-up included, so it leans long) and scales it to the grid's episodes
    over ``jobs`` workers.
    """
    import time

    episodes = len(grid_configurations(spec.params)) * len(seeds)
    env = _env(task, env_options)
    started = time.perf_counter()
    env.reset(seed=seeds[0])
    reset_s = time.perf_counter() - started
    env.step([spec.params["initial_lrs"][0]])
    decision_s = time.perf_counter() - started - reset_s
    workers = max(1, min(jobs, episodes))
    seconds = episodes * (reset_s + task.decisions * decision_s) / workers
    line = (
        f"tuning {spec.name} on {task.name}: {len(grid_configurations(spec.params))} configurations x "
        f"{len(seeds)} tuning seeds = {episodes} episodes of {task.decisions} decisions; one decision took "
        f"{decision_s:.2f} s here, so about {_duration(seconds)} on {workers} worker(s)"
    )
    return line, seconds


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def score_configurations(
    task: TaskSpec, runs: Sequence[tuple[Mapping[str, Any], int]], env_options: Mapping[str, Any]
) -> list[float]:
    """:func:`score_configuration` of every (configuration, seed) in ``runs``, as one population
    (each member its own configuration and seed) when ``task`` allows it and there are at
    least :data:`lrgym.trainee.population.POPULATION_MIN` runs, else one by one."""

    if population_error(task) is not None or len(runs) < POPULATION_MIN:
        return [score_configuration(task, configuration, seed, env_options) for configuration, seed in runs]
    agents = [choice_agent(configuration) for configuration, _ in runs]
    episodes = run_population_episodes(agents, task, [seed for _, seed in runs], **dict(env_options))
    bests = [episode.final_info.get("best_val_loss") for episode in episodes]
    return [math.inf if best is None else float(best) for best in bests]


# Most members per tuning population (the runs are split into at least ``jobs`` populations).
POPULATION_LIMIT = 64


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no infinity


def tune_step_grid(
    task: TaskSpec,
    spec: AgentSpec | str = "step-grid",
    seeds: Sequence[int] | None = None,
    options: RunOptions = RUN_DEFAULTS,
) -> dict[str, Any]:
    """Run a grid spec's every configuration on tuning seeds of ``task``; return the choice.

    Prints what it will run and an estimate of its time first (:func:`tuning_plan`). Caches
    nothing: :func:`step_grid_choice` reads a cached choice or tunes and caches it.

    :param task: the task to tune on.
    :param spec: an agent spec of kind ``step-grid``, or its name in ``agents/``.
    :param seeds: tuning seeds (default: the spec's ``tuning_seeds``); keep them apart
        from the evaluation seeds.
    :param options: ``jobs`` worker processes (every argument is picklable; the runs go as
        populations of at most :data:`POPULATION_LIMIT`, at least ``jobs`` of them, when the
        task allows it: :func:`lrgym.trainee.population.population_error`), ``env_options``
        for the tuning envs, ``progress``, ``max_tuning_s`` (a tuning estimated to take longer
        is refused with a ``ValueError``) and ``backend`` (the same choice on either); its
        ``cache_dir`` is not read here.
    :returns: a JSON-able dict: ``initial_lr``, ``scheduler``, ``kwargs`` (what the agent
        runs), ``score`` (its mean best validation loss), ``selection``, ``tuning_seeds``,
        ``tuned_on`` (the task spec), ``agent`` (the grid spec) and ``grid`` (every row with
        its per-seed ``scores`` and ``mean``; ``None`` stands for not finite).
    """
    spec = load_agent_spec(spec) if isinstance(spec, str) else spec
    configurations = grid_configurations(spec.params)
    seeds = [int(seed) for seed in (seeds if seeds is not None else spec.params.get("tuning_seeds", [1000]))]
    if not seeds:
        raise ValueError("tune_step_grid needs at least one tuning seed")
    plan, seconds = tuning_plan(task, spec, seeds, options.jobs, options.env_options)
    if options.max_tuning_s is not None and seconds > options.max_tuning_s:
        raise ValueError(
            f"{plan}: longer than the {_duration(options.max_tuning_s)} allowed without asking; run it anyway "
            "with --allow-long-tuning, or give a step-decay choice saved earlier (--baseline-config)"
        )
    print(plan, flush=True)
    runs = [(index, seed) for index in range(len(configurations)) for seed in seeds]
    # Configurations x seeds as populations (lrgym.agents.population_runs): at least one per job.
    count = min(len(runs), max(options.jobs, -(-len(runs) // POPULATION_LIMIT)))
    batches = [runs[start::count] for start in range(count)]
    batch_scores = run_jobs(
        score_configurations,
        [(task, [(configurations[index], seed) for index, seed in batch], options.env_options) for batch in batches],
        options, description=f"tuning {spec.name} on {task.name}", unit="population",
    )
    scores = {run: score for batch, values in zip(batches, batch_scores, strict=True) for run, score in zip(
        batch, values, strict=True)}
    return choose_configuration(task, spec, configurations, seeds, scores)


def choose_configuration(
    task: TaskSpec,
    spec: AgentSpec,
    configurations: Sequence[Mapping[str, Any]],
    seeds: Sequence[int],
    scores: Mapping[tuple[int, int], float],
) -> dict[str, Any]:
    """The choice (see :func:`tune_step_grid`) from every (configuration index, seed) score on ``task``."""
    rows = []
    for index, row_configuration in enumerate(configurations):
        row_scores = [scores[index, seed] for seed in seeds]
        mean = sum(row_scores) / len(row_scores)
        rows.append({**row_configuration, "scores": [_finite_or_none(s) for s in row_scores], "mean": mean})
    best = min(rows, key=lambda row: row["mean"])  # ties: the first in grid order
    if not math.isfinite(best["mean"]):
        raise ValueError(f"every configuration of {spec.name} diverged on {task.name}")
    for row in rows:
        row["mean"] = _finite_or_none(row["mean"])
    return {
        **configuration(best),
        "score": best["mean"],
        "selection": SELECTION,
        "tuning_seeds": list(seeds),
        "tuned_on": task.to_dict(),
        "agent": spec.to_dict(),
        "grid": rows,
    }


def save_choice(choice: Mapping[str, Any], path: str | Path) -> Path:
    """Write a choice as JSON (atomically: parallel workers never read half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(choice, indent=2) + "\n")
    temporary.replace(path)
    return path


def load_choice(path: str | Path) -> dict[str, Any]:
    """Read a choice written by :func:`save_choice`, checking it names a configuration."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no step-grid choice at {path} (write one with tune_step_grid + save_choice)")
    try:
        choice = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a step-grid choice: it is not valid JSON ({error})") from error
    if not isinstance(choice, dict):
        raise ValueError(f"{path} is not a step-grid choice: expected a JSON object, got {type(choice).__name__}")
    # A per-optimizer choice (lrgym.agents.per_optimizer) holds one configuration per optimizer.
    parts = choice.get("by_optimizer") if isinstance(choice.get("by_optimizer"), dict) else {"": choice}
    for optimizer, part in parts.items():
        missing = [key for key in CHOICE_KEYS if not isinstance(part, dict) or key not in part]
        if missing:
            where = f" (by_optimizer.{optimizer})" if optimizer else ""
            raise ValueError(f"{path} is not a step-grid choice: it lacks {', '.join(missing)}{where}")
    return choice


def cache_path(cache_dir: str | Path, task: TaskSpec, spec: AgentSpec) -> Path:
    """Where the choice for ``task`` and ``spec`` is cached: named by both, so a changed
    task or grid is tuned again instead of reusing a stale choice."""
    identity = json.dumps([task.identity(), spec.to_dict()], sort_keys=True)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{spec.name}-{task.name}-{digest}.json"


class ResolvedChoice(NamedTuple):
    """A step-grid choice and where it came from (:func:`resolve_choice`)."""

    choice: dict[str, Any]
    origin: str  # "saved" (read from saved_in), "cached" (read from cache_dir) or "tuned" (tuned now)
    path: Path | None  # the file it was read from or written to (None: tuned, not cached)


def resolve_choice(
    tune: Callable[[], dict[str, Any]],
    file_in: Callable[[str | Path], Path],
    cache_dir: str | Path | None,
    saved_in: str | Path | None = None,
) -> ResolvedChoice:
    """A step-grid choice read from where it was kept, or tuned now and kept: the one place
    that decides, for every kind of choice (a task's, a family's, an instance's).

    :param tune: tunes the choice; called only when no file holds it.
    :param file_in: the choice's file in a folder (:func:`cache_path`, or
        :func:`lrgym.agents.step_grid_family.family_cache_path` / ``instance_cache_path``).
    :param cache_dir: the folder read first and written to after a tuning; ``None``: neither.
    :param saved_in: a folder read before ``cache_dir`` and never written (a checkpoint folder).
    """
    for origin, folder in (("saved", saved_in), ("cached", cache_dir)):
        if folder is not None and (path := file_in(folder)).is_file():
            return ResolvedChoice(load_choice(path), origin, path)
    choice = tune()
    path = save_choice(choice, file_in(cache_dir)) if cache_dir is not None else None
    return ResolvedChoice(choice, "tuned", path)


def step_grid_choice(
    task: TaskSpec, spec: AgentSpec, options: RunOptions = RUN_DEFAULTS, saved_in: str | Path | None = None
) -> ResolvedChoice:
    """``spec``'s choice on ``task``: read from ``saved_in`` or ``options.cache_dir``
    (:func:`cache_path`), else tuned now (:func:`tune_step_grid`) and cached there."""
    return resolve_choice(
        lambda: tune_step_grid(task, spec, options=options),
        lambda folder: cache_path(folder, task, spec), options.cache_dir, saved_in,
    )


def given_choice(config: Mapping[str, Any] | str | Path | None) -> dict[str, Any] | None:
    """The choice an agent's ``config`` option gives: a choice dict as it is, a path read
    (:func:`load_choice`); ``None`` when there is none."""
    if config is None:
        return None
    return dict(config) if isinstance(config, Mapping) else load_choice(config)


def check_agent_options(
    spec: AgentSpec, options: Mapping[str, Any], valid_options: Sequence[str], valid_params: Sequence[str]
) -> None:
    """A clear error for an option (to ``make_agent``) or a spec param a grid agent does not know."""
    unknown = set(options) - set(valid_options) - set(ENV_OPTION_KEYS)
    if unknown:
        raise ValueError(
            f"agent {spec.name!r}: unknown option(s) {sorted(unknown)}; "
            f"valid: {', '.join((*valid_options, *ENV_OPTION_KEYS))}"
        )
    unknown = set(spec.params) - set(valid_params)
    if unknown:
        raise ValueError(f"agent {spec.name!r}: unknown param(s) {sorted(unknown)}; valid: {', '.join(valid_params)}")


def agent_run_options(options: Mapping[str, Any]) -> RunOptions:
    """The run options of a grid agent's tuning, from its ``make_agent`` options: ``jobs``
    (default 1), ``progress`` (default True), ``cache_dir``, ``max_tuning_s`` and the env
    options ``device`` (default ``auto``), ``data_dir``, ``download``."""
    return RunOptions(
        jobs=int(options.get("jobs", 1)), progress=bool(options.get("progress", True)),
        env_options={"device": "auto", **{key: options[key] for key in ENV_OPTION_KEYS if key in options}},
        cache_dir=options.get("cache_dir"), max_tuning_s=options.get("max_tuning_s"),
    )


def make_step_grid_agent(spec: AgentSpec, task: TaskSpec, **options: Any) -> ScheduleAgent:
    """Factory of kind ``step-grid``: the chosen configuration as a schedule agent.

    Options, in order of precedence:

    - ``config``: a saved choice (a path to its JSON) or a choice dict, e.g. tuned on
      another task: used as it is (this is how the baseline is transferred);
    - ``cache_dir``: a folder; the choice for this task and grid is read from it, or
      tuned now and written there (:func:`cache_path`);
    - neither: tuned now on ``task`` and kept in memory only.

    Tuning takes ``jobs`` (default 1), ``progress`` (default True), ``max_tuning_s`` and the
    env options ``device`` (default ``auto``), ``data_dir``, ``download``. Callers that build
    the agent in several processes should tune once (:func:`tune_step_grid`) and pass ``config``.
    """
    check_agent_options(spec, options, AGENT_OPTIONS, GRID_KEYS)
    choice = given_choice(options.get("config"))
    if choice is None:
        choice = step_grid_choice(task, spec, agent_run_options(options)).choice
    return choice_agent(choice)

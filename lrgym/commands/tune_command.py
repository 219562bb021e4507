"""``lrgym tune TASK``: tune a step-decay grid alone and write its choice JSON.

- a task family with a ``step-grid-family`` grid (default for families): one
  configuration for the whole family, chosen on its train instances;
- a task family with a ``step-grid-per-optimizer`` grid: one configuration per optimizer,
  each chosen on that optimizer's train instances;
- a task family with a ``step-grid`` grid and ``--instances``: one choice per instance
  (the per-instance oracle), all runs in parallel;
- a single task with a ``step-grid`` grid (default for tasks): the paper's protocol.

The choices are written under ``--out`` with the names ``lrgym evaluate`` caches them by
(``OUT/step-grid`` of an evaluation is such a folder), in the step-grid choice format:
``initial_lr``, ``scheduler``, ``kwargs`` (a residual controller's ``base_schedule``).
"""

from __future__ import annotations

import argparse

from lrgym.agents.per_optimizer import PER_OPTIMIZER_KIND, optimizer_cache_path, tune_per_optimizer
from lrgym.agents.step_grid import cache_path, save_choice, tune_step_grid
from lrgym.agents.step_grid_family import family_cache_path, instance_cache_path, tune_instances, tune_step_grid_family
from lrgym.commands.common import (
    TASK_HELP,
    add_task_arguments,
    out_dir,
    parse_overrides,
    run_options,
)
from lrgym.tasks.family import load_family, parse_instances
from lrgym.tasks.specs import load_agent_spec

HELP = "tune a step-decay grid on a task, across a family's train instances, or per instance; write the choice JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", help=TASK_HELP)
    parser.add_argument(
        "--agent", default=None,
        help="grid spec: a name in agents/ or the path of its TOML file (default: step-grid-family for a "
             "family, step-grid for a task)",
    )
    parser.add_argument(
        "--instances", default=None, metavar="SPLIT:N|SPLIT:FIRST-LAST",
        help="with a step-grid grid on a family: tune on each of these instances (e.g. test:20)",
    )
    parser.add_argument("--jobs", "-j", type=int, default=None, help="worker processes (default: one per CPU core)")
    parser.add_argument("--out", default=None, help="folder for the choice JSON (default runs/tune-TASK)")
    add_task_arguments(parser)


def _describe(choice: dict) -> str:
    arguments = ", ".join([f"initial_lr={choice['initial_lr']:g}",
                           *(f"{key}={value}" for key, value in choice["kwargs"].items())])
    return f"{choice['scheduler']}({arguments}), score {choice['score']:.4f}"


def run(args: argparse.Namespace) -> int:
    options = run_options(args)  # a bad --backend fails before anything else
    family = load_family(args.task, **parse_overrides(args.overrides))
    spec = load_agent_spec(args.agent or ("step-grid" if family.single else "step-grid-family"))
    folder = out_dir(args.out or f"runs/tune-{family.name}")
    options = options.replace(cache_dir=folder)  # the choices are written where `lrgym evaluate` caches them
    if spec.kind == "step-grid-family":
        if family.single:
            raise ValueError(f"{spec.name!r} tunes across a family's instances; {args.task!r} is a single task")
        choice = tune_step_grid_family(family, spec, options)
        print(f"{family.name}: {_describe(choice)} over train instances {choice['tuning_instances']}")
        print(f"wrote {family_cache_path(folder, family, spec)}")
        return 0
    if spec.kind == PER_OPTIMIZER_KIND:
        if family.single:
            raise ValueError(f"{spec.name!r} tunes across a family's instances; {args.task!r} is a single task")
        choice = tune_per_optimizer(family, spec, options)
        for optimizer, part in choice["by_optimizer"].items():
            print(f"{family.name} {optimizer}: {_describe(part)} over train instances {part['tuning_instances']}"
                  f"  -> {optimizer_cache_path(folder, family, spec, optimizer)}")
        print(f"wrote {family_cache_path(folder, family, spec)}")
        return 0
    if spec.kind != "step-grid":
        raise ValueError(
            f"--agent {spec.name!r} has kind {spec.kind!r}; lrgym tune needs step-grid, step-grid-family "
            f"or {PER_OPTIMIZER_KIND}"
        )
    if family.single:
        if args.instances:
            raise ValueError(f"{args.task!r} is a single task: --instances is for task families")
        task = family.instance(0)
        # Tuned again even when the folder holds a choice: `lrgym tune` of a task is asked to tune.
        choice = tune_step_grid(task, spec, options=options)
        path = save_choice(choice, cache_path(folder, task, spec))
        print(f"{task.name}: {_describe(choice)}\nwrote {path}")
        return 0
    if not args.instances:
        raise ValueError(f"a {spec.name!r} grid on the family {family.name!r} is tuned per instance: give --instances")
    tasks = [family.instance(index) for index in parse_instances(args.instances, family)]
    for task, choice in zip(tasks, tune_instances(tasks, spec, options), strict=True):
        print(f"{task.name}: {_describe(choice)}  -> {instance_cache_path(folder, task, spec)}")
    return 0

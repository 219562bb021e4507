"""``lrgym list``: the registered tasks and the agents."""

from __future__ import annotations

import argparse

from lrgym import env_id
from lrgym.tasks.family import load_family
from lrgym.tasks.specs import (
    agent_names,
    broken_specs,
    family_names,
    load_agent_spec,
    load_task_spec,
    task_names,
)
from lrgym.trainee.data import DataNotFoundError, load_dataset

HELP = "list the tasks and task families (envs/*.toml) and agents (agents/*.toml)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", action="store_true", help="also say whether each task's data is present")


def _data_status(dataset: str) -> str:

    try:
        load_dataset(dataset)
        return "ok"
    except DataNotFoundError:
        return "missing"


def run(args: argparse.Namespace) -> int:

    rows, broken = [], dict(broken_specs())  # a spec that does not load is listed with its error
    for name in task_names():
        try:
            spec = load_task_spec(name)
        except ValueError as error:
            broken[name] = str(error)
            continue
        lrs = ",".join(f"{lr:g}" for lr in spec.initial_lrs)
        row = [
            env_id(name), spec.dataset, spec.model, spec.optimizer, str(spec.batch_size),
            str(spec.steps), str(spec.interval), lrs, str(spec.val_size), spec.action,
        ]
        if args.data:
            row.append(_data_status(spec.dataset))
        rows.append(row)
    header = ["id", "dataset", "model", "optimizer", "batch", "steps", "interval",
              "initial_lrs", "val_size", "action"] + (["data"] if args.data else [])
    _print_table(header, rows)
    for name in family_names():
        try:
            family = load_family(name)
        except ValueError as error:
            broken[name] = str(error)
            continue
        print(f"\n{env_id(name)}  (task family: a training instance drawn at every reset)")
        _print_table(["  field", "distribution"], [[f"  {key}", text] for key, text in family.table()])
    agents = []
    for name in agent_names():
        try:
            spec = load_agent_spec(name)
            agents.append([name, spec.kind, spec.description])
        except ValueError as error:
            broken[f"agent {name}"] = str(error)
    print()
    _print_table(["agent", "kind", "description"], agents)
    if broken:
        print("\nbroken specs (each breaks only itself; fix the file to use it):")
        for name, error in sorted(broken.items()):
            print(f"  {name}: {error}")
    return 0


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())

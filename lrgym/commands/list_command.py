"""``lrgym list``: the registered tasks and the agents; ``lrgym list --path DIR``: a folder of spec files."""

from __future__ import annotations

import argparse
from pathlib import Path

from lrgym import env_id
from lrgym.tasks.family import load_family
from lrgym.tasks.specs import (
    HOME_VARIABLE,
    agent_names,
    agents_dir,
    broken_specs,
    envs_dir,
    family_names,
    load_agent_spec,
    load_task_spec,
    read_spec_file,
    spec_kind,
    task_names,
)
from lrgym.trainee.data import DataNotFoundError, load_dataset

HELP = "list the tasks and task families (envs/*.toml) and agents (agents/*.toml), or the spec files in a folder"
TASK_HEADER = ["dataset", "model", "optimizer", "batch", "steps", "interval", "initial_lrs", "val_size", "action"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", action="store_true", help="also say whether each task's data is present")
    parser.add_argument(
        "--path", default=None, metavar="DIR",
        help="list the spec files in DIR instead (DIR/*.toml, DIR/envs/*.toml, DIR/agents/*.toml): "
             "what to pass to the other commands as a path",
    )


def _data_status(dataset: str) -> str:

    try:
        load_dataset(dataset)
        return "ok"
    except DataNotFoundError:
        return "missing"


def _task_row(label: str, spec, data: bool) -> list[str]:
    lrs = ",".join(f"{lr:g}" for lr in spec.initial_lrs)
    row = [
        label, spec.dataset, spec.model, spec.optimizer, str(spec.batch_size),
        str(spec.steps), str(spec.interval), lrs, str(spec.val_size), spec.action,
    ]
    return row + [_data_status(spec.dataset)] if data else row


def run(args: argparse.Namespace) -> int:
    if args.path is not None:
        return _list_folder(Path(args.path), args.data)
    rows, broken = [], dict(broken_specs())  # a spec that does not load is listed with its error
    for name in task_names():
        try:
            rows.append(_task_row(env_id(name), load_task_spec(name), args.data))
        except ValueError as error:
            broken[name] = str(error)
    _print_table(["id", *TASK_HEADER] + (["data"] if args.data else []), rows)
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
    print(f"\nfrom {envs_dir()} and {agents_dir()} (${HOME_VARIABLE} chooses another folder); "
          "a path to a spec file works wherever a name does")
    if broken:
        print("\nbroken specs (each breaks only itself; fix the file to use it):")
        for name, error in sorted(broken.items()):
            print(f"  {name}: {error}")
    return 0


def _list_folder(folder: Path, data: bool) -> int:
    """Every spec file of ``folder`` (and of its envs/ and agents/), by kind; a broken one with its error."""
    if not folder.is_dir():
        raise ValueError(f"--path {folder}: no such folder")
    paths = sorted({*folder.glob("*.toml"), *folder.glob("envs/*.toml"), *folder.glob("agents/*.toml")})
    tasks, families, agents, broken = [], [], [], []
    for path in paths:
        try:
            _, table = read_spec_file(path, ("task", "family", "agent"))
            kind = spec_kind(table)
            if kind == "task":
                tasks.append(_task_row(str(path), load_task_spec(str(path)), data))
            elif kind == "family":
                families.append((path, load_family(str(path))))
            else:
                agents.append([str(path), (spec := load_agent_spec(str(path))).kind, spec.description])
        except ValueError as error:
            broken.append([str(path), str(error)])
    if not paths:
        print(f"no spec files (*.toml) in {folder}, {folder / 'envs'} or {folder / 'agents'}")
    if tasks:
        _print_table(["task", *TASK_HEADER] + (["data"] if data else []), tasks)
    for path, family in families:
        print(f"\n{path}  (task family {family.name!r})")
        _print_table(["  field", "distribution"], [[f"  {key}", text] for key, text in family.table()])
    if agents:
        print()
        _print_table(["agent", "kind", "description"], agents)
    if broken:
        print()
        _print_table(["broken spec", "error"], broken)
    return 0


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())

"""Flags shared by several subcommands, so they are spelled the same everywhere."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from lrgym.agents import step_grid
from lrgym.environment.lr_control_env import resolve_device
from lrgym.runners.backend import DEFAULT_CONNECT_TIMEOUT_S, Backend
from lrgym.runners.options import RunOptions, default_jobs

TASK_HELP = "a task or task family: a name (see `lrgym list`) or the path of its TOML file, e.g. ./my-task.toml"
AGENT_HELP = "an agent: a spec name (see `lrgym list`), the path of its TOML file (./my-agent.toml) or ppo:PATH"


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _integer(text, minimum=1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (seeds)."""
    return _integer(text, minimum=0)


def _integer(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
    return value


def device_name(text: str) -> str:
    """argparse type: a device this machine has (``auto``, ``cpu``, ``cuda``, ``cuda:N``)."""

    try:
        resolve_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", default=None,
        help="folder with the dataset files (else $LRGYM_DATA, then /usr/share/datasets)",
    )
    parser.add_argument(
        "--download", action="store_true", help="let torchvision download missing datasets"
    )
    parser.add_argument(
        "--device", default="auto", type=device_name, help="auto (GPU when present), cpu, cuda, cuda:1, ..."
    )


def add_override_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
        help="override a task spec field, e.g. --set steps=200 --set initial_lrs=[0.01]",
    )


def parse_overrides(items: list[str]) -> dict:
    """``["steps=200", "initial_lrs=[0.01]"]`` -> ``{"steps": 200, "initial_lrs": [0.01]}`` (TOML values).

    ``FIELD=@FILE.json`` reads the value from a JSON file, e.g. a step-grid choice written by
    ``lrgym tune`` as the ``base_schedule`` of a residual controller.
    """
    from lrgym.checkpoints.file_checks import read_json
    from lrgym.tasks.specs import tomllib

    overrides = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set needs FIELD=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        if value.startswith("@"):
            path = Path(value[1:])
            if not path.is_file():
                raise ValueError(f"--set {key}=@FILE: no file {path}")
            try:  # bounded, UTF-8, nesting the parser can take: one line naming the file otherwise
                overrides[key.strip()] = read_json(path, "JSON")
            except ValueError as error:
                raise ValueError(f"--set {key}=@FILE: {error}") from None
            continue
        try:
            overrides[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            overrides[key.strip()] = value  # a bare word: a string
    return overrides


def comma_list(text: str, flag: str | None = None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (agent and task lists on the command line).

    :param flag: the option's name, when the list may not be empty (``--agents``).
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    if flag is not None and not names:
        raise ValueError(f"{flag} needs at least one name, e.g. {flag} constant,cosine; got {text!r}")
    return names


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--ray-address``: where runs execute (see ``lrgym.runners.pool``)."""
    parser.add_argument(
        "--backend", choices=("local", "ray"), default="local",
        help="where runs execute: local worker processes (default) or a Ray cluster (pip install 'lrgym[ray]')",
    )
    parser.add_argument(
        "--ray-address", default=None, metavar="ADDRESS",
        help="with --backend ray: the cluster (HOST:PORT of its head, or auto) or local for a fresh "
             "local instance (default: the running cluster if any, else a local instance)",
    )
    parser.add_argument(
        "--ray-timeout", type=positive_seconds, default=None, metavar="SECONDS",
        help=f"with --backend ray: how long to try joining the cluster before giving up "
             f"(default {DEFAULT_CONNECT_TIMEOUT_S:g})",
    )


def add_task_arguments(parser: argparse.ArgumentParser, backend: bool = True) -> None:
    """The flags of every command that runs a task: ``--set``, the data and device flags,
    ``--threads`` and, with ``backend``, where the runs execute (``--backend``, ``--ray-address``,
    ``--ray-timeout``)."""
    add_override_argument(parser)
    add_data_arguments(parser)
    parser.add_argument(
        "--threads", type=positive_int, default=1, metavar="N",
        help="torch threads per run (default 1: results do not depend on the machine's cores or load, "
             "and a busy machine does not slow a run many-fold); recorded in the outputs",
    )
    if backend:
        add_backend_arguments(parser)


def positive_seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def backend(args: argparse.Namespace) -> Backend:
    """The :class:`lrgym.runners.backend.Backend` the flags ask for (a clear error if Ray is missing)."""
    if args.ray_timeout is not None and args.backend != "ray":
        raise ValueError("--ray-timeout needs the ray backend (--backend ray)")
    timeout = DEFAULT_CONNECT_TIMEOUT_S if args.ray_timeout is None else args.ray_timeout
    return Backend(args.backend, args.ray_address, connect_timeout_s=timeout, threads=args.threads)


def env_options(args: argparse.Namespace) -> dict:
    return {"device": args.device, "data_dir": args.data_dir, "download": args.download}


def run_options(args: argparse.Namespace, cache_dir: str | Path | None = None) -> RunOptions:
    """The :class:`lrgym.runners.options.RunOptions` the flags ask for: ``--jobs`` (default one
    worker per CPU core), the data and device flags, the backend flags and the bound on a
    step-grid tuning (none with ``--allow-long-tuning``, nor for a command without that flag).

    :param cache_dir: where tuned step-decay choices are kept (a folder of the command's ``--out``).
    """
    bounded = not getattr(args, "allow_long_tuning", True)
    return RunOptions(
        jobs=args.jobs or default_jobs(), env_options=env_options(args), cache_dir=cache_dir,
        max_tuning_s=step_grid.LONG_TUNING_S if bounded else None,  # read now: tests lower it
        backend=backend(args),
    )


def out_dir(path: str | Path) -> Path:
    """The output folder ``path``, created; a clear error when it is a file or cannot be written."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {folder} is a file, not a folder: choose a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(f"--out {folder} cannot be written: {error.strerror or error}") from error
    return folder

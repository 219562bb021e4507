"""Flags shared by several subcommands, so they are spelled the same everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", default=None,
        help="folder with the dataset files (else $LRGYM_DATA, then /usr/share/datasets)",
    )
    parser.add_argument(
        "--download", action="store_true", help="let torchvision download missing datasets"
    )
    parser.add_argument(
        "--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1, ..."
    )


def add_override_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
        help="override a task spec field, e.g. --set steps=200 --set initial_lrs=[0.01]",
    )


def parse_overrides(items: list[str]) -> dict:
    """``["steps=200", "initial_lrs=[0.01]"]`` -> ``{"steps": 200, "initial_lrs": [0.01]}`` (TOML values)."""
    from lrgym.specs import tomllib

    overrides = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set needs FIELD=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            overrides[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            overrides[key.strip()] = value  # a bare word: a string
    return overrides


def comma_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (agent and task lists on the command line)."""
    return [name.strip() for name in text.split(",") if name.strip()]


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--ray-address``: where runs execute (see ``lrgym.parallel``)."""
    parser.add_argument(
        "--backend", choices=("local", "ray"), default="local",
        help="where runs execute: local worker processes (default) or a Ray cluster (pip install 'lrgym[ray]')",
    )
    parser.add_argument(
        "--ray-address", default=None, metavar="ADDRESS",
        help="with --backend ray: the cluster (HOST:PORT of its head, or auto) or local for a fresh "
             "local instance (default: the running cluster if any, else a local instance)",
    )


def backend(args: argparse.Namespace):
    """The :class:`lrgym.parallel.Backend` the flags ask for (a clear error if Ray is missing)."""
    from lrgym.parallel import Backend

    return Backend(args.backend, args.ray_address)


def env_options(args: argparse.Namespace) -> dict:
    return {"device": args.device, "data_dir": args.data_dir, "download": args.download}


def out_dir(path: str | Path) -> Path:
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder

"""How a batch of runs executes: the options every tuning, evaluation and transfer takes.

The same tail of options (workers, env options, the cache of tuned choices, the progress
bar, the bound on a tuning's time, the backend) travels from a command down to the
runs; :class:`RunOptions` says it once. ``lrgym.commands.common.run_options`` builds it
from the command-line flags.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrgym.runners.backend import LOCAL, Backend


@dataclass(frozen=True)
class RunOptions:
    """Where and how runs execute; what a tuning may cost and where its choice is kept."""

    jobs: int = 1
    """Worker processes (1: everything in this process); with Ray, the CPUs of a local Ray
    instance started here (a cluster brings its own)."""
    env_options: Mapping[str, Any] = field(default_factory=dict)
    """Keywords of the envs the runs build: ``device``, ``data_dir``, ``download``."""
    cache_dir: str | Path | None = None
    """The folder where tuned step-decay choices are read from, or written to once tuned
    (:func:`lrgym.agents.step_grid.resolve_choice`); ``None``: tuned every time, kept in memory."""
    progress: bool = True
    """Show a tqdm progress bar (on stderr)."""
    max_tuning_s: float | None = None
    """Refuse (``ValueError``) a step-grid tuning estimated to take longer than this many
    seconds, before it starts; ``None``: no bound."""
    backend: Backend = LOCAL
    """Where the runs execute: local processes or Ray tasks (the same results either way)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "env_options", dict(self.env_options or {}))  # a private copy

    @property
    def device(self) -> str:
        """The runs' torch device as the backend asks for it (``auto`` unless the env options say)."""
        return str(self.env_options.get("device", "auto"))

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with ``changes`` (e.g. ``options.replace(cache_dir=folder)``)."""
        return dataclasses.replace(self, **changes)


RUN_DEFAULTS = RunOptions()


def default_jobs() -> int:
    """One worker per CPU this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

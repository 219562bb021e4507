"""Where independent runs execute: a local process pool (default) or Ray tasks
(:mod:`lrgym.runners.ray_tasks`, imported only for the ray backend), and the options
every batch of runs takes (:class:`RunOptions`)."""

from __future__ import annotations

from lrgym.runners.backend import LOCAL, Backend
from lrgym.runners.options import RUN_DEFAULTS, RunOptions, default_jobs
from lrgym.runners.pool import run_jobs, run_placed

__all__ = ['Backend', 'LOCAL', 'RUN_DEFAULTS', 'RunOptions', 'default_jobs', 'run_jobs', 'run_placed']

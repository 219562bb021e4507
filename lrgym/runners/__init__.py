"""Where independent runs execute: a local process pool (default) or Ray tasks
(:mod:`lrgym.runners.ray_tasks`, imported only for the ray backend)."""

from __future__ import annotations

from lrgym.runners.backend import LOCAL, Backend
from lrgym.runners.pool import run_jobs, run_placed

__all__ = ['Backend', 'LOCAL', 'run_jobs', 'run_placed']

"""Where independent runs execute: a local process pool, or tasks on a Ray cluster.

Evaluation, transfer and the step-decay grid run many episodes that share nothing,
and meta-training steps many envs at once; this is the one module that decides where
they run (the way SB3 chooses a VecEnv class). Commands pass a :class:`Backend`;
nothing outside this module and the Ray modules it loads (:mod:`lrgym.runners.ray_tasks`,
:mod:`lrgym.vec_env.ray_actors`) imports Ray.

- ``local`` (the default): workers are *spawned* processes on this machine (a forked
  process that already touched torch, or CUDA, is not safe), one torch thread each, so
  J workers fill J cores. Sequential runs (``jobs <= 1``) use one thread too, so a
  result does not depend on the number of jobs.
- ``ray``: each run is one Ray task asking for one CPU (and a share of a GPU when it
  runs on CUDA); each training env is one Ray actor. Same function, same arguments,
  one torch thread: the results equal the local backend's for the same seeds.

Every run reports the node it ran on (:func:`run_placed`): the host name locally, the
host name and Ray node id on a cluster (two nodes on one host differ by their id).
"""

from __future__ import annotations

import importlib.util
import socket
from dataclasses import dataclass

import torch

BACKENDS = ("local", "ray")
RAY_INSTALL = "pip install 'lrgym[ray]'"
DEFAULT_GPU_FRACTION = 0.25  # small trainees are launch-bound: several share a GPU


@dataclass(frozen=True)
class Backend:
    """Where runs execute.

    :param name: ``local`` (a process pool on this machine) or ``ray`` (a Ray cluster).
    :param address: ``ray`` only: the cluster to join (its head's ``HOST:PORT``, or
        ``auto``), or ``local`` for a fresh Ray instance on this machine; ``None``: the
        running cluster if there is one (``RAY_ADDRESS``, ``ray start``), else a fresh
        local instance.
    :param gpu_fraction: ``ray`` only: the share of a GPU each run or env asks for when it
        runs on CUDA.
    :raises ValueError: an unknown name, an address without ``ray``, or ``ray`` asked for
        while Ray is not installed (the message says how to install it).
    """

    name: str = "local"
    address: str | None = None
    gpu_fraction: float = DEFAULT_GPU_FRACTION

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise ValueError(f"unknown backend {self.name!r}; valid backends: {', '.join(BACKENDS)}")
        if self.address is not None and self.name != "ray":
            raise ValueError(f"a Ray address ({self.address}) needs the ray backend (--backend ray)")
        if not 0 < self.gpu_fraction <= 1:
            raise ValueError(f"gpu_fraction must be in (0, 1], got {self.gpu_fraction}")
        if self.name == "ray" and not ray_installed():
            raise ValueError(f"the ray backend needs Ray, which is not installed: {RAY_INSTALL}")

    @property
    def is_ray(self) -> bool:
        return self.name == "ray"


LOCAL = Backend()


def ray_installed() -> bool:
    """Whether ``import ray`` would find Ray (without importing it)."""
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        return False


def single_thread() -> None:
    """One torch thread in this process (the initializer of every worker)."""

    torch.set_num_threads(1)


def local_node() -> str:
    """The name a local run records as its node: this machine's host name."""
    return socket.gethostname()

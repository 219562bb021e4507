"""Where independent runs execute: a local process pool, or tasks on a Ray cluster.

Evaluation, transfer and the step-decay grid run many episodes that share nothing,
and meta-training steps many envs at once; this is the one module that decides where
they run (the way SB3 chooses a VecEnv class). Commands pass a :class:`Backend`;
nothing outside this module and the Ray modules it loads (:mod:`lrgym.runners.ray_tasks`,
:mod:`lrgym.vec_env.ray_actors`) imports Ray.

- ``local`` (the default): workers are *spawned* processes on this machine (a forked
  process that already touched torch, or CUDA, is not safe), ``threads`` torch threads
  each (1 by default, so J workers fill J cores). Sequential runs (``jobs <= 1``) pin the
  same count, so a result does not depend on the number of jobs.
- ``ray``: each run is one Ray task asking for one CPU (and a share of a GPU when it
  runs on CUDA); each training env is one Ray actor. Same function, same arguments,
  the same thread count: the results equal the local backend's for the same seeds.

Every run reports the node it ran on (:func:`run_placed`): the host name locally, the
host name and Ray node id on a cluster (two nodes on one host differ by their id).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import math
import os
import re
import socket
from dataclasses import dataclass

import torch

BACKENDS = ("local", "ray")
RAY_INSTALL = "pip install 'lrgym[ray]'"
DEFAULT_GPU_FRACTION = 0.25  # small trainees are launch-bound: several share a GPU
DEFAULT_CONNECT_TIMEOUT_S = 30.0  # joining a cluster takes 2-10 s; an unreachable one would hang for minutes
RAY_ADDRESS_FORMS = "HOST:PORT or ray://HOST:PORT (PORT 1-65535), auto, or local"
THREADS_VARIABLE = "LRGYM_THREADS"  # the torch thread count a command pinned, for the processes it starts
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


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
    :param connect_timeout_s: ``ray`` only: how long to try joining the cluster (``--ray-timeout``).
    :param threads: torch threads of every run (``--threads``; see :func:`pin_threads`).
    :raises ValueError: an unknown name, an address without ``ray``, or ``ray`` asked for
        while Ray is not installed (the message says how to install it).
    """

    name: str = "local"
    address: str | None = None
    gpu_fraction: float = DEFAULT_GPU_FRACTION
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    threads: int = 1

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise ValueError(f"unknown backend {self.name!r}; valid backends: {', '.join(BACKENDS)}")
        if self.address is not None and self.name != "ray":
            raise ValueError(f"a Ray address ({self.address}) needs the ray backend (--backend ray)")
        if self.address is not None:
            check_ray_address(self.address)
        if not 0 < self.gpu_fraction <= 1:
            raise ValueError(f"gpu_fraction must be in (0, 1], got {self.gpu_fraction}")
        if not (isinstance(self.connect_timeout_s, (int, float)) and 0 < self.connect_timeout_s < math.inf):
            raise ValueError(f"the Ray connect timeout must be a number of seconds > 0, got {self.connect_timeout_s!r}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(f"threads must be an integer >= 1 (torch threads per run), got {self.threads!r}")
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


def check_ray_address(address: str, where: str = "--ray-address") -> str:
    """``address`` if it has the form of a Ray address (:data:`RAY_ADDRESS_FORMS`), else a one-line ``ValueError``.

    Checked before any connection is tried: ``256.1.1.1:99999`` is refused here, not after
    a timeout. The host is an IPv4 or bracketed IPv6 address, or a host name.
    """
    if address in ("auto", "local"):
        return address
    rest = address.removeprefix("ray://")
    host, colon, port = rest.rpartition(":")
    problem = None
    if not colon or not host:
        problem = "no HOST:PORT"
    elif not (port.isdigit() and 1 <= int(port) <= 65535):
        problem = f"port {port!r} is not a number from 1 to 65535"
    elif not _valid_host(host):
        problem = f"host {host!r} is neither an IP address nor a host name"
    if problem:
        raise ValueError(f"{where} {address!r}: {problem}; expected {RAY_ADDRESS_FORMS}")
    return address


def _valid_host(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        kinds: tuple[type, ...] = (ipaddress.IPv6Address,)
    else:
        kinds = (ipaddress.IPv4Address,)
    try:
        return isinstance(ipaddress.ip_address(host), kinds)
    except ValueError:  # not an IP address: a host name, whose last label is not all digits
        labels = host.rstrip(".").split(".")
        return (len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)
                and not labels[-1].isdigit() and kinds == (ipaddress.IPv4Address,))


def pin_threads(threads: int | None = None) -> int:
    """Pin torch to ``threads`` threads in this process, and have the processes it starts do the same.

    Every run pins its count (``--threads``, default 1), so that a result does not depend on
    the machine's cores or load: on a 2-core machine with the other core busy, one episode
    on torch's default 2 threads ran many times slower than on one, and its result changed
    (benchmarks/threads_under_load.py). The count is also put in ``LRGYM_THREADS``, which
    the worker processes this one spawns inherit (SB3's ``SubprocVecEnv``, the population
    workers): they call ``pin_threads()`` with no argument.

    :param threads: the count; ``None``: ``LRGYM_THREADS`` if set, else 1.
    :returns: the count pinned.
    """
    if threads is None:
        text = os.environ.get(THREADS_VARIABLE, "1")
        if not text.strip().isdigit() or int(text) < 1:
            raise ValueError(f"{THREADS_VARIABLE}={text!r}: expected an integer >= 1 (torch threads per run)")
        threads = int(text)
    torch.set_num_threads(int(threads))
    os.environ[THREADS_VARIABLE] = str(int(threads))
    return int(threads)


def local_node() -> str:
    """The name a local run records as its node: this machine's host name."""
    return socket.gethostname()

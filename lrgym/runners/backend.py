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
import ipaddress
import math
import re
import socket
from dataclasses import dataclass

import torch

BACKENDS = ("local", "ray")
RAY_INSTALL = "pip install 'lrgym[ray]'"
DEFAULT_GPU_FRACTION = 0.25  # small trainees are launch-bound: several share a GPU
DEFAULT_CONNECT_TIMEOUT_S = 30.0  # joining a cluster takes 2-10 s; an unreachable one would hang for minutes
RAY_ADDRESS_FORMS = "HOST:PORT or ray://HOST:PORT (PORT 1-65535), auto, or local"
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


def pin_threads(threads: int = 1) -> None:
    """``threads`` torch threads in this process (the initializer of every worker; 1 by default).

    Every run pins its count, so that a result does not depend on the machine's cores or
    load: under load a trainee on 2 threads of a 2-core machine ran 30-70x slower than on
    one, and its result changed (benchmarks/threads_under_load.py).
    """
    torch.set_num_threads(int(threads))


def single_thread() -> None:
    """One torch thread in this process."""
    pin_threads(1)


def local_node() -> str:
    """The name a local run records as its node: this machine's host name."""
    return socket.gethostname()

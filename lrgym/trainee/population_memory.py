"""How much memory a population of stacked trainees needs, and how much a device offers.

:func:`population_memory_error` refuses a population that cannot fit *before* anything is
built or written: the estimate comes from the model's structure on the ``meta`` device
(no weights, no data), so it costs milliseconds.

Per member (float32): the parameters, their best-validation copy, their gradients, the
previous parameters and update the measurement compares with (5 copies), the optimizer's
state (Adam 2 copies, momentum 1), the activations of a training batch (each module's
output, kept for the backward pass, and its gradient: 2 copies, times the batch size), and
the validation subset's class probabilities (this measurement's and the previous one).
It is an estimate, within a small factor of the process's growth (``benchmarks/population.py``
prints the measured peak), not a bound; the limit keeps a margin for that.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from pathlib import Path

import torch

from lrgym.trainee.models import build_model
from lrgym.trainee.stacked_optim import check_stackable

FLOAT_BYTES = 4
PARAMETER_COPIES = 5  # parameters, best parameters, gradients, previous parameters, previous update
ACTIVATION_COPIES = 2  # each module's output for the backward pass, and its gradient
# The share of the available memory a population may plan to use: the estimate leaves out
# the framework's own buffers and allocator slack.
USABLE_SHARE = 0.5


def optimizer_state_copies(optimizer: str, optimizer_kwargs: dict | None = None) -> int:
    """Per-parameter tensors the stacked optimizer keeps (Adam's two moments, a momentum buffer)."""
    settings = check_stackable(optimizer, optimizer_kwargs)
    if optimizer in ("adam", "adamw"):
        return 3 if settings["amsgrad"] else 2
    return 1 if settings["momentum"] != 0 else 0


def member_bytes(task, input_shape: tuple[int, ...], num_classes: int) -> int:
    """Estimated bytes one member of a population of ``task`` (a TaskSpec) needs (module docstring)."""
    sizes = json.dumps(task.model_kwargs or {}, sort_keys=True)
    parameters, outputs = model_structure(task.model, sizes, tuple(input_shape), int(num_classes))
    copies = PARAMETER_COPIES + optimizer_state_copies(task.optimizer, task.optimizer_kwargs)
    activations = ACTIVATION_COPIES * outputs * int(task.batch_size)
    probabilities = 2 * int(task.val_size) * num_classes
    return FLOAT_BYTES * (copies * parameters + activations + probabilities)


@functools.lru_cache(maxsize=1024)
def model_structure(model: str, sizes: str, input_shape: tuple[int, ...], num_classes: int) -> tuple[int, int]:
    """(parameters, activation elements per example) of model ``model`` with JSON size keywords
    ``sizes``; cached: a family's instances share a few structures."""
    with torch.device("meta"):  # structure only: no memory, no weights
        network = build_model(model, input_shape, num_classes, **json.loads(sizes))
        outputs: list[int] = []
        hooks = [
            module.register_forward_hook(lambda _m, _i, output: outputs.append(output.numel()))
            for module in network.modules() if not list(module.children())  # leaves: their outputs are activations
        ]
        network(torch.empty(1, *input_shape))
        for hook in hooks:
            hook.remove()
    return sum(parameter.numel() for parameter in network.parameters()), sum(outputs)


def available_bytes(device: torch.device | str) -> int:
    """Memory this process could still take on ``device``: free GPU memory, or the host's
    available memory (``MemAvailable``: free plus reclaimable caches)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    # /proc/meminfo read by hand: one number, not worth a dependency (psutil); elsewhere the free pages.
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def population_memory_error(
    tasks: Iterable[tuple[object, tuple[int, ...], int]],
    members: int,
    processes: int,
    device: torch.device | str,
    what: str,
) -> str | None:
    """Why ``processes`` populations of ``members`` trainees each cannot fit on ``device``, or ``None``.

    :param tasks: (TaskSpec, input shape, number of classes) of every task a population may
        run (a family's sampled instances): the largest decides.
    :param members: trainees per population (controlled members and base-run members together).
    :param what: how the user asked for it (``--n-envs 2 --population 64``), for the message.
    """
    largest, name = 0, ""
    for task, input_shape, num_classes in tasks:
        size = member_bytes(task, input_shape, num_classes)
        if size > largest:
            largest, name = size, task.name
    usable = USABLE_SHARE * available_bytes(device)
    needed = largest * members * processes
    if needed <= usable:
        return None
    fits = int(usable // max(1, largest * processes))
    return (
        f"{what}: {processes} x {members} trainees need about {needed / 2**30:.1f} GiB on {device} "
        f"({largest / 2**20:.1f} MiB each for {name}), more than half of the {usable / USABLE_SHARE / 2**30:.1f} "
        f"GiB available: at most {fits} trainees per process fit"
    )

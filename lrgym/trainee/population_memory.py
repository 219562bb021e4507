"""How much memory a population of stacked trainees needs, and how much a device offers.

:func:`population_memory_error` refuses a population that cannot fit *before* anything is
built or written: the estimate comes from the model's structure on the ``meta`` device
(no weights, no data), so it costs milliseconds.

Per member (float32): the parameters, their best-validation copy, their gradients, the
previous parameters and update the measurement compares with (5 copies), the optimizer's
state (Adam 2 copies, momentum 1), the activations of a training batch (each module's
output, kept for the backward pass, its gradient and a working copy: 3 copies, times the
batch size), and the validation subset's class probabilities (this measurement's and the
previous one). An estimate: for the largest of mnist1d-family's first 64 train instances
(a 1-D LeNet, batch 253, Adam) it says 5.9 MiB per member, and a population of 64 of them
grew the process by 7.1 MiB per member (measured on the CPU); the limit keeps a margin.
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
ACTIVATION_COPIES = 3  # each module's output for the backward pass, its gradient, and a working copy (im2col)
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
    trainees_per_member: int = 1,
) -> str | None:
    """Why ``processes`` populations of ``members`` members each cannot fit on ``device``, or ``None``.

    :param tasks: (TaskSpec, input shape, number of classes) of every task a population may
        run (a family's sampled instances): the largest decides.
    :param trainees_per_member: 2 when each member has a base-run member beside it.
    :param what: how the user asked for it (``--n-envs 2 --population 64``), for the message.
    """
    largest, name = 0, ""
    for task, input_shape, num_classes in tasks:
        size = member_bytes(task, input_shape, num_classes)
        if size > largest:
            largest, name = size, task.name
    available = available_bytes(device)
    per_member = largest * trainees_per_member
    needed = per_member * members * processes
    if needed <= USABLE_SHARE * available:
        return None
    fits = int(USABLE_SHARE * available // max(1, per_member * processes))
    with_bases = f" (x{trainees_per_member} with their base runs)" if trainees_per_member > 1 else ""
    return (
        f"{what}: {processes} x {members} members{with_bases} need about {needed / 2**30:.1f} GiB on {device} "
        f"({largest / 2**20:.1f} MiB per trainee of {name}), more than half of the {available / 2**30:.1f} GiB "
        f"available: at most --population {fits} with --n-envs {processes}"
    )

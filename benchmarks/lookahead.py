"""The loss-scored lookahead's decision: one gradient + batched trials versus a model copy per factor.

For each task and factor list, both versions score the same trainee (after one
interval of training) on the same scoring batch of the task's batch size:

- batched: :func:`lrgym.agents.lookahead.trial_losses`, one forward and backward pass,
  then every factor's trial loss in one vmapped functional forward pass;
- batched, chunk 1: the same, its trials evaluated one at a time (``chunk_size=1``):
  less memory, and faster where one big grouped convolution is slower than several
  small ones (convolutional nets on the CPU);
- naive copies: :func:`lrgym.agents.lookahead.naive_trial_losses`, the report's structure: a
  deep copy of the model per factor, each with its own forward, backward, SGD step and
  forward.

Time per decision is the median of interleaved repetitions (batched, naive, batched, ...)
so machine noise hits both. Peak memory is the peak of the tensor memory each version
allocates during one decision, on top of the trainee it scores: on CUDA from
``torch.cuda.max_memory_allocated``; on the CPU from a small tensor-storage tracker
(see :class:`PeakTensorMemory`). The last column is the largest difference between
each version's losses and the naive ones (they compute the same thing).

    python benchmarks/lookahead.py                    # quick tasks on the CPU, < 2 minutes
    python benchmarks/lookahead.py --device cuda --tasks fashion-mnist-lenet cifar10-resnet18
"""

from __future__ import annotations

import argparse
import statistics
import time
import weakref

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import lrgym  # noqa: F401
from lrgym.agents import make_env
from lrgym.agents.lookahead import FACTOR_LISTS, naive_trial_losses, trial_losses
from lrgym.agents.seeding import agent_generator
from lrgym.tasks.specs import load_task_spec
from lrgym.trainee.data import DataNotFoundError

MIB = 2**20


class PeakTensorMemory(TorchDispatchMode):
    """Peak bytes of the tensor storages allocated inside the context, on any device.

    Written by hand because no library measures this on the CPU: ``tracemalloc`` does not
    see torch's allocator, and torch's ``MemTracker`` (torch.distributed._tools) fails
    under ``vmap`` (its module hooks meet functorch's wrapper tensors). A storage counts
    from the op that creates it until it is freed; outputs that share an input's storage
    (views, in-place ops) are not new memory.
    """

    def __enter__(self):
        self.live = self.peak = 0
        self._sizes: dict[int, int] = {}
        return super().__enter__()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if _is_dense(t)}
        for tensor in tree_leaves(out):
            if _is_dense(tensor):
                storage = tensor.untyped_storage()
                key = storage.data_ptr()
                if key not in inputs and key not in self._sizes and storage.nbytes():
                    self._sizes[key] = storage.nbytes()
                    self.live += storage.nbytes()
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._free, key)
        return out

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)


def _is_dense(value) -> bool:
    return isinstance(value, torch.Tensor) and value.layout == torch.strided


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(function, device: torch.device) -> int:
    """Bytes allocated at the peak of one call of ``function``, beyond what existed before."""
    synchronize(device)
    if device.type == "cuda":
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        function()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    with PeakTensorMemory() as tracker:
        function()
    return tracker.peak


def seconds(function, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - start


def benchmark_task(task_name: str, device: str, repeats: int, lr: float) -> list[dict]:
    """One row per factor list and version: median ms per decision, peak MiB, max |difference|."""
    task = load_task_spec(task_name)
    env = make_env(task, "lr", device=device)
    env.reset(seed=0)
    env.step(np.array([task.initial_lrs[0]]))  # score trained weights, not the initialisation
    model = env.trainee.model
    inputs, labels = env.trainee.sample_batch(generator=agent_generator(0, "lookahead-scoring"))
    rows = []
    for list_name, factors in FACTOR_LISTS.items():
        variants = {
            "batched": lambda f=factors: trial_losses(model, inputs, labels, lr, f),
            "batched, chunk 1": lambda f=factors: trial_losses(model, inputs, labels, lr, f, chunk_size=1),
            "naive copies": lambda f=factors: naive_trial_losses(model, inputs, labels, lr, f),
        }
        reference = variants["naive copies"]()  # also warms up
        difference = {
            name: (function() - reference).abs().max().item() for name, function in variants.items()
        }
        times = {name: [] for name in variants}
        for _ in range(repeats):
            for name, function in variants.items():
                times[name].append(seconds(function, env.device))
        for name, function in variants.items():
            rows.append({
                "task": task_name, "factors": list_name, "version": name,
                "ms": 1e3 * statistics.median(times[name]),
                "mib": peak_memory(function, env.device) / MIB,
                "difference": difference[name],
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["mnist1d-mlp", "mnist1d-lenet", "fashion-mnist-quick"])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    parser.add_argument("--repeats", type=int, default=20, help="timed decisions per version")
    parser.add_argument("--lr", type=float, default=1e-3, help="the current rate the trials scale")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)
    print(f"{'task':<20} {'factors':<9} {'version':<17} {'ms/decision':>11} {'speed-up':>8} "
          f"{'peak MiB':>8} {'memory':>7} {'max |diff|':>10}")
    for task_name in args.tasks:
        try:
            rows = benchmark_task(task_name, args.device, args.repeats, args.lr)
        except DataNotFoundError as error:
            print(f"{task_name:<20} skipped: {str(error).splitlines()[0]}")
            continue
        naive = {row["factors"]: row for row in rows if row["version"] == "naive copies"}
        for row in rows:
            base = naive[row["factors"]]
            print(f"{row['task']:<20} {row['factors']:<9} {row['version']:<17} {row['ms']:>11.2f} "
                  f"{base['ms'] / row['ms']:>7.2f}x {row['mib']:>8.2f} {row['mib'] / base['mib']:>6.2f}x "
                  f"{row['difference']:>10.1e}")
    print(f"device {args.device}, torch {torch.__version__}, median of {args.repeats} interleaved repeats; "
          "speed-up and memory relative to the naive copies")


if __name__ == "__main__":
    main()

"""What hypergradient descent's per-step rule costs: an episode of ``hypergradient`` against ``constant``.

Both agents run whole episodes on the same env and seed (the same trainee, batches and
number of optimizer steps); ``constant`` sets its rate through the env's per-step sampler,
``hypergradient`` through an optimizer step pre-hook that also copies the flattened
weights and takes a dot product and two norms every step. Episodes are interleaved
(constant, hypergradient, constant, ...) so machine noise hits both; the table gives the
median seconds per episode and their ratio.

    python benchmarks/hypergradient.py                          # mnist1d-mlp and mnist1d-lenet, CPU, ~1 minute
    python benchmarks/hypergradient.py --tasks mnist1d-mlp --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import lrgym  # noqa: F401
from lrgym.agents import make_agent, make_env, run_episode
from lrgym.tasks.specs import load_task_spec


def episode_seconds(task_name: str, repeats: int, device: str, seed: int = 2) -> dict[str, float]:
    """Median seconds per episode of each agent on ``task_name``, interleaved."""
    task = load_task_spec(task_name)
    agents = {name: make_agent(name, task) for name in ("constant", "hypergradient")}
    env = make_env(task, "lr", device=device)
    run_episode(agents["constant"], env, seed)  # warm-up: data, allocator, first-call costs
    times: dict[str, list[float]] = {name: [] for name in agents}
    for _ in range(repeats):
        for name, agent in agents.items():
            started = time.perf_counter()
            run_episode(agent, env, seed)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["mnist1d-mlp", "mnist1d-lenet"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| task | steps | constant s/episode | hypergradient s/episode | ratio |")
    print("|---|---|---|---|---|")
    for name in args.tasks:
        seconds = episode_seconds(name, args.repeats, args.device)
        ratio = seconds["hypergradient"] / seconds["constant"]
        steps = load_task_spec(name).steps
        print(f"| {name} | {steps} | {seconds['constant']:.2f} | {seconds['hypergradient']:.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()

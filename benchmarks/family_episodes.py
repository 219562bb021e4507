"""Episode wall time across a task family's instances, on one CPU core.

Runs one episode of a constant-rate agent (the env's drawn initial rate, held) on each
of the first N instances of a split, in one process with one torch thread, and
reports the mean, the spread (standard deviation, quartiles, extremes) and the mean
per model and per optimizer. Dataset variants are generated (or read from the cache)
before the clock starts; the env build is timed with the episode.

Both clocks are reported: wall time, and this process's CPU time (``time.process_time``),
which with one torch thread is what an episode costs one core even on a machine
shared with other jobs (where the wall time also counts the waits for a core).

    python benchmarks/family_episodes.py                          # mnist1d-family, train:100
    python benchmarks/family_episodes.py --instances test:20 --set steps=300
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import numpy as np
import torch

import lrgym  # noqa: F401
from lrgym.agents import make_agent, run_episode
from lrgym.commands.common import parse_overrides
from lrgym.tasks.family import load_family, parse_instances
from lrgym.trainee.data import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="mnist1d-family")
    parser.add_argument("--instances", default="train:100", help="SPLIT:N or SPLIT:FIRST-LAST (default train:100)")
    parser.add_argument("--agent", default="constant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(1)
    family = load_family(args.family, **parse_overrides(args.overrides))
    tasks = [family.instance(index) for index in parse_instances(args.instances, family)]
    variants = {(task.dataset, repr(sorted(task.dataset_kwargs.items()))): task for task in tasks}
    for task in variants.values():
        load_dataset(task.dataset, dataset_kwargs=task.dataset_kwargs)  # generation is not episode time

    wall, cpu, diverged = [], [], 0
    by_model, by_optimizer, by_batch = defaultdict(list), defaultdict(list), defaultdict(list)
    started = time.perf_counter()
    for task in tasks:
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        result = run_episode(make_agent(args.agent, task), task, args.seed, device="cpu")
        cpu.append(time.process_time() - cpu_before)
        wall.append(time.perf_counter() - wall_before)
        by_model[task.model].append(cpu[-1])
        by_optimizer[task.optimizer].append(cpu[-1])
        by_batch[task.batch_size].append(cpu[-1])
        diverged += result.diverged
    total = time.perf_counter() - started
    print(f"{args.family} {args.instances}: {len(cpu)} episodes of {args.agent}, 1 torch thread, "
          f"{total:.0f} s in all ({diverged} diverged and ended early)")
    for clock, times in (("CPU time", cpu), ("wall time", wall)):
        quartiles = np.percentile(times, [0, 25, 50, 75, 100])
        print(f"episode {clock}: mean {statistics.mean(times):.2f} s, std {statistics.stdev(times):.2f} s; "
              f"min {quartiles[0]:.2f}, quartiles {quartiles[1]:.2f} / {quartiles[2]:.2f} / {quartiles[3]:.2f}, "
              f"max {quartiles[4]:.2f} s")
    for label, groups in (("model", by_model), ("optimizer", by_optimizer), ("batch size", by_batch)):
        print(f"CPU time by {label}: " + ", ".join(
            f"{name} {statistics.mean(values):.2f} s (n={len(values)})" for name, values in sorted(groups.items())))


if __name__ == "__main__":
    main()

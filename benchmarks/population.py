"""Member trainee steps per second of a population against single envs, and meta-training decisions/s.

Per task and population size N, each measured in a fresh spawned process with one torch
thread per process (so the peak memory is that run's own):

- ``pop``: one episode of a :class:`~lrgym.environment.population_env.PopulationEnv` of N members
  (``--cores`` C > 1: C processes of N / C members), zero actions, reset and final test
  evaluation included;
- ``seq``: single ``LRControlEnv`` episodes one after another in one process (the rate of
  N of them in a row; measured on ``--single-episodes`` episodes, the same for every N);
- ``sub``: single-env episodes in C spawned worker processes (C = ``--cores``, the cores
  the population uses), ``--single-episodes`` per worker.

Rates are member trainee steps per second of CPU time of the slowest process (the machine
this runs on is shared: CPU time is what a process gets, wall time also counts waiting);
the ``wall`` column gives the pop/seq ratio in wall-clock time. Ratios are member steps/s
over ``seq`` and over ``sub``; peak memory is the maximum resident set of the process
(summed over the C processes). Then ``lrgym train``'s
``train()`` on the meta-training task with ``--n-envs 2`` single envs against 2 processes
of populations, the same PPO recipe with the same rollout size in decisions, without
held-out evaluation: decisions per second of the whole session.

    python benchmarks/population.py                           # quick tasks, N = 1, 4, 16, 64
    python benchmarks/population.py --tasks mnist1d-lenet --sizes 16 --train-timesteps 0
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from lrgym.runners.backend import pin_threads


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def population_run(task_fields: dict, size: int, first_seed: int) -> tuple[float, float, int, float]:
    """(wall seconds, CPU seconds, member steps, peak MB) of one population episode of ``size`` members."""
    from lrgym.environment.population_env import PopulationEnv

    env = PopulationEnv(size, **task_fields, device="cpu")
    zeros = [np.zeros(1, dtype=np.float32)] * size
    env.reset(list(range(first_seed, first_seed + size)))
    env.step(zeros)  # warm-up: allocator, first kernels
    started, cpu_started = time.perf_counter(), time.process_time()
    env.reset(list(range(first_seed, first_seed + size)))
    done = False
    while not done:
        _, _, dones, _ = env.step(zeros)
        done = bool(dones.all())
    return time.perf_counter() - started, time.process_time() - cpu_started, size * env.task.steps, _peak_mb()


def single_runs(task_fields: dict, episodes: int, first_seed: int) -> tuple[float, float, int, float]:
    """(wall seconds, CPU seconds, trainee steps, peak MB) of ``episodes`` single-env episodes in a row."""
    from lrgym.environment.lr_control_env import LRControlEnv

    env = LRControlEnv(**task_fields, device="cpu")
    zero = np.zeros(1, dtype=np.float32)
    env.reset(seed=first_seed)
    env.step(zero)  # warm-up
    started, cpu_started = time.perf_counter(), time.process_time()
    for episode in range(episodes):
        env.reset(seed=first_seed + episode)
        done = False
        while not done:
            _, _, done, _, _ = env.step(zero)
    return time.perf_counter() - started, time.process_time() - cpu_started, episodes * env.task.steps, _peak_mb()


def in_processes(function, argument_lists: list[tuple]) -> tuple[float, float, float]:
    """Run ``function`` once per argument tuple, each in its own spawned single-thread process,
    all at once; (steps per CPU second, steps per wall second, summed peak MB).

    Rates over the slowest process: the work is done when the last process is."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(argument_lists), mp_context=context, initializer=pin_threads) as pool:
        results = list(pool.map(function, *zip(*argument_lists, strict=True)))
    steps = sum(r[2] for r in results)
    return steps / max(r[1] for r in results), steps / max(r[0] for r in results), sum(r[3] for r in results)


def meta_training(task, population: int, timesteps: int, rollout: int) -> float:
    """Decisions per second of a train() session: 2 processes of single envs (population 1)
    or of populations, a rollout of ``rollout`` decisions, no held-out evaluation."""
    from lrgym.tasks.specs import load_agent_spec
    from lrgym.train import train

    envs = 2 * population
    spec = load_agent_spec("ppo")
    params = {**spec.params, "eval_every_episodes": 0,
              "algorithm": {**spec.params["algorithm"], "n_steps": max(1, rollout // envs)}}
    agent = dataclasses.replace(spec, params=params)
    with tempfile.TemporaryDirectory() as folder:
        result = train(task, agent, os.path.join(folder, "run"), timesteps=timesteps, n_envs=2,
                       population=population, device="cpu", progress_bar=False)
    return result.timesteps / result.session_time_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="mnist1d-mlp,mnist1d-lenet,fashion-mnist-quick")
    parser.add_argument("--sizes", default="1,4,16,64")
    parser.add_argument("--steps", type=int, default=120, help="trainee steps per episode (task's interval kept)")
    parser.add_argument("--cores", type=int, default=1, help="processes (one thread each) for pop and sub")
    parser.add_argument("--single-episodes", type=int, default=3)
    parser.add_argument("--train-task", default="mnist1d-lenet")
    parser.add_argument("--train-population", type=int, default=8, help="members per process in meta-training")
    parser.add_argument("--train-timesteps", type=int, default=960, help="0: skip the meta-training comparison")
    args = parser.parse_args()
    from lrgym.tasks.specs import load_task_spec
    from lrgym.trainee.data import DataNotFoundError, load_dataset

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; one torch thread per process; "
          f"{args.cores} core(s) for pop and sub; episodes of {args.steps} trainee steps")
    print("rates in member trainee steps per CPU second of the slowest process (robust to other load); "
          "wall: the same ratio in wall-clock time")
    print(f"{'task':<20} {'N':>3} {'pop st/s':>9} {'seq st/s':>9} {'sub st/s':>9} {'pop/seq':>7} {'pop/sub':>7} "
          f"{'wall p/s':>8} {'pop MB':>7} {'seq MB':>7} {'sub MB':>7}")
    for name in args.tasks.split(","):
        task = load_task_spec(name, steps=args.steps)
        try:
            load_dataset(task.dataset)
        except DataNotFoundError:
            print(f"{name:<20} skipped: data not found")
            continue
        fields = task.to_dict()
        seq_rate, seq_wall, seq_mb = in_processes(single_runs, [(fields, args.single_episodes, 0)])
        sub_rate, _, sub_mb = in_processes(
            single_runs, [(fields, args.single_episodes, 100 * worker) for worker in range(args.cores)]
        )
        for size in (int(value) for value in args.sizes.split(",")):
            per_process = max(1, size // args.cores)
            pop_rate, pop_wall, pop_mb = in_processes(
                population_run, [(fields, per_process, 1000 * worker) for worker in range(args.cores)]
            )
            print(f"{name:<20} {size:>3} {pop_rate:>9.0f} {seq_rate:>9.0f} {sub_rate:>9.0f} "
                  f"{pop_rate / seq_rate:>7.2f} {pop_rate / sub_rate:>7.2f} {pop_wall / seq_wall:>8.2f} "
                  f"{pop_mb:>7.0f} {seq_mb:>7.0f} {sub_mb:>7.0f}", flush=True)
    if args.train_timesteps > 0:
        task = load_task_spec(args.train_task)
        rollout = 480  # the shipped recipe's rollout with --n-envs 2 (n_steps 240 per env)
        single = meta_training(task, 1, args.train_timesteps, rollout)
        batched = meta_training(task, args.train_population, args.train_timesteps, rollout)
        print(f"meta-training {args.train_task}, {args.train_timesteps} decisions, rollouts of {rollout}, "
              f"no held-out evaluation: --n-envs 2: {single:.2f} decisions/s; --n-envs 2 --population "
              f"{args.train_population}: {batched:.2f} decisions/s; ratio {batched / single:.2f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

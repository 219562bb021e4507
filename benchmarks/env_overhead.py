"""Trainee steps per second through LRControlEnv versus a plain PyTorch loop.

Both train the same model with the same optimizer and batch size on the same device,
in one process, interleaved (env, plain, env, plain, ...) so machine noise hits both;
the median of the repetitions is reported. The environment's extra work is the
validation measurement every ``interval`` steps (the features), per-tensor parameter
groups, the seeded epoch sampler and the reset/final test evaluation.

    python benchmarks/env_overhead.py                     # quick presets, CPU
    python benchmarks/env_overhead.py --device cuda --tasks fashion-mnist-lenet
    python benchmarks/env_overhead.py --tasks "" --family mnist1d-family --instances test:3

A family's instances are timed like tasks, each with its own model, size, optimizer
and batch size (the plain loop uses the same optimizer; every run starts at rate 1e-3).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

import lrgym  # noqa: F401
from lrgym.agents import make_env
from lrgym.environment.lr_control_env import resolve_device
from lrgym.tasks.family import load_family, parse_instances
from lrgym.tasks.optimizers import build_optimizer
from lrgym.tasks.specs import load_task_spec
from lrgym.trainee.data import DataNotFoundError
from lrgym.trainee.models import build_model


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def env_episode(env, seed: int) -> tuple[float, float]:
    """(seconds for the whole episode, seconds inside step() without the final test eval)."""
    synchronize(env.device)
    start = time.perf_counter()
    env.reset(seed=seed)
    stepping, done, action = 0.0, False, np.zeros(1, np.float32)
    while not done:
        before = time.perf_counter()
        _, _, done, _, _ = env.step(action)
        synchronize(env.device)
        if not done:
            stepping += time.perf_counter() - before
    return time.perf_counter() - start, stepping


def plain_loop(task, dataset, device: torch.device, seed: int) -> tuple[float, float]:
    """The limit: the task's model and optimizer with one group, float inputs on the device, randperm batches."""
    synchronize(device)
    start = time.perf_counter()
    torch.manual_seed(seed)
    model = build_model(task.model, dataset.input_shape, dataset.num_classes, **task.model_kwargs).to(device)
    optimizer = build_optimizer(task.optimizer, model, task.initial_lrs[0], **task.optimizer_kwargs)
    inputs, labels = dataset.train.inputs(), dataset.train.labels()
    generator = torch.Generator(device=device).manual_seed(seed)
    built = time.perf_counter()
    perm, cursor = torch.randperm(len(labels), generator=generator, device=device), 0
    for _ in range(task.steps):
        if cursor + task.batch_size > len(labels):
            perm, cursor = torch.randperm(len(labels), generator=generator, device=device), 0
        index = perm[cursor : cursor + task.batch_size]
        cursor += task.batch_size
        loss = F.cross_entropy(model(inputs[index]), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    loss.item()
    synchronize(device)
    end = time.perf_counter()
    return end - start, end - built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="mnist1d-mlp,mnist1d-lenet,fashion-mnist-quick")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: least noise)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--family", default=None, help="also time instances of this task family")
    parser.add_argument("--instances", default="test:3", help="the family's instances (default test:3)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    from lrgym.commands.common import parse_overrides

    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.repeats} interleaved repeats")
    print(f"{'task':<22} {'steps':>5} {'val':>5} {'K':>3} {'plain st/s':>10} {'env st/s':>9} "
          f"{'ratio':>6} {'episode ratio':>13}")
    overrides = parse_overrides(args.overrides)
    tasks = [load_task_spec(name, **overrides) for name in args.tasks.split(",") if name]
    if args.family:
        family = load_family(args.family, **overrides)
        for index in parse_instances(args.instances, family):
            task = family.instance(index)
            size = task.model_kwargs.get("hidden", "")
            print(f"  {task.name}: {task.model} {size} {task.optimizer}, batch {task.batch_size}, "
                  f"{task.steps} steps, mnist1d {task.dataset_kwargs or 'default'}")
            tasks.append(task)
    for task in tasks:
        name = task.name
        task = task.replace(initial_lrs=(1e-3,))
        try:
            env = make_env(task, device=device)
        except DataNotFoundError:
            print(f"{name:<22} skipped: data not found")
            continue
        env_episode(env, seed=0)  # warm-up (allocator, kernels)
        plain_loop(task, env.dataset, device, seed=0)
        env_times, plain_times = [], []
        for repeat in range(args.repeats):
            env_times.append(env_episode(env, seed=repeat + 1))
            plain_times.append(plain_loop(task, env.dataset, device, seed=repeat + 1))
        env_total = statistics.median(t[0] for t in env_times)
        env_steps = statistics.median(t[1] for t in env_times)
        plain_total = statistics.median(t[0] for t in plain_times)
        plain_steps = statistics.median(t[1] for t in plain_times)
        # step() time covers all but the last interval's steps
        steps_timed = task.steps - min(task.interval, task.steps - (task.decisions - 1) * task.interval)
        env_rate, plain_rate = steps_timed / env_steps, task.steps / plain_steps
        print(f"{name:<22} {task.steps:>5} {task.val_size:>5} {task.interval:>3} {plain_rate:>10.0f} "
              f"{env_rate:>9.0f} {env_rate / plain_rate:>6.3f} {plain_total / env_total:>13.3f}")
    print("ratio: env trainee steps/s over plain steps/s, validation features included;")
    print("episode ratio: the same for whole episodes (env: reset, model build and final test "
          "evaluation included; plain: model build included)")


if __name__ == "__main__":
    main()

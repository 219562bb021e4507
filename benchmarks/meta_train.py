"""Meta-training throughput: controller decisions per second, and where the time goes.

Task mode (default): for each ``--n-envs`` value, one short ``lrgym.train.train`` run of
the same task and recipe (no held-out evaluation), timed by
:class:`lrgym.callbacks.PhaseTimerCallback`: rollout collection (the trainees training,
plus policy inference) versus PPO updates. A reference line runs the bare environment
with a fixed action for the same number of decisions in this process: the ceiling one env
can reach.

Family mode (``--family``): the winning recipe of the study (cell F: mnist1d-family,
scale-free state, residual action over the family-tuned step decay, ``relative_terminal``
reward, ``ppo-monte-carlo``) in several configurations ``PROCESSES x POPULATION x THREADS``,
side by side in one run, each for the same decisions, the same rollout size in decisions
(``--rollout``, 240 as the study's single env) and the same held-out evaluation (the
recipe's 6 validation instances every ``--eval-every`` episodes, 50 as in the study).
``1x1x1`` is the study's setting (one env, its base run serial). Shares: trainee steps
(rollout collection: the trainees and their base runs training, policy inference), PPO
updates, held-out evaluation, and the rest (start-up of envs and workers, checkpoints).

    python benchmarks/meta_train.py                        # mnist1d-mlp, CPU, n-envs 1 and 2
    python benchmarks/meta_train.py --device cuda --task fashion-mnist-lenet --timesteps 2000
    python benchmarks/meta_train.py --family --timesteps 2000 --configs 1x1x1,2x8x1
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import resource
import tempfile
import time

import numpy as np
import torch

import lrgym  # noqa: F401
from lrgym.agents import make_env
from lrgym.environment.lr_control_env import resolve_device
from lrgym.tasks.family import load_family
from lrgym.tasks.specs import load_agent_spec, load_task_spec, project_root
from lrgym.train import train

# Study cell F (experiments/study.sh): the recipe these figures are about.
RECIPE = dict(features="scale-free", reward="relative_terminal", action="residual")
BASE_CHOICE = "checkpoints/mnist1d-family-ppo/step-grid-family-mnist1d-family-957237a972a9.json"


def bare_env_steps_per_second(task, device: str, decisions: int) -> float:
    env = make_env(task, device=device)
    done, seed, started = True, 0, time.perf_counter()
    for _ in range(decisions):
        if done:
            env.reset(seed=seed)
            seed += 1
        _, _, done, _, _ = env.step(np.zeros(1, np.float32))
    return decisions / (time.perf_counter() - started)


def family_mode(args: argparse.Namespace, device: str) -> None:
    """The winning recipe on mnist1d-family in each ``PxNxT`` configuration, side by side."""
    base = json.loads((project_root() / BASE_CHOICE).read_text())
    family = load_family(args.task or "mnist1d-family", base_schedule=base, **RECIPE)
    spec = load_agent_spec("ppo-monte-carlo")
    agent = dataclasses.replace(spec, params={**copy.deepcopy(spec.params), "eval_every_episodes": args.eval_every})
    print(f"{family.name}, study cell F recipe ({spec.name}, {', '.join(f'{k}={v}' for k, v in RECIPE.items())}), "
          f"device {device}, {args.timesteps} decisions per configuration, rollouts of {args.rollout} decisions, "
          f"held-out evaluation of {agent.params['eval_episodes']} validation instances every {args.eval_every} "
          f"episodes; load average {os.getloadavg()[0]:.2f} at the start")
    print(f"{'P x N x T':<10} {'decisions':>9} {'wall s':>7} {'dec/s':>6} {'speed-up':>8} {'trainee steps':>13} "
          f"{'PPO update':>10} {'held-out':>8} {'other':>6} {'CPU s':>6} {'dec/CPU-s':>9}")
    first = None
    for config in args.configs.split(","):
        processes, population, threads = (int(part) for part in config.lower().split("x"))
        torch.set_num_threads(threads if processes == 1 else 1)  # the workers take `threads` each
        cpu_before = cpu_seconds()
        with tempfile.TemporaryDirectory() as folder:
            result = train(family, agent, folder, timesteps=args.timesteps, n_envs=processes, population=population,
                           device=device, progress_bar=False, threads=threads, rollout=args.rollout)
        cpu = cpu_seconds() - cpu_before
        wall = result.session_time_s
        rate = result.timesteps / wall
        first = first or rate
        other = wall - result.rollout_s - result.update_s - result.evaluation_s
        print(f"{config:<10} {result.timesteps:>9} {wall:>7.1f} {rate:>6.2f} {rate / first:>7.2f}x "
              f"{result.rollout_s / wall:>13.1%} {result.update_s / wall:>10.1%} {result.evaluation_s / wall:>8.1%} "
              f"{other / wall:>6.1%} {cpu:>6.0f} {result.timesteps / cpu:>9.2f}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end; dec/s counts the whole train() call (wall clock); "
          "CPU s: this process and its workers, user + system")


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its ended children (the training workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default=None, help="task mode: mnist1d-mlp; family mode: mnist1d-family")
    parser.add_argument("--agent", default="ppo", help="task mode: ppo or ppo-lstm")
    parser.add_argument("--timesteps", type=int, default=960, help="per run (rounded up to whole rollouts)")
    parser.add_argument("--n-envs", default="1,2", help="task mode: comma-separated env counts")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--family", action="store_true", help="family mode: the winning recipe (see above)")
    parser.add_argument("--configs", default="1x1x1,2x8x1", help="family mode: PROCESSESxPOPULATIONxTHREADS, ...")
    parser.add_argument("--rollout", type=int, default=240, help="family mode: decisions per PPO rollout")
    parser.add_argument("--eval-every", type=int, default=50, help="family mode: held-out evaluation period")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one thread per trainee, as `lrgym train` runs them
    device = str(resolve_device(args.device))
    if args.family:
        family_mode(args, device)
        return

    task = load_task_spec(args.task or "mnist1d-mlp")
    spec = load_agent_spec(args.agent)
    agent = dataclasses.replace(spec, params={**copy.deepcopy(spec.params), "eval_every_episodes": 0})
    print(f"{task.name} ({task.decisions} decisions per episode), {args.agent}, device {device}, "
          f"{args.timesteps} timesteps per run")
    bare = bare_env_steps_per_second(task, device, min(args.timesteps, 4 * task.decisions))
    print(f"{'bare env, fixed action':<24} {bare:8.1f} steps/s")
    print(f"{'n_envs':<8} {'steps':>6} {'wall s':>7} {'steps/s':>8} {'learn steps/s':>14} "
          f"{'rollout':>8} {'PPO update':>11}")
    for n_envs in (int(value) for value in args.n_envs.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            result = train(task, agent, folder, timesteps=args.timesteps, n_envs=n_envs, device=device,
                           progress_bar=False)
        learning = result.rollout_s + result.update_s
        print(f"{n_envs:<8} {result.timesteps:>6} {result.session_time_s:>7.1f} "
              f"{result.timesteps / result.session_time_s:>8.1f} {result.timesteps / learning:>14.1f} "
              f"{result.rollout_s / learning:>8.1%} {result.update_s / learning:>11.1%}")
    print("steps/s counts the whole call (env start-up, checkpoints); learn steps/s only rollouts + updates")


if __name__ == "__main__":
    main()

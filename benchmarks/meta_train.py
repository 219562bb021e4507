"""Meta-training throughput: environment steps per second with 1 and 2 envs, and where the time goes.

For each ``--n-envs`` value, one short ``lrgym.train.train`` run of the same task and
recipe (no held-out evaluation), timed by :class:`lrgym.callbacks.PhaseTimerCallback`:
rollout collection (the trainees training, plus policy inference) versus PPO updates.
A reference line runs the bare environment with a fixed action for the same number of
decisions in this process: the ceiling one env can reach.

    python benchmarks/meta_train.py                        # mnist1d-mlp, CPU, n-envs 1 and 2
    python benchmarks/meta_train.py --device cuda --task fashion-mnist-lenet --timesteps 2000
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import tempfile
import time

import numpy as np
import torch

import lrgym  # noqa: F401
from lrgym.agents import make_env
from lrgym.environment.lr_control_env import resolve_device
from lrgym.tasks.specs import load_agent_spec, load_task_spec
from lrgym.train import train


def bare_env_steps_per_second(task, device: str, decisions: int) -> float:
    env = make_env(task, device=device)
    done, seed, started = True, 0, time.perf_counter()
    for _ in range(decisions):
        if done:
            env.reset(seed=seed)
            seed += 1
        _, _, done, _, _ = env.step(np.zeros(1, np.float32))
    return decisions / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="mnist1d-mlp")
    parser.add_argument("--agent", default="ppo", help="ppo or ppo-lstm")
    parser.add_argument("--timesteps", type=int, default=960, help="per run (rounded up to whole rollouts)")
    parser.add_argument("--n-envs", default="1,2", help="comma-separated env counts")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one thread per trainee, as `lrgym train` runs them

    task = load_task_spec(args.task)
    spec = load_agent_spec(args.agent)
    agent = dataclasses.replace(spec, params={**copy.deepcopy(spec.params), "eval_every_episodes": 0})
    device = str(resolve_device(args.device))
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

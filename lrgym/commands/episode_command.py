"""``lrgym episode TASK``: one episode of one agent, its learning-rate trajectory printed."""

from __future__ import annotations

import argparse

from lrgym.agents import make_agent, run_episode
from lrgym.commands.common import (
    AGENT_HELP,
    TASK_HELP,
    add_task_arguments,
    env_options,
    non_negative_int,
    parse_overrides,
)
from lrgym.runners.backend import pin_threads
from lrgym.tasks.family import load_family

HELP = "run one episode of an agent on a task and print its learning-rate trajectory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", help=TASK_HELP)
    parser.add_argument("--instance", type=int, default=None, help="a family's instance index (e.g. 200000)")
    parser.add_argument(
        "--agent", default=None,
        help=f"{AGENT_HELP} (default: keep the initial learning rate)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="episode seed (an integer >= 0)")
    add_task_arguments(parser, backend=False)


class HoldAgent:
    """Keeps the initial learning rate: scale action 0 at every decision."""

    action_mode = "scale"

    def reset(self, start) -> None:
        pass

    def act(self, observation, info):
        import numpy as np

        return np.zeros(1, dtype=np.float32)


def _shown(value: float | None, width: int) -> str:
    return f"{'-' if value is None else format(value, '.4f'):>{width}}"


def run(args: argparse.Namespace) -> int:
    threads = pin_threads(args.threads)  # the result must not depend on the machine's cores or load
    family = load_family(args.task, **parse_overrides(args.overrides))
    if not family.single and args.instance is None:
        raise ValueError(f"{args.task!r} is a task family: say which instance, e.g. --instance "
                         f"{family.indices('test')[0]}")
    task = family.instance(0 if args.instance is None else args.instance)
    agent = make_agent(args.agent, task, **env_options(args)) if args.agent else HoldAgent()
    result = run_episode(agent, task, args.seed, **env_options(args))
    print(f"{task.name} seed {args.seed} agent {args.agent or 'hold'}: "
          f"initial lr {result.initial_lr:.3g}, first lr {result.first_lr:.3g}, {len(result.trajectory)} decisions")
    print(f"{'decision':>8} {'step':>6} {'lr':>10} {'train_loss':>10} {'val_loss':>9} {'val_acc':>8}")
    for row in result.trajectory:  # a diverged decision's losses are None
        print(f"{row.decision:>8} {row.step:>6} {row.lr:>10.3e} {_shown(row.train_loss, 10)} "
              f"{_shown(row.val_loss, 9)} {_shown(row.val_accuracy, 8)}")
    info = result.final_info
    status = "DIVERGED" if result.diverged else "ok"
    print(f"{status}: test loss {info['test_loss_at_best_val']:.4f} / accuracy "
          f"{info['test_accuracy_at_best_val']:.4f} at the best-validation point (step "
          f"{info['best_val_step']}); final test loss {info['final_test_loss']:.4f} / accuracy "
          f"{info['final_test_accuracy']:.4f}; {result.wall_time:.1f} s on {threads} torch thread(s)")
    return 0

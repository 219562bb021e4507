"""How ``agents/hypergradient.toml``'s ``beta`` was chosen: a small grid on tuning seeds.

For each trainee optimizer and each ``beta`` of the multiplicative rule, the
``hypergradient`` agent runs the task from each of its initial rates (so a bad draw counts
as much as a good one) on tuning seeds apart from the evaluation seeds 0, 1, ...; the score
is the mean best validation loss of those runs (the step-grid's criterion). Prints one
markdown row per optimizer.

    python experiments/hypergradient_beta.py        # mnist1d-mlp, Adam and SGD, ~5 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import statistics

import torch

import lrgym  # noqa: F401
from lrgym.agents import make_agent, run_episode
from lrgym.tasks.specs import load_task_spec


def score(task_name: str, optimizer: str, beta: float, seeds: list[int]) -> float:
    """Mean best validation loss over every initial rate of the task x ``seeds``."""
    base = load_task_spec(task_name, optimizer=optimizer)
    losses = []
    for initial_lr in base.initial_lrs:
        task = base.replace(initial_lrs=[initial_lr])
        agent = make_agent("hypergradient", task, beta=beta)
        for seed in seeds:
            best = run_episode(agent, task, seed).final_info["best_val_loss"]
            losses.append(float("inf") if best is None else best)
    return statistics.fmean(losses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mnist1d-mlp")
    parser.add_argument("--optimizers", nargs="+", default=["adam", "sgd"])
    parser.add_argument("--betas", nargs="+", type=float, default=[0.02, 0.05, 0.1, 0.2])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1000, 1001])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| trainee optimizer | " + " | ".join(f"beta {beta:g}" for beta in args.betas) + " |")
    print("|---|" + "---|" * len(args.betas))
    for optimizer in args.optimizers:
        scores = [score(args.task, optimizer, beta, args.seeds) for beta in args.betas]
        best = min(scores)
        cells = [f"**{value:.4f}**" if value == best else f"{value:.4f}" for value in scores]
        print(f"| {optimizer} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()

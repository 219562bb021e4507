"""Figures of an evaluation: learning rate and validation loss against trainee steps.

Like the source paper's figures 1 and 2: one line per agent (the median over seeds)
with a band from the lowest to the highest seed, log-scaled y axis. A diverged run
contributes until it diverged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402

from lrgym.evaluation.aggregate import performance_profile


def _save(figure: Any, path: str | Path) -> Path:
    """Write ``figure`` to ``path`` (PNG, 120 dpi) and free it."""
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def seed_matrix(
    trajectories: Sequence[Mapping[str, Any]], agent: str, key: str
) -> tuple[np.ndarray, np.ndarray]:
    """Trainee steps and a (seeds x decisions) matrix of ``key`` for ``agent``.

    Runs that ended early (diverged) are padded with NaN.
    """
    by_seed: dict[int, dict[int, float]] = {}
    steps: dict[int, int] = {}
    for row in trajectories:
        if row["agent"] != agent:
            continue
        by_seed.setdefault(int(row["seed"]), {})[int(row["decision"])] = float(row[key])
        steps.setdefault(int(row["decision"]), int(row["step"]))
    decisions = sorted(steps)
    matrix = np.full((len(by_seed), len(decisions)), np.nan)
    for i, values in enumerate(by_seed.values()):
        for j, decision in enumerate(decisions):
            matrix[i, j] = values.get(decision, np.nan)
    return np.array([steps[d] for d in decisions]), matrix


def _plot_bands(
    trajectories: Sequence[Mapping[str, Any]],
    path: str | Path,
    agents: Sequence[str],
    key: str,
    ylabel: str,
    title: str,
    piecewise: bool,
) -> Path:
    """``piecewise``: the value holds over the interval that ends at its step (a rate)."""
    figure, axes = plt.subplots(figsize=(7, 4.2), constrained_layout=True)
    any_values = False
    for agent in agents:
        steps, matrix = seed_matrix(trajectories, agent, key)
        if matrix.size == 0:
            continue
        matrix = np.where(matrix > 0, matrix, np.nan)  # log axis: non-positive values are gaps
        seen = ~np.all(np.isnan(matrix), axis=0)
        if not seen.any():  # every run diverged before its first finite value
            axes.plot([], [], label=f"{agent} (no finite values)")
            continue
        any_values = True
        steps, matrix = steps[seen], matrix[:, seen]
        if piecewise:  # each rate drawn from the start to the end of its interval
            steps = np.concatenate([[0], steps])
            matrix = np.concatenate([matrix, matrix[:, -1:]], axis=1)
        with np.errstate(all="ignore"):
            median = np.nanmedian(matrix, axis=0)
        drawstyle, step = ("steps-post", "post") if piecewise else ("default", None)
        (line,) = axes.plot(steps, median, drawstyle=drawstyle, label=agent, linewidth=1.6)
        if matrix.shape[0] > 1:
            axes.fill_between(
                steps, np.nanmin(matrix, axis=0), np.nanmax(matrix, axis=0),
                step=step, color=line.get_color(), alpha=0.18, linewidth=0,
            )
    if any_values:
        axes.set_yscale("log")
    low, high = axes.get_ylim()
    if any_values and not piecewise and high < 10 * low:  # under a decade: label the minor ticks as plain numbers
        axes.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        axes.yaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
    axes.set_xlabel("trainee step")
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    axes.grid(True, which="both", alpha=0.25)
    axes.legend(fontsize=8, loc="best")
    return _save(figure, path)


def plot_lr(
    trajectories: Sequence[Mapping[str, Any]],
    path: str | Path,
    agents: Sequence[str],
    title: str = "",
) -> Path:
    """Learning rate in force over each interval (log scale): median over seeds, min–max band."""
    return _plot_bands(
        trajectories, path, agents, "lr", "learning rate (median, band: min–max over seeds)",
        title or "Learning-rate trajectories", piecewise=True,
    )


def plot_val_loss(
    trajectories: Sequence[Mapping[str, Any]],
    path: str | Path,
    agents: Sequence[str],
    title: str = "",
) -> Path:
    """Validation loss after each interval (log scale): median over seeds, min–max band."""
    return _plot_bands(
        trajectories, path, agents, "val_loss", "validation loss (median, band: min–max over seeds)",
        title or "Validation loss", piecewise=False,
    )


def plot_intervals(aggregates: Sequence[Any], path: str | Path, reference: str) -> Path:
    """IQM and mean normalised score per agent with their 95% intervals (the rliable figure).

    :param aggregates: :class:`lrgym.evaluation.aggregate.AgentAggregate` items.
    """
    items = sorted(aggregates, key=lambda a: a.iqm)
    figure, axes = plt.subplots(1, 2, figsize=(9, 0.45 * len(items) + 1.4), sharey=True, constrained_layout=True)
    positions = np.arange(len(items))
    for ax, (name, value, interval) in zip(
        axes, (("IQM", "iqm", "iqm_interval"), ("mean", "mean", "mean_interval"))
    ):
        values = np.array([getattr(a, value) for a in items])
        low = np.array([getattr(a, interval)[0] for a in items])
        high = np.array([getattr(a, interval)[1] for a in items])
        ax.barh(positions, high - low, left=low, height=0.6, alpha=0.35)
        ax.plot(values, positions, "k|", markersize=14)
        ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel(f"{name} of test loss / {reference}'s (lower is better)")
        ax.grid(True, axis="x", alpha=0.25)
    axes[0].set_yticks(positions, [a.agent for a in items], fontsize=8)
    figure.suptitle("Normalised test loss at the best-validation point, 95% stratified bootstrap CIs", fontsize=10)
    return _save(figure, path)


def plot_performance_profile(scores: Mapping[str, np.ndarray], path: str | Path, reference: str) -> Path:
    """Fraction of runs whose normalised score is at most tau, per agent (higher-left is better)."""
    finite = np.concatenate([s[np.isfinite(s)] for s in scores.values()])
    low, high = np.percentile(finite, [1, 99]) if finite.size else (0.5, 2.0)
    taus = np.linspace(min(low, 0.9), max(high, 1.1), 200)
    figure, axes = plt.subplots(figsize=(7, 4.2), constrained_layout=True)

    for agent, matrix in scores.items():
        axes.plot(taus, performance_profile(matrix, taus), label=agent, linewidth=1.4)
    axes.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    axes.set_xlabel(f"tau: test loss / {reference}'s")
    axes.set_ylabel("fraction of runs with score <= tau")
    axes.set_title("Performance profile (all test instances and seeds)", fontsize=10)
    axes.grid(True, alpha=0.25)
    axes.legend(fontsize=7, loc="lower right")
    return _save(figure, path)


def plot_instance_lrs(
    trajectories: Sequence[Mapping[str, Any]],
    path: str | Path,
    agents: Sequence[str],
    instances: Sequence[Any],
    titles: Mapping[Any, str] | None = None,
    seed: int = 0,
) -> Path:
    """The rate of each agent on a few instances (one panel each, seed ``seed``)."""
    columns = min(len(instances), 2)
    rows = -(-len(instances) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(6 * columns, 3.4 * rows), squeeze=False,
                                constrained_layout=True)
    for axes, instance in zip(grid.flat, instances):
        for agent in agents:
            points = sorted(
                (int(row["step"]), float(row["lr"]))
                for row in trajectories
                if row["agent"] == agent and row.get("instance") == instance and int(row["seed"]) == seed
            )
            if points:
                steps = [0] + [step for step, _ in points]
                rates = [rate for _, rate in points] + [points[-1][1]]
                axes.plot(steps, rates, drawstyle="steps-post", label=agent, linewidth=1.4)
        axes.set_yscale("log")
        axes.set_title((titles or {}).get(instance, f"instance {instance}"), fontsize=9)
        axes.set_xlabel("trainee step")
        axes.set_ylabel("learning rate")
        axes.grid(True, which="both", alpha=0.25)
    for axes in list(grid.flat)[len(instances):]:
        axes.axis("off")
    grid.flat[0].legend(fontsize=7)
    return _save(figure, path)

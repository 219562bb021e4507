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
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


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

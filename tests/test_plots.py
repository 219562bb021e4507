"""lrgym.evaluation.plots: per-agent seed matrices and the two figures."""

from __future__ import annotations

import math

import numpy as np

from lrgym.evaluation.plots import plot_lr, plot_val_loss, seed_matrix


def trajectory_rows() -> list[dict]:
    rows = []
    for agent, lr in (("constant", 1e-3), ("wild", 1.0)):
        for seed in (0, 1):
            decisions = 1 if agent == "wild" and seed == 1 else 3  # seed 1 of "wild" diverged early
            for decision in range(decisions):
                diverged = agent == "wild" and seed == 1
                rows.append({
                    "agent": agent, "seed": seed, "decision": decision, "step": 10 * (decision + 1),
                    "lr": lr * (seed + 1), "val_loss": math.nan if diverged else 2.0 - 0.1 * decision,
                })
    return rows


def test_seed_matrix_pads_runs_that_ended_early_with_nan():
    steps, matrix = seed_matrix(trajectory_rows(), "wild", "val_loss")
    assert steps.tolist() == [10, 20, 30]
    assert matrix.shape == (2, 3)
    assert np.isnan(matrix[1]).all() and np.allclose(matrix[0], [2.0, 1.9, 1.8])


def test_both_figures_are_written_as_png(tmp_path):
    rows = trajectory_rows()
    for plot, name in ((plot_lr, "lr.png"), (plot_val_loss, "val_loss.png")):
        path = plot(rows, tmp_path / name, ["constant", "wild"], title="tiny")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

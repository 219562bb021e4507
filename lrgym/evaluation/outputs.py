"""The rows of an evaluation and the files they become: results.csv, trajectories.csv,
summary.md, the learning-rate and validation-loss figures and TensorBoard scalars.

:func:`lrgym.evaluation.evaluate.evaluate` fills an :class:`Evaluation`;
:func:`write_evaluation` writes it and :func:`read_results` reads ``results.csv`` back
(:mod:`lrgym.evaluation.aggregate_report` pools several). The family evaluation writes
the same columns with the instance's fields added.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrgym.evaluation.statistics import summarize, summary_markdown
from lrgym.tasks.specs import TaskSpec

RESULT_COLUMNS = (
    "agent", "trainee_optimizer", "seed", "initial_lr", "first_lr",
    "test_loss_at_best_val", "test_accuracy_at_best_val", "best_val_step",
    "final_test_loss", "final_test_accuracy",
    "best_val_loss", "final_val_loss",
    "diverged", "decisions", "wall_time", "initial_val_loss", "node", "torch_threads",
)
TEXT_COLUMNS = ("agent", "trainee_optimizer", "node")
TRAJECTORY_COLUMNS = (
    "agent", "seed", "decision", "step", "lr", "train_loss", "val_loss", "val_accuracy", "reward",
)


@dataclass
class Evaluation:
    """The rows of an evaluation: one result per run and one trajectory row per decision."""

    task: TaskSpec
    agents: list[str]
    seeds: list[int]
    results: list[dict[str, Any]]
    trajectories: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)  # printed under the summary's heading


def threads_note(results: Sequence[Mapping[str, Any]]) -> str:
    """The summary's line saying on how many torch threads the runs ran (``threads`` of each row)."""
    counts = sorted({int(row["torch_threads"]) for row in results if row.get("torch_threads") is not None})
    shown = " or ".join(str(count) for count in counts) or "an unrecorded number of"
    return f"each run on {shown} torch thread(s) (`--threads`; per run in results.csv)"


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _csv_value(row.get(key)) for key in columns})


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Read a ``results.csv`` back into rows with numbers and booleans (blank -> NaN; text,
    such as a family instance's model, stays text)."""
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            parsed: dict[str, Any] = {}
            for key, value in row.items():
                if key in TEXT_COLUMNS:
                    parsed[key] = value
                elif key == "diverged":
                    parsed[key] = value == "True"
                elif value == "":
                    parsed[key] = math.nan
                else:
                    try:
                        parsed[key] = float(value)
                    except ValueError:
                        parsed[key] = value
            parsed["seed"] = int(parsed["seed"])
            if "instance" in parsed:
                parsed["instance"] = int(parsed["instance"])
            rows.append(parsed)
    return rows


def write_tensorboard(evaluation: Evaluation, folder: Path) -> Path:
    """Scalars per agent (one TensorBoard run each) and seed, against trainee steps."""
    from torch.utils.tensorboard import SummaryWriter

    root = folder / "tensorboard"
    writers = {
        label: SummaryWriter(log_dir=str(root / _safe_name(label))) for label in evaluation.agents
    }
    for row in evaluation.trajectories:
        writer, prefix = writers[row["agent"]], f"seed_{row['seed']}"
        for key in ("lr", "train_loss", "val_loss", "val_accuracy"):
            if not math.isnan(row[key]):
                writer.add_scalar(f"{prefix}/{key}", row[key], global_step=row["step"])
    for row in evaluation.results:
        writer = writers[row["agent"]]
        for key in ("test_loss_at_best_val", "test_accuracy_at_best_val", "best_val_loss"):
            if not math.isnan(row[key]):
                writer.add_scalar(f"result/{key}", row[key], global_step=row["seed"])
    for writer in writers.values():
        writer.close()
    return root


def _safe_name(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def write_evaluation(
    evaluation: Evaluation, folder: str | Path, reference: str | None = None, title: str | None = None
) -> dict[str, Path]:
    """Write results.csv, trajectories.csv, summary.md, lr.png, val_loss.png and TensorBoard scalars.

    :param reference: the agent the others are tested against (default: the first).
    :return: what was written, by kind.
    """
    from lrgym.evaluation.plots import plot_lr, plot_val_loss  # matplotlib only when drawing

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    reference = reference or evaluation.agents[0]
    if reference not in evaluation.agents:
        raise ValueError(f"reference agent {reference!r} is not among {evaluation.agents}")
    paths = {
        "results": folder / "results.csv",
        "trajectories": folder / "trajectories.csv",
        "summary": folder / "summary.md",
        "lr_plot": folder / "lr.png",
        "val_loss_plot": folder / "val_loss.png",
    }
    write_csv(paths["results"], evaluation.results, RESULT_COLUMNS)
    write_csv(paths["trajectories"], evaluation.trajectories, TRAJECTORY_COLUMNS)
    summaries = summarize(evaluation.results, reference=reference)
    task = evaluation.task
    heading = title or f"Evaluation on {task.name}"
    seeds = evaluation.seeds
    seed_text = f"{seeds[0]}..{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else seeds
    text = (
        f"# {heading}\n\nTask `{task.name}` ({task.dataset}, {task.model}, {task.optimizer}, "
        f"{task.steps} steps, a decision every {task.interval}, batch {task.batch_size}); "
        f"{len(seeds)} paired seeds ({seed_text}).\n\n"
        + "".join(f"- {note}\n" for note in evaluation.notes)
        + ("\n" if evaluation.notes else "")
        + summary_markdown(summaries, reference)
    )
    paths["summary"].write_text(text)
    plot_lr(evaluation.trajectories, paths["lr_plot"], evaluation.agents, title=heading)
    plot_val_loss(evaluation.trajectories, paths["val_loss_plot"], evaluation.agents, title=heading)
    paths["tensorboard"] = write_tensorboard(evaluation, folder)
    return paths

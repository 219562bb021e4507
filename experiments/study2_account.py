"""Study 2's compute account: what each finished stage cost, and the trainee runs each method spends.

Reads what ``experiments/study2.sh`` left: the stage records (``RESULTS/stages/*.json``: wall and
CPU seconds, torch threads, jobs), the tuned choices (``RESULTS/choices/``: grid rows x tuning
instances x tuning seeds = tuning runs), the evaluations (``RESULTS/test/AGENT/results.csv``, the
oracle's per-instance choices beside them) and the controllers' cards (``RUNS/CELL/card.json``:
meta-training episodes; each also ran its base schedule's counterfactual once). Prints markdown.

    python experiments/study2_account.py docs/results/study2 runs/study2 > docs/results/study2/compute.md
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from lrgym.agents.step_grid import grid_configurations
from lrgym.tasks.specs import load_agent_spec


def stage_rows(results: Path) -> list[str]:
    rows = ["| stage | wall | CPU | jobs | torch threads | finished |", "|---|---|---|---|---|---|"]
    for path in sorted((results / "stages").glob("*.json"), key=lambda p: json.loads(p.read_text())["finished"]):
        record = json.loads(path.read_text())
        rows.append(f"| {record['stage']} | {record['wall_s'] / 60:.1f} min | {record['cpu_s'] / 60:.1f} min "
                    f"| {record['jobs']} | {record['torch_threads']} | {record['finished']} |")
    return rows


def tuning_runs(choice: dict) -> int:
    """Trainee runs a family or per-optimizer tuning cost (every grid row on every instance and seed)."""
    parts = choice.get("by_optimizer", {"": choice}).values()
    return sum(len(part["grid"]) * len(part["tuning_instances"]) * len(part["tuning_seeds"]) for part in parts)


def method_rows(results: Path, runs: Path) -> list[str]:
    rows = ["| method | tuning runs (train instances) | meta-training episodes + counterfactual runs "
            "| evaluation runs | tuning runs per new task |", "|---|---|---|---|---|"]
    tunings = {}
    for path in sorted((results / "choices").glob("*.json")):
        choice = json.loads(path.read_text())
        if "by_optimizer" in choice or "tuning_instances" in choice:
            tunings[choice["agent"]["name"]] = tuning_runs(choice)
    for folder in sorted((results / "test").glob("*")):
        if not (folder / "results.csv").is_file():
            continue
        with open(folder / "results.csv", newline="") as handle:
            evaluated = sum(1 for _ in csv.DictReader(handle))
        name = folder.name
        rate_from = {"constant-tuned", "cosine-tuned", "hypergradient-tuned"}
        tuned = tunings.get("step-grid-per-optimizer" if name in rate_from else name, 0)
        per_task, training = "0", "-"
        card = runs / name / "card.json"
        if card.is_file():  # a controller: its meta-training episodes, each with its base schedule's run
            card_data = json.loads(card.read_text())
            episodes = card_data.get("run", {}).get("episodes", 0)
            training = f"{episodes} + {episodes}"
            base = card_data["task"].get("base_schedule") or {}
            base_tuning = ("step-grid-per-optimizer" if "by_optimizer" in base
                           else None if card_data["task"]["optimizer"] == "prodigy" else "step-grid-family")
            tuned = tunings.get(base_tuning, 0)
        elif load_agent_spec(name).kind == "step-grid":  # tuned on each instance's own tuning seeds
            spec = load_agent_spec(name)
            per_task = str(len(grid_configurations(spec.params)) * len(spec.params["tuning_seeds"]))
        shared = " (step-grid-per-optimizer's)" if name in rate_from else " (its base's)" if card.is_file() else ""
        rows.append(f"| {name} | {tuned}{shared} | {training} | {evaluated} | {per_task} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="RESULTS of experiments/study2.sh (docs/results/study2)")
    parser.add_argument("runs", type=Path, help="RUNS of experiments/study2.sh (runs/study2)")
    args = parser.parse_args()
    print("## Stages\n")
    print("\n".join(stage_rows(args.results)))
    print("\n## Trainee runs per method\n")
    print("\n".join(method_rows(args.results, args.runs)))


if __name__ == "__main__":
    main()

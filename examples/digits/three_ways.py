"""Your own data and model with lrgym, three ways: scikit-learn's digits and torchvision's MLP.

1. **your own schedule**: cosine annealing in a plain PyTorch loop;
2. **a shipped controller in that loop**: ``checkpoints/mnist1d-mlp-ppo`` through
   ``lrgym.LRController`` (a torch scheduler whose ``step`` takes the loss);
3. **the controller transferred by lrgym**: ``lrgym transfer`` on the plug-in spec
   ``digits.toml`` (``dataset = "my_data:load"``, ``model = "my_model:build"``).

Ways 1 and 2 share the initial weights and the batches of each seed; way 3 runs in
lrgym's environment (its own batch order and normalisation, the same seeds 0..N-1).
Each prints the test loss and accuracy at the end of training, mean over the seeds::

    python examples/digits/three_ways.py            # 3 seeds of 600 steps
    python examples/digits/three_ways.py --quick    # 1 seed of 100 steps (the test)
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the user's own modules, beside this script
import my_data  # noqa: E402
import my_model  # noqa: E402

from lrgym import LRController  # noqa: E402
from lrgym.controller import validation_batch  # noqa: E402

CHECKPOINT = HERE.parents[1] / "checkpoints" / "mnist1d-mlp-ppo"
BATCH, INITIAL_LR = 64, 1e-3


def standardised_splits() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The user's own preparation: tensors, standardised with the training split's statistics."""
    splits = [(torch.from_numpy(inputs), torch.from_numpy(labels)) for inputs, labels in my_data.load()]
    mean, std = splits[0][0].mean(), splits[0][0].std()
    return [((inputs - mean) / std, labels) for inputs, labels in splits]


def train_in_a_plain_loop(way: str, seed: int, steps: int, splits) -> tuple[float, float]:
    """Way 1 (``schedule``) or 2 (``controller``): the same weights and batches for a seed."""
    (train_x, train_y), validation, (test_x, test_y) = splits
    torch.manual_seed(seed)
    model = my_model.build(tuple(train_x.shape[1:]), 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=INITIAL_LR)
    if way == "schedule":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    else:  # the validation split is small: all of it is the fixed validation batch
        val_inputs, val_labels = validation_batch(validation, size=len(validation[1]))
        scheduler = LRController.from_checkpoint(CHECKPOINT, model, optimizer, val_inputs, val_labels, steps)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        index = torch.randint(len(train_y), (BATCH,), generator=generator)
        loss = F.cross_entropy(model(train_x[index]), train_y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step() if way == "schedule" else scheduler.step(loss)
    model.eval()
    with torch.no_grad():
        logits = model(test_x)
    return F.cross_entropy(logits, test_y).item(), (logits.argmax(1) == test_y).float().mean().item()


def transfer_with_lrgym(seeds: int, steps: int, out: Path, jobs: int) -> tuple[list[float], list[float]]:
    """Way 3: ``lrgym transfer`` on the plug-in spec; the controller's rows of its results.csv."""
    command = [sys.executable, "-m", "lrgym.cli", "transfer", str(CHECKPOINT), str(HERE / "digits.toml"),
               "--seeds", str(seeds), "--set", f"steps={steps}", "--target-baselines", "constant",
               "--jobs", str(jobs), "--out", str(out)]
    print("$ lrgym", " ".join(command[3:]).replace(str(HERE.parents[1]) + "/", ""), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    with open(out / "results.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row["agent"].startswith("ppo:")]
    return [float(row["final_test_loss"]) for row in rows], [float(row["final_test_accuracy"]) for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--quick", action="store_true", help="1 seed of 100 steps")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes of lrgym transfer")
    parser.add_argument("--out", type=Path, default=Path("runs/digits-transfer"))
    args = parser.parse_args()
    seeds, steps = (1, 100) if args.quick else (args.seeds, args.steps)
    torch.set_num_threads(1)  # as lrgym's runs: results do not depend on the machine's load
    started, splits = time.perf_counter(), standardised_splits()
    results = {
        "1. your schedule (cosine) in a plain loop": [train_in_a_plain_loop("schedule", s, steps, splits)
                                                       for s in range(seeds)],
        f"2. {CHECKPOINT.name} via LRController": [train_in_a_plain_loop("controller", s, steps, splits)
                                                   for s in range(seeds)],
    }
    losses, accuracies = transfer_with_lrgym(seeds, steps, args.out, args.jobs)
    results[f"3. {CHECKPOINT.name} via lrgym transfer"] = list(zip(losses, accuracies))
    print(f"\ndigits, {steps} steps of batch {BATCH}, Adam from {INITIAL_LR:g}, {seeds} seed(s); final test:")
    for way, runs in results.items():
        loss = statistics.fmean(run[0] for run in runs)
        accuracy = statistics.fmean(run[1] for run in runs)
        print(f"  {way:<42} loss {loss:.4f}  accuracy {accuracy:.4f}")
    print(f"(way 3's baselines: {args.out}/summary.md; {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()

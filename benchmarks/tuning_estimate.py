"""How long the step-decay grid would take on a task whose data is not on this machine.

    python benchmarks/tuning_estimate.py fashion-mnist-lenet --input-shape 1,28,28 --jobs 2

``lrgym`` estimates a tuning before running it by timing one real decision of the task
(:func:`lrgym.agents.step_grid.tuning_plan`), which needs the dataset. This script times
the same work on synthetic inputs of the given shape: ``interval`` optimizer steps of the
task's model and optimizer on batches of ``batch_size``, then a forward pass over
``val_size`` validation inputs, and scales it to the grid's episodes over ``--jobs``
workers (one torch thread each). Augmentation, the batch sampler and the test-split
evaluation at each episode's end are left out, so the figure leans short.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from lrgym.agents.step_grid import grid_configurations
from lrgym.tasks.optimizers import build_optimizer
from lrgym.tasks.specs import load_agent_spec, load_task_spec
from lrgym.trainee.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task")
    parser.add_argument("--input-shape", required=True, help="one input's shape, e.g. 1,28,28")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = load_task_spec(args.task)
    shape = tuple(int(size) for size in args.input_shape.split(","))
    model = build_model(task.model, shape, args.classes)
    optimizer = build_optimizer(task.optimizer, model, 1e-3, **task.optimizer_kwargs)
    inputs, labels = torch.randn(task.batch_size, *shape), torch.randint(0, args.classes, (task.batch_size,))
    validation = torch.randn(task.val_size, *shape)
    started = time.perf_counter()
    for _ in range(task.interval):
        loss = F.cross_entropy(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        for chunk in validation.split(1000):
            model(chunk)
    decision_s = time.perf_counter() - started
    spec = load_agent_spec("step-grid")
    episodes = len(grid_configurations(spec.params)) * len(spec.params["tuning_seeds"])
    total_s = episodes * task.decisions * decision_s / args.jobs
    print(f"{task.name}: one decision {decision_s:.2f} s; {episodes} episodes x {task.decisions} decisions "
          f"on {args.jobs} workers: about {total_s / 3600:.1f} h")


if __name__ == "__main__":
    main()

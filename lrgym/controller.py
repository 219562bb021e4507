"""A trained controller driving an ordinary PyTorch training loop, outside the environment.

:class:`LRController` is used like a ``torch.optim.lr_scheduler`` scheduler: call
``controller.step(loss)`` after every ``optimizer.step()``. Every ``interval`` steps
it measures the model on a validation batch with :class:`lrgym.trainee.features.ModelMeter`
and keeps the episode's state with :class:`lrgym.environment.episode.EpisodeTracker`, as the
environment does, asks the controller for an action and sets the optimizer's rate of
every following step the way the environment would (any feature set and action mode,
``residual`` included)::

    controller = LRController.from_checkpoint(
        "checkpoints/mnist1d-mlp-ppo", model, optimizer, val_inputs, val_labels, total_steps=600
    )
    for step in range(600):
        loss = F.cross_entropy(model(x[step]), y[step])
        optimizer.zero_grad(); loss.backward(); optimizer.step()
        controller.step(loss)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lrgym.agents.ppo import PPOAgent, load_ppo_agent
from lrgym.checkpoints.checkpoint import read_card
from lrgym.environment.episode import EpisodeTracker, start_lr
from lrgym.environment.rewards import needs_base_run
from lrgym.tasks.specs import TaskSpec
from lrgym.trainee.features import ModelMeter
from lrgym.trainee.models import final_layer as find_final_layer


class LRController:
    """Sets ``optimizer``'s learning rate every ``task.interval`` steps from a trained controller.

    The first decision is made at construction (as the environment asks for one at
    reset, before any training), from the initial rate in the optimizer.

    :param agent: the controller (e.g. :func:`lrgym.agents.ppo.load_ppo_agent`).
    :param task: the decision interval, action mode, ``lr_scale`` and rate bounds to
        act with (normally the task the controller was trained on).
    :param model: the network being trained.
    :param optimizer: its optimizer; every parameter group gets the controller's rate.
    :param val_inputs: a fixed validation batch (normalised as the training inputs).
    :param val_labels: its labels.
    :param total_steps: the planned number of optimizer steps (the state's budget fraction).
    :param final_layer: the classifier layer whose weight statistics enter the state
        (default: the model's last linear or convolutional layer).
    """

    def __init__(
        self,
        agent: PPOAgent,
        task: TaskSpec,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        val_inputs: torch.Tensor,
        val_labels: torch.Tensor,
        total_steps: int,
        final_layer: nn.Module | None = None,
    ) -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be positive, got {total_steps}")
        self.agent, self.task = agent, task
        self.model, self.optimizer = model, optimizer
        self.val_inputs, self.val_labels = val_inputs, val_labels
        self.total_steps = int(total_steps)
        self.final_layer = final_layer if final_layer is not None else find_final_layer(model)
        self.step_count = 0
        if needs_base_run(task):  # acting needs no reward: do not run the base schedule
            task = task.replace(reward="log_improvement")
        # A base drawn at random each episode (base_lr_spread) is a meta-training device: acting runs the base as given.
        self.task = task.replace(steps=self.total_steps, base_lr_spread=0.0)
        self.lr = start_lr(self.task, float(optimizer.param_groups[0]["lr"]))
        self.lr_history: list[float] = []
        self._losses: list[torch.Tensor] = []
        self._meter = ModelMeter(model, self.final_layer)
        self._tracker = EpisodeTracker(self.task, self.lr)
        self._rates: list[float] = []
        agent.begin_episode()
        state, _ = self._tracker.start(self._meter.measure(val_inputs, val_labels))
        self._decide(state)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        val_inputs: torch.Tensor,
        val_labels: torch.Tensor,
        total_steps: int,
        task: TaskSpec | None = None,
        device: str = "cpu",
        **options: Any,
    ) -> LRController:
        """The controller of checkpoint folder ``path`` (``lrgym train ... --out PATH``).

        :param task: how to act (interval, ``lr_scale``, bounds); default the task the
            controller was trained on, from its card.
        :param device: where the policy runs.
        """

        task = task or TaskSpec(**read_card(path)["task"])
        agent = load_ppo_agent(path, task, device=device)
        return cls(agent, task, model, optimizer, val_inputs, val_labels, total_steps, **options)

    def step(self, loss: torch.Tensor | float) -> None:
        """Record the training loss of the optimizer step just taken; set the next step's rate.

        A tensor is kept on its device until the decision (no synchronisation per step).
        """
        self._losses.append(loss.detach() if isinstance(loss, torch.Tensor) else torch.tensor(float(loss)))
        self.step_count += 1
        interval_done = self.step_count % self.task.interval == 0
        if interval_done and self.step_count < self.total_steps:
            train_loss = float(torch.stack([value.float().cpu() for value in self._losses]).mean())
            self._losses.clear()
            measurement = self._meter.measure(self.val_inputs, self.val_labels)
            if not (math.isfinite(train_loss) and measurement.finite):
                raise FloatingPointError(f"training diverged at step {self.step_count}: loss {train_loss}")
            state, _, _, _ = self._tracker.record(train_loss, measurement)
            self._decide(state)
        elif self.step_count < self.total_steps:
            self._set_rate(self._rates[self.step_count % self.task.interval])

    def get_last_lr(self) -> list[float]:
        """The rate of every parameter group (as torch schedulers report it)."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def _decide(self, state: np.ndarray) -> None:
        self._rates = self._tracker.decide(self.agent.act(state, {}))
        self.lr = self._rates[0]
        self._set_rate(self.lr)
        self.lr_history.append(self.lr)

    def _set_rate(self, rate: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = rate

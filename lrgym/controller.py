"""A trained controller driving an ordinary PyTorch training loop, as a ``torch.optim.lr_scheduler``.

:class:`LRController` follows the conventions of PyTorch's schedulers, like
``ReduceLROnPlateau``, whose ``step`` also takes a metric: call ``controller.step(loss)``
after every ``optimizer.step()``; ``get_last_lr()`` gives every parameter group's rate;
``state_dict()`` / ``load_state_dict()`` save and restore it beside the model and the
optimizer, so an interrupted run resumes with the same episode state and makes the
same decisions. Every ``task.interval`` steps it measures the model on a fixed
validation batch with :class:`lrgym.trainee.features.ModelMeter`, keeps the episode's
state with :class:`lrgym.environment.episode.EpisodeTracker` as the environment does,
asks the controller for an action and sets the rates of the following steps the way
the environment would (any feature set and action mode, ``residual`` included)::

    val_inputs, val_labels = validation_batch(held_out_dataset, 1000)
    controller = LRController.from_checkpoint(
        "checkpoints/mnist1d-mlp-ppo", model, optimizer, val_inputs, val_labels, total_steps=600
    )
    for step in range(600):
        loss = F.cross_entropy(model(x[step]), y[step])
        optimizer.zero_grad(); loss.backward(); optimizer.step()
        controller.step(loss)
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "controller": controller.state_dict()}, "run.pt")  # loads with weights_only=True

The validation batch is the user's to give: examples the model does not train on
(a held-out part of the training data will do), the same ones at every decision, in
the form the model takes; :func:`validation_batch` draws one from a torch ``Dataset``
or from tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import Dataset, default_collate

from lrgym.agents.ppo import PPOAgent, load_ppo_agent
from lrgym.checkpoints.checkpoint import read_card
from lrgym.environment.episode import EpisodeTracker, start_lr
from lrgym.environment.rewards import needs_base_run
from lrgym.tasks.specs import TaskSpec
from lrgym.trainee.features import ModelMeter, ScaleFreeFeatures
from lrgym.trainee.models import final_layer as find_final_layer

STATE_FORMAT = 1
# What the constructor rebuilds from the task and the model: not part of the saved state.
REBUILT = {"task", "_rule", "_base", "model", "final_layer"}


class LRController(LRScheduler):
    """Sets ``optimizer``'s learning rates every ``task.interval`` steps from a trained controller.

    The first decision is made at construction (as the environment asks for one at
    reset, before any training), from the rate of the optimizer's first parameter group.

    **Parameter groups.** The controller decides one rate, the first group's; every other
    group keeps the ratio to it that it had at construction (a head at 10x the backbone
    stays at 10x; a group at 0 stays frozen), as torch's schedulers scale each group's own
    initial rate. The state's rate features are the first group's.

    :param agent: the controller (e.g. :func:`lrgym.agents.ppo.load_ppo_agent`).
    :param task: the decision interval, action mode, ``lr_scale`` and rate bounds to
        act with (normally the task the controller was trained on).
    :param model: the network being trained.
    :param optimizer: its optimizer; the first parameter group's rate must be > 0.
    :param val_inputs: a fixed validation batch, as the model takes it (see :func:`validation_batch`).
    :param val_labels: its class labels.
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
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"LRController needs a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if total_steps < 1:
            raise ValueError(f"total_steps must be positive, got {total_steps}")
        if val_inputs is None or val_labels is None or len(val_inputs) != len(val_labels) or len(val_labels) == 0:
            raise ValueError("LRController needs a fixed validation batch: val_inputs and val_labels of the same "
                             "length >= 1, e.g. lrgym.controller.validation_batch(held_out_dataset, 1000)")
        self.optimizer = optimizer
        self.base_lrs = [float(group["lr"]) for group in optimizer.param_groups]  # torch's name: rates at the start
        if not self.base_lrs[0] > 0:
            raise ValueError(f"the first parameter group's rate must be > 0 (the controller scales it), "
                             f"got {self.base_lrs[0]}")
        self.group_ratios = [rate / self.base_lrs[0] for rate in self.base_lrs]
        self.last_epoch = 0  # torch's name for the steps taken: here optimizer steps
        self.agent = agent
        self.model = model
        self.val_inputs, self.val_labels = val_inputs, val_labels
        self.total_steps = int(total_steps)
        self.final_layer = final_layer if final_layer is not None else find_final_layer(model)
        if needs_base_run(task):  # acting needs no reward: do not run the base schedule
            task = task.replace(reward="log_improvement")
        # A base drawn at random each episode (base_lr_spread) is a meta-training device: acting runs the base as given.
        self.task = task.replace(steps=self.total_steps, base_lr_spread=0.0)
        self.lr = start_lr(self.task, self.base_lrs[0])
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

    def step(self, loss: torch.Tensor | float) -> None:  # type: ignore[override]  # takes a metric, as ReduceLROnPlateau
        """Record the training loss of the optimizer step just taken; set the next step's rates.

        A tensor is kept on its device until the decision (no synchronisation per step).
        """
        self._losses.append(loss.detach() if isinstance(loss, torch.Tensor) else torch.tensor(float(loss)))
        self.last_epoch += 1
        interval_done = self.last_epoch % self.task.interval == 0
        if interval_done and self.last_epoch < self.total_steps:
            train_loss = float(torch.stack([value.float().cpu() for value in self._losses]).mean())
            self._losses.clear()
            measurement = self._meter.measure(self.val_inputs, self.val_labels)
            if not (math.isfinite(train_loss) and measurement.finite):
                raise FloatingPointError(f"training diverged at step {self.last_epoch}: loss {train_loss}")
            state, _, _, _ = self._tracker.record(train_loss, measurement)
            self._decide(state)
        elif self.last_epoch < self.total_steps:
            self._set_rate(self._rates[self.last_epoch % self.task.interval])

    def get_lr(self) -> list[float]:
        """The rate of every parameter group now."""
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The rate of every parameter group set by the last call (as torch schedulers report it)."""
        return list(self._last_lr)

    # ------------------------------------------------------------------ saving and resuming
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to make the same decisions: counters, rates, the
        losses of the unfinished interval, the episode's state, the measurement history and
        the controller's recurrent state. Tensors, numbers and lists only:
        ``torch.load(..., weights_only=True)`` reads it back."""
        return {
            "format": STATE_FORMAT, "total_steps": self.total_steps, "interval": self.task.interval,
            "last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs), "group_ratios": list(self.group_ratios),
            "lr": self.lr, "lr_history": list(self.lr_history), "rates": list(self._rates),
            "last_lr": list(self._last_lr),
            "losses": torch.stack([value.float().cpu() for value in self._losses]) if self._losses else torch.zeros(0),
            "tracker": _export_attributes(self._tracker),
            "meter": _export_attributes(self._meter),
            "agent": _export(self.agent.state_dict()) if hasattr(self.agent, "state_dict") else None,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into a controller built for the same run (same
        ``total_steps``, interval and number of parameter groups); the optimizer's rates are
        set to the saved ones."""
        state = state_dict
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not an LRController state (format {state.get('format')!r}, expected {STATE_FORMAT})")
        saved = {"total_steps": state["total_steps"], "interval": state["interval"],
                 "parameter groups": len(state["group_ratios"])}
        here = {"total_steps": self.total_steps, "interval": self.task.interval,
                "parameter groups": len(self.optimizer.param_groups)}
        if saved != here:
            raise ValueError(f"this LRController state was saved for {saved}, this controller has {here}")
        self.last_epoch, self.lr = int(state["last_epoch"]), float(state["lr"])
        self.base_lrs, self.group_ratios = list(state["base_lrs"]), list(state["group_ratios"])
        self.lr_history, self._rates = list(state["lr_history"]), list(state["rates"])
        self._losses = list(state["losses"].unbind(0))
        _restore_attributes(self._tracker, state["tracker"])
        _restore_attributes(self._meter, state["meter"])
        if state["agent"] is not None:
            self.agent.load_state_dict(_restore(state["agent"]))
        for group, rate in zip(self.optimizer.param_groups, state["last_lr"], strict=True):
            group["lr"] = float(rate)
        self._last_lr = list(state["last_lr"])

    # ------------------------------------------------------------------ internals
    def _decide(self, state: np.ndarray) -> None:
        self._rates = self._tracker.decide(self.agent.act(state, {}))
        self.lr = self._rates[0]
        self._set_rate(self.lr)
        self.lr_history.append(self.lr)

    def _set_rate(self, rate: float) -> None:
        for group, ratio in zip(self.optimizer.param_groups, self.group_ratios, strict=True):
            group["lr"] = rate * ratio
        self._last_lr = self.get_lr()


def validation_batch(
    data: Dataset | tuple[torch.Tensor, torch.Tensor], size: int = 1000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed validation batch for :class:`LRController`: ``size`` examples drawn once (seeded).

    :param data: held-out examples: a map-style torch ``Dataset`` of ``(input, label)``
        items (collated with torch's ``default_collate``) or an ``(inputs, labels)`` pair.
    :param size: how many (all of them when there are fewer).
    :param seed: which ones.
    """
    count = len(data[1]) if isinstance(data, (tuple, list)) else len(data)
    index = torch.randperm(count, generator=torch.Generator().manual_seed(seed))[: min(size, count)]
    if isinstance(data, (tuple, list)):
        inputs, labels = data
        return inputs[index.to(inputs.device)], labels[index.to(labels.device)]
    inputs, labels = default_collate([data[int(position)][:2] for position in index])
    return inputs, torch.as_tensor(labels)


# Hand-written rather than pickled: the episode's objects hold numpy arrays and small
# objects, and a state that torch.load(weights_only=True) reads must be tensors and lists.
def _export_attributes(owner: Any) -> dict[str, Any]:
    return {name: _export(value) for name, value in vars(owner).items() if name not in REBUILT}


def _restore_attributes(owner: Any, saved: dict[str, Any]) -> None:
    for name, value in saved.items():
        setattr(owner, name, _restore(value))


def _export(value: Any) -> Any:
    if isinstance(value, (np.ndarray, np.generic)):  # a numpy scalar keeps its dtype too
        return {"ndarray": torch.from_numpy(np.array(value))}
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, ScaleFreeFeatures):
        return {"scale_free": dict(vars(value))}
    if isinstance(value, dict):
        return {"dict": {key: _export(item) for key, item in value.items()}}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_export(item) for item in value] if isinstance(value, list) else {"tuple": [_export(v) for v in value]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"LRController.state_dict cannot save a {type(value).__name__}")


def _restore(value: Any) -> Any:
    if isinstance(value, dict):
        (kind, content), = value.items()
        if kind == "ndarray":
            array = content.numpy().copy()
            return array[()] if array.ndim == 0 else array
        if kind == "scale_free":
            features = ScaleFreeFeatures.__new__(ScaleFreeFeatures)
            vars(features).update(content)
            return features
        if kind == "tuple":
            return tuple(_restore(item) for item in content)
        return {key: _restore(item) for key, item in content.items()}
    if isinstance(value, list):
        return [_restore(item) for item in value]
    return value.clone() if isinstance(value, torch.Tensor) else value

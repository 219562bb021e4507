"""One training run of a trainee network: model, optimizer, batch sampler, measurements.

The environment owns one :class:`Trainee` per episode. Every random stream is seeded
from the episode seed, so two trainees built with the same seed start from the same
weights, see the same batches and measure on the same validation subset, whichever
learning rates they are given: comparisons between agents are paired.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lrgym.tasks.optimizers import build_optimizer
from lrgym.trainee.data import Dataset, Split, batch_index, carve_validation, check_batch_size
from lrgym.trainee.features import Measurement, ModelMeter
from lrgym.trainee.models import build_model, final_layer

# (global step, nominal learning rate, number of parameter groups) -> the rate of every
# group for this optimizer step (a float applies to all groups). ASLR draws per-layer
# rates per mini-batch through this; schedules can use it to move the rate every step.
LRSampler = Callable[[int, float, int], "float | Sequence[float]"]


def split_param_groups(optimizer: torch.optim.Optimizer) -> None:
    """Give every parameter tensor its own group, with the same hyperparameters.

    One group per tensor is what ASLR means by "per layer" (its reference code). The
    optimizer state is keyed by parameter, so it survives; with one shared rate the
    updates are exactly those of a single group. Done only on request because each
    group costs a little per step (the optimizer loops over groups).
    """
    groups = optimizer.param_groups
    if len(groups) == sum(len(group["params"]) for group in groups):
        return
    split = [
        {**{key: value for key, value in group.items() if key != "params"}, "params": [param]}
        for group in groups
        for param in group["params"]
    ]
    optimizer.param_groups = []
    for group in split:
        optimizer.add_param_group(group)


@dataclass
class TestResult:
    loss: float
    accuracy: float


class Trainee:
    """A model being trained, with everything the controller's state is measured from.

    :param dataset: splits on the training device (see :func:`lrgym.trainee.data.load_dataset`).
    :param seed: the episode seed; model weights, batch order and the validation
        subset each get their own stream derived from it.
    :param validation_percent: 0, or the share of the official training set held out for
        validation, carved from the seed (:func:`lrgym.trainee.data.carve_validation`).
    """

    def __init__(
        self,
        dataset: Dataset,
        model: str,
        optimizer: str,
        lr: float,
        batch_size: int,
        val_size: int,
        seed: int,
        optimizer_kwargs: dict | None = None,
        device: torch.device | str = "cpu",
        model_kwargs: dict | None = None,
        validation_percent: int = 0,
    ) -> None:
        self.batch_size = check_batch_size(dataset, batch_size)
        self.device = torch.device(device)
        if validation_percent:  # a validation share of the training set, carved from the seed
            dataset = carve_validation(dataset, validation_percent, torch.Generator().manual_seed(seed + 3))
        self.dataset = dataset
        with torch.random.fork_rng(devices=[]):  # weights from the seed, global RNG untouched
            torch.manual_seed(seed)
            self.model = build_model(model, dataset.input_shape, dataset.num_classes, **(model_kwargs or {}))
        self.model.to(self.device)
        self.final_layer = final_layer(self.model)
        self.optimizer = build_optimizer(optimizer, self.model, lr, **(optimizer_kwargs or {}))
        self.lr = float(lr)
        self.step = 0
        self._batch_generator = torch.Generator(device=self.device).manual_seed(seed + 1)
        self._batch_state: dict = {}
        val_generator = torch.Generator().manual_seed(seed + 2)
        size = min(int(val_size), len(dataset.validation))
        val_index = torch.randperm(len(dataset.validation), generator=val_generator)[:size]
        val_index = val_index.to(dataset.validation.x.device)
        self.val_inputs = dataset.validation.inputs(val_index)
        self.val_labels = dataset.validation.labels(val_index)
        self._meter = ModelMeter(self.model, self.final_layer)
        self.best_val_loss = float("inf")
        self.best_step = 0
        self._best_state: dict[str, torch.Tensor] | None = None
        self.model.train()

    # -------------------------------------------------------------------- learning rate
    @property
    def num_groups(self) -> int:
        return len(self.optimizer.param_groups)

    def split_param_groups(self) -> None:
        """One parameter group per parameter tensor (for per-layer learning rates)."""
        split_param_groups(self.optimizer)

    def set_lr(self, lr: float) -> None:
        """Set the nominal rate; every parameter group gets it."""
        self.lr = float(lr)
        self._apply_group_lrs(self.lr)

    def _apply_group_lrs(self, rates: float | Sequence[float]) -> None:
        groups = self.optimizer.param_groups
        if isinstance(rates, (int, float)):
            rates = [float(rates)] * len(groups)
        if len(rates) != len(groups):
            raise ValueError(f"lr sampler gave {len(rates)} rates for {len(groups)} parameter groups")
        for group, rate in zip(groups, rates, strict=False):
            group["lr"] = float(rate)

    # -------------------------------------------------------------------- training
    def sample_batch(
        self, split: Split | None = None, generator: torch.Generator | None = None, size: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A random batch of ``split`` (train by default) drawn with ``generator``.

        With no generator this is the trainee's own batch stream (the one training uses);
        with one, ``size`` examples (default: the batch size) drawn with replacement.
        """
        split = split or self.dataset.train
        if generator is None:
            index = batch_index(len(split), self.batch_size, self._batch_generator, self._batch_state)
        else:
            index = torch.randint(
                len(split), (size or self.batch_size,), generator=generator, device=generator.device
            )
        index = index.to(split.x.device)
        return split.inputs(index), split.labels(index)

    @property
    def epoch(self) -> int:
        """Completed passes over the training split (for per-epoch agents such as ASLR)."""
        return self.step * self.batch_size // len(self.dataset.train)

    def _optimizer_mode(self, mode: str) -> None:
        # Schedule-Free optimizers evaluate at averaged weights: switch them with the model.
        switch = getattr(self.optimizer, mode, None)
        if callable(switch):
            switch()

    def train(
        self, steps: int, lr_sampler: LRSampler | None = None, rates: Sequence[float] | None = None
    ) -> float:
        """Run ``steps`` optimizer steps; return the mean training loss (may be inf/nan).

        :param lr_sampler: draws every parameter group's rate before each step.
        :param rates: the nominal rate of each step (default: the current rate throughout);
            the last one stays in force afterwards.
        """
        if rates is not None and len(rates) != steps:
            raise ValueError(f"need one rate per step: {steps} steps, {len(rates)} rates")
        losses = []
        for index in range(steps):
            if rates is not None and rates[index] != self.lr:
                self.set_lr(rates[index])
            if lr_sampler is not None:
                self._apply_group_lrs(lr_sampler(self.step, self.lr, self.num_groups))
            inputs, labels = self.sample_batch()
            loss = F.cross_entropy(self.model(inputs), labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            losses.append(loss.detach())
            self.step += 1
        if lr_sampler is not None:
            self._apply_group_lrs(self.lr)
        # One device sync per interval, not per step.
        return float(torch.stack(losses).float().mean()) if losses else float("nan")

    # -------------------------------------------------------------------- measuring
    def measure(self) -> Measurement:
        """Measure on the validation subset and remember the best-validation weights."""
        self._optimizer_mode("eval")
        measurement = self._meter.measure(self.val_inputs, self.val_labels)
        if measurement.finite and measurement.val_loss < self.best_val_loss:
            self.best_val_loss = measurement.val_loss
            self.best_step = self.step
            self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self._optimizer_mode("train")
        return measurement

    @torch.no_grad()
    def evaluate(self, split: Split, weights: str = "current", chunk_size: int = 2500) -> TestResult:
        """Loss and accuracy on a whole split, at the ``current`` or the ``best`` weights."""
        if weights not in ("current", "best"):
            raise ValueError(f"weights must be 'current' or 'best', got {weights!r}")
        state = self._best_state if weights == "best" else None
        self._optimizer_mode("eval")
        self.model.eval()
        total_loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        for start in range(0, len(split), chunk_size):
            index = slice(start, start + chunk_size)
            inputs, labels = split.inputs(index), split.labels(index)
            if state is None:
                logits = self.model(inputs)
            else:
                logits = torch.func.functional_call(self.model, state, (inputs,))
            logits = logits.float()
            total_loss += F.cross_entropy(logits, labels, reduction="sum")
            correct += (logits.argmax(dim=1) == labels).sum()
        self.model.train()
        self._optimizer_mode("train")
        return TestResult(float(total_loss) / len(split), float(correct) / len(split))

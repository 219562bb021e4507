"""A population: N trainees of one task trained in lock-step by one vectorised program.

Member k is the :class:`~lrgym.trainee.single.Trainee` with seed ``seeds[k]``, batched: its
initial weights are built from its seed exactly as the trainee builds them, it draws
the same batches (``batch_index`` on a generator seeded ``seed + 1``), measures on the
same validation subset (seed ``seed + 2``) and keeps its own best-validation weights,
learning rate (one per member and step) and optimizer state. The parameters of all
members are stacked along a leading member dimension
(``torch.func.stack_module_state``); the forward and backward passes of all members
are one ``vmap`` of ``functional_call``, and one autograd pass through the sum of the
members' losses gives every member its own gradient (measured on one CPU thread at N=16,
CPU time: 680 vs 620 member steps/s for the 1-D LeNet and 1500 vs 1350 for the MLP
against ``vmap(grad_and_value(...))``); the update is a
:class:`~lrgym.trainee.stacked_optim.StackedOptimizer`.

Members are independent: every operation is per member (batched matrix products, a grouped
convolution), so a member whose weights become NaN never changes another's numbers,
and :meth:`PopulationTrainee.reset_member` restarts one member with a new seed
without touching the others. Results equal the single trainee's within float
rounding (vmapped kernels sum in another order); ``tests/test_population.py`` states
the tolerance.

Models with buffers (ResNet-18's batch-norm statistics) are refused: their running
statistics would need per-member in-place updates under ``vmap``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from lrgym.trainee.data import Dataset, Split, batch_index, check_batch_size
from lrgym.trainee.features import Measurement
from lrgym.trainee.models import MODEL_REGISTRY, build_model, final_layer
from lrgym.trainee.single import TestResult
from lrgym.trainee.stacked_optim import StackedOptimizer, check_stackable
from lrgym.trainee.vmap_modules import vmap_skeleton

# The smallest population that evaluation and tuning form: below it single envs were as
# fast or faster on one CPU core (MNIST-1D MLP at N=4: 0.94x; docs/training.md).
POPULATION_MIN = 8
# Examples x members per vmapped evaluation chunk, sized by input elements (the
# population's whole validation subsets at once would not fit a GPU for large N).
CHUNK_ELEMENTS = 2**24


def population_error(task) -> str | None:
    """Why ``task`` (a :class:`~lrgym.tasks.specs.TaskSpec`) cannot run as a population, or ``None``."""
    try:
        check_stackable(task.optimizer, task.optimizer_kwargs)
    except ValueError as error:
        return str(error)
    if not MODEL_REGISTRY.is_builtin(task.model):  # its code is the user's: stacking is not promised
        return f"model {task.model!r} is a plug-in: populations support lrgym's own models; run it on single envs"
    with torch.device("meta"):  # only the structure matters (buffers come with the model kind): no memory
        probe = build_model(task.model, (1, 28, 28), 10)
    return _buffers_error(task.model) if any(True for _ in probe.buffers()) else None


def _buffers_error(model: str) -> str:
    return (f"model {model!r} has buffers (batch-norm statistics): populations support models "
            "without buffers (mlp, lenet); run it on single envs")


def member_model(model: str, dataset: Dataset, seed: int, model_kwargs: dict | None = None) -> torch.nn.Module:
    """The model :class:`~lrgym.trainee.single.Trainee` builds from ``seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(model, dataset.input_shape, dataset.num_classes, **(model_kwargs or {}))


class PopulationTrainee:
    """N trainees of one task (dataset, model, optimizer kind), one seed and rate each.

    :param dataset: splits on the training device.
    :param seeds: the trainee seed of each member (as given to :class:`~lrgym.trainee.single.Trainee`).
    :param lrs: each member's initial nominal rate.
    :param model_kwargs: the model's size keywords (an MLP's ``hidden``), as the trainee takes them.
    :raises ValueError: for an optimizer that runs on single envs only, or a model with buffers.
    """

    def __init__(
        self,
        dataset: Dataset,
        model: str,
        optimizer: str,
        lrs: Sequence[float],
        batch_size: int,
        val_size: int,
        seeds: Sequence[int],
        optimizer_kwargs: dict | None = None,
        device: torch.device | str = "cpu",
        model_kwargs: dict | None = None,
    ) -> None:
        if len(seeds) != len(lrs) or not seeds:
            raise ValueError(f"need one rate per seed and at least one seed, got {len(seeds)} seeds, {len(lrs)} rates")
        check_stackable(optimizer, optimizer_kwargs)
        self.device = torch.device(device)
        self.dataset = dataset
        self.model_name, self.model_kwargs = model, dict(model_kwargs or {})
        self.size = len(seeds)
        self.batch_size = check_batch_size(dataset, batch_size)
        self.val_size = min(int(val_size), len(dataset.validation))
        models = [member_model(model, dataset, seed, self.model_kwargs) for seed in seeds]
        if any(True for _ in models[0].buffers()):
            raise ValueError(_buffers_error(model))
        params, _ = stack_module_state(models)
        # Leaves that autograd differentiates the summed loss by; updated in place under no_grad.
        self.params = {name: tensor.detach().to(self.device).requires_grad_() for name, tensor in params.items()}
        # A weightless copy that functional_call runs with each member's parameters.
        self._skeleton = vmap_skeleton(models[0])
        final = final_layer(models[0])
        self.final_weight = next(
            f"{name}.weight" for name, module in models[0].named_modules() if module is final
        )
        self.optimizer = StackedOptimizer(optimizer, self.params, **(optimizer_kwargs or {}))
        self.best_params = {name: tensor.detach().clone() for name, tensor in self.params.items()}
        self.lrs = np.asarray(lrs, dtype=np.float64).copy()
        self.steps = np.zeros(self.size, dtype=np.int64)
        self.best_val_loss = np.full(self.size, np.inf)
        self.best_step = np.zeros(self.size, dtype=np.int64)
        self._generators = [torch.Generator(device=self.device) for _ in seeds]
        self._batch_states: list[dict] = [{} for _ in seeds]
        self.val_index = torch.zeros(self.size, self.val_size, dtype=torch.long, device=dataset.validation.x.device)
        # What each member's next measurement compares with (lrgym.trainee.features.ModelMeter's
        # state, stacked): stage 0 = nothing yet, 1 = previous measurement, 2 = also a previous update.
        self._previous_probabilities = torch.zeros(
            self.size, self.val_size, dataset.num_classes, device=self.device
        )
        parameter_count = sum(tensor[0].numel() for tensor in self.params.values())
        self._previous_parameters = torch.zeros(self.size, parameter_count, device=self.device)
        self._previous_update = torch.zeros(self.size, parameter_count, device=self.device)
        self._meter_stage = torch.zeros(self.size, dtype=torch.long, device=self.device)

        def loss(params, inputs, labels):
            return F.cross_entropy(functional_call(self._skeleton, params, (inputs,)), labels)

        def logits(params, inputs):
            return functional_call(self._skeleton, params, (inputs,))

        self._member_losses = vmap(loss)
        self._vmapped_logits = vmap(logits)  # each member its own inputs
        self._vmapped_shared_logits = vmap(logits, in_dims=(0, None))  # every member the same inputs
        # The unchanged architecture, for the member-by-member forward passes of measuring on the CPU.
        self._plain_skeleton = copy.deepcopy(models[0]).to("meta")
        for member, seed in enumerate(seeds):
            self._start_streams(member, int(seed))

    def _logits(self, params: dict[str, torch.Tensor], inputs: torch.Tensor, shared: bool) -> torch.Tensor:
        """``(members, examples, classes)`` logits without gradients, ``inputs`` per member or shared.

        On the CPU member by member: a large batch keeps one CPU core busy in any case, and
        vmap's batched forms of the convolutions and poolings measured 2.5x (validation) to
        5x (test split) slower there than one member at a time on the 1-D LeNet at N=16.
        On a GPU vmap: one launch for all members is the point.
        """
        if self.device.type != "cpu":
            return self._vmapped_shared_logits(params, inputs) if shared else self._vmapped_logits(params, inputs)
        members = next(iter(params.values())).shape[0]
        return torch.stack([
            functional_call(
                self._plain_skeleton, {name: tensor[k] for name, tensor in params.items()},
                (inputs if shared else inputs[k],),
            )
            for k in range(members)
        ])

    # -------------------------------------------------------------------- members
    def _start_streams(self, member: int, seed: int) -> None:
        self._generators[member].manual_seed(seed + 1)
        self._batch_states[member] = {}
        val_generator = torch.Generator().manual_seed(seed + 2)
        order = torch.randperm(len(self.dataset.validation), generator=val_generator)[: self.val_size]
        self.val_index[member] = order.to(self.val_index.device)

    @torch.no_grad()
    def reset_member(self, member: int, seed: int, lr: float) -> None:
        """Restart ``member`` as a fresh trainee with ``seed`` and rate ``lr``; the others are untouched."""
        model = member_model(self.model_name, self.dataset, seed, self.model_kwargs)
        for name, tensor in model.named_parameters():
            self.params[name][member] = tensor.detach().to(self.device)
            self.best_params[name][member] = self.params[name][member]
        self.optimizer.reset([member])
        self.lrs[member] = float(lr)
        self.steps[member] = 0
        self.best_val_loss[member] = np.inf
        self.best_step[member] = 0
        self._meter_stage[member] = 0
        self._start_streams(member, int(seed))

    # -------------------------------------------------------------------- training
    def sample_batches(self, active: Sequence[bool]) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch per member from its own stream, ``(N, batch, ...)``; inactive members draw
        nothing (their rows repeat an active member's batch and are discarded)."""
        train = self.dataset.train
        indices: list[torch.Tensor | None] = [
            batch_index(len(train), self.batch_size, self._generators[k], self._batch_states[k]) if on else None
            for k, on in enumerate(active)
        ]
        filler = next(index for index in indices if index is not None)
        index = torch.stack([filler if index is None else index for index in indices]).to(train.x.device)
        return train.inputs(index), train.labels(index)

    def train(self, steps: int | Sequence[int], rates: np.ndarray | None = None) -> np.ndarray:
        """Run each member's next ``steps`` optimizer steps; return each member's mean training loss.

        :param steps: one count for all members, or one per member (a member with fewer
            steps than others sits the remaining steps out).
        :param rates: ``(max(steps), N)`` rate of every member at every step; default:
            each member's nominal rate (:attr:`lrs`) at every step.
        :return: ``(N,)`` float64 mean losses (NaN for a member that ran no step; may be inf/nan).
        """
        counts = np.broadcast_to(np.asarray(steps, dtype=np.int64), (self.size,))
        total = int(counts.max(initial=0))
        if rates is None:
            rates = np.broadcast_to(self.lrs, (total, self.size))
        rates_t = torch.tensor(np.asarray(rates, dtype=np.float64), device=self.device)
        losses = []
        for step in range(total):
            active = counts > step
            inputs, labels = self.sample_batches(active)
            loss = self._member_losses(self.params, inputs, labels)
            # d(sum)/d(loss_k) = 1 whatever the values: member k's gradient is its own, and a
            # NaN loss in one member never reaches another's.
            grads = dict(zip(self.params, torch.autograd.grad(loss.sum(), list(self.params.values())), strict=True))
            mask = None if active.all() else torch.as_tensor(active, device=self.device)
            self.optimizer.step(grads, rates_t[step], active=mask)
            losses.append(loss.detach())
        self.steps += counts
        if total == 0:
            return np.full(self.size, np.nan)
        # One device sync per interval, not per step.
        stacked = torch.stack(losses).float()
        ran = torch.as_tensor(np.arange(total)[:, None] < counts[None, :], device=self.device)
        sums = torch.where(ran, stacked, torch.zeros((), device=self.device)).sum(0)
        means = (sums / ran.sum(0).clamp(min=1)).double().cpu().numpy()
        means[counts == 0] = np.nan
        return means

    # -------------------------------------------------------------------- measuring
    def _chunk(self, members: int, input_shape: tuple[int, ...]) -> int:
        per_example = members * int(np.prod(input_shape))
        return max(1, CHUNK_ELEMENTS // max(1, per_example))

    def _flat_parameters(self, index: torch.Tensor | None) -> torch.Tensor:
        """``(members, P)``: each member's parameters as one vector (the trainee's order)."""
        tensors = self.params.values() if index is None else (tensor[index] for tensor in self.params.values())
        return torch.cat([tensor.flatten(1) for tensor in tensors], dim=1).float()

    @torch.no_grad()
    def measure(
        self, members: Sequence[int] | None = None, keep_best: Sequence[bool] | None = None
    ) -> list[Measurement]:
        """Measure ``members`` (default: all) on their validation subsets and remember their
        best-validation weights.

        The quantities of :class:`lrgym.trainee.features.ModelMeter` (prediction statistics,
        final-layer statistics, parameter and update norms, update cosine), per member,
        each compared with that member's previous measurement.

        :param keep_best: per measured member, whether this measurement may become its best
            (a member the env has already found diverged must not); default all.
        :return: one measurement per member of ``members``, in that order.
        """
        members = list(range(self.size)) if members is None else [int(k) for k in members]
        everyone = members == list(range(self.size))
        index = None if everyone else torch.as_tensor(members, device=self.device)
        params = self.params if index is None else {name: tensor[index] for name, tensor in self.params.items()}
        validation = self.dataset.validation
        val_index = self.val_index if index is None else self.val_index[index.to(self.val_index.device)]
        chunk = self._chunk(len(members), self.dataset.input_shape)
        parts = []
        for start in range(0, self.val_size, chunk):
            parts.append(self._logits(params, validation.inputs(val_index[:, start : start + chunk]), shared=False))
        logits = torch.cat(parts, dim=1).float()  # (members, V, C)
        labels = validation.labels(val_index)
        probabilities = logits.softmax(dim=2)
        loss = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(1)
        accuracy = (logits.argmax(dim=2) == labels).float().mean(1)
        prediction_variance = probabilities.var(dim=1).mean(1)
        pick = (lambda tensor: tensor) if index is None else (lambda tensor: tensor[index])
        stage = pick(self._meter_stage)
        change = (probabilities - pick(self._previous_probabilities)).var(dim=1).mean(1)
        zero = torch.zeros((), device=self.device)
        change_variance = torch.where(stage > 0, change, zero)
        weight = params[self.final_weight].float().flatten(1)
        # Parameter and update norms as lrgym.trainee.features.parameter_change computes them.
        flat = self._flat_parameters(index)
        update = torch.where((stage > 0)[:, None], flat - pick(self._previous_parameters), zero)
        cosine = F.cosine_similarity(update, pick(self._previous_update), dim=1, eps=1e-12)
        cosine = torch.where(stage > 1, cosine, zero)
        # One transfer from the device for all members' numbers.
        values = torch.stack(
            [loss, accuracy, prediction_variance, change_variance, weight.mean(1), weight.var(1),
             flat.norm(dim=1), update.norm(dim=1), cosine], dim=1,
        ).double().cpu().numpy()
        if index is None:
            self._previous_probabilities.copy_(probabilities)
            self._previous_parameters.copy_(flat)
            self._previous_update.copy_(update)
            self._meter_stage.clamp_(max=1).add_(1)
        else:
            self._previous_probabilities[index] = probabilities
            self._previous_parameters[index] = flat
            self._previous_update[index] = update
            self._meter_stage[index] = stage.clamp(max=1) + 1
        measurements = [
            Measurement(*map(float, row[:6]), probabilities=probabilities[position],
                        parameter_norm=float(row[6]), update_norm=float(row[7]), update_cosine=float(row[8]))
            for position, row in enumerate(values)
        ]
        keep_best = [True] * len(members) if keep_best is None else list(keep_best)
        improved = [
            member for member, measurement, keep in zip(members, measurements, keep_best, strict=True)
            if keep and measurement.finite and measurement.val_loss < self.best_val_loss[member]
        ]
        if improved:
            best_index = torch.as_tensor(improved, device=self.device)
            for name, tensor in self.params.items():
                self.best_params[name][best_index] = tensor[best_index]
        for member, measurement in zip(members, measurements, strict=True):
            if member in improved:
                self.best_val_loss[member] = measurement.val_loss
                self.best_step[member] = self.steps[member]
        return measurements

    @torch.no_grad()
    def evaluate(
        self, split: Split, weights: str = "current", members: Sequence[int] | None = None
    ) -> list[TestResult]:
        """Loss and accuracy of ``members`` (default: all) on a whole split, at their
        ``current`` or ``best`` weights."""
        if weights not in ("current", "best"):
            raise ValueError(f"weights must be 'current' or 'best', got {weights!r}")
        source = self.best_params if weights == "best" else self.params
        members = list(range(self.size)) if members is None else list(members)
        if not members:
            return []
        if members == list(range(self.size)):
            params = source
        else:
            index = torch.as_tensor(members, device=self.device)
            params = {name: tensor[index] for name, tensor in source.items()}
        chunk = self._chunk(len(members), self.dataset.input_shape)
        total_loss = torch.zeros(len(members), device=self.device)
        correct = torch.zeros(len(members), device=self.device)
        for start in range(0, len(split), chunk):
            part = slice(start, start + chunk)
            labels = split.labels(part)
            logits = self._logits(params, split.inputs(part), shared=True).float()
            targets = labels.expand(len(members), -1)
            total_loss += F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").sum(1)
            correct += (logits.argmax(dim=2) == targets).sum(1)
        losses = (total_loss / len(split)).double().cpu().tolist()
        accuracies = (correct / len(split)).double().cpu().tolist()
        return [TestResult(loss, accuracy) for loss, accuracy in zip(losses, accuracies, strict=True)]

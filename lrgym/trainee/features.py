"""The controller's state: one function measures a model, others turn that into features.

Three feature sets (the task field ``features``):

- ``xu``: the eight features of Xu et al. (2019), :data:`FEATURE_NAMES` /
  :func:`observation`: raw losses, prediction variances, final-layer weight statistics,
  log10 of the rate, budget fraction. Their scale depends on the dataset and model.
- ``scale-free``: :data:`SCALE_FREE_FEATURE_NAMES` / :class:`ScaleFreeFeatures`: log
  ratios of losses, log update/parameter norm ratio, update cosine, the rate relative
  to what "do nothing" would run, progress and the previous action, designed to mean
  the same on every task of a family (LHOPT, Almeida et al. 2021; Daniel et al. 2016).
- ``scale-free-optimizer``: the scale-free state followed by the trainee optimizer's
  identity as a one-hot (:data:`OPTIMIZER_FEATURE_NAMES`, :func:`optimizer_features`):
  Adam and SGD want rates about two decades apart, and the scale-free state alone does not
  say which one the controller drives.

Used by the environment (through :class:`lrgym.environment.episode.EpisodeTracker`), by the
out-of-env scheduler (a controller driving an ordinary training loop) and by the
benchmarks, so they always agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lrgym.tasks.optimizers import optimizer_kind

FEATURE_NAMES = (
    "train_loss",  # mean training loss over the last interval
    "val_loss",  # loss on the episode's fixed validation subset
    "prediction_variance",  # variance of softmax predictions over the subset (mean over classes)
    "prediction_change_variance",  # the same for their change since the previous decision
    "final_weight_mean",  # mean of the final layer's weights
    "final_weight_variance",  # variance of the final layer's weights
    "log10_lr",  # the learning rate in force during the last interval
    "budget_fraction",  # trainee steps done / steps in the episode
)
FEATURE_LIMIT = 1e6  # features are clipped to +-this, so the observation is always finite

SCALE_FREE_FEATURE_NAMES = (
    "log_train_loss_ratio",  # log(train loss / validation loss at reset)
    "log_val_loss_ratio",  # log(validation loss / validation loss at reset)
    "log_val_loss_change",  # log(validation loss / the previous decision's)
    "log_val_loss_change_ema",  # EMA of the above (decay 0.7): the recent trend
    "log_val_to_best",  # log(validation loss / the best so far): > 0 when it rises
    "log_generalisation_gap",  # log(validation loss / train loss)
    "log10_update_ratio",  # log10(|parameter change over the interval| / |parameters|)
    "update_cosine",  # cosine between the last two interval updates (0 at the first)
    "log_lr_multiplier",  # log(rate / the rate "do nothing" would run)
    "log10_lr",  # log10 of the rate in force during the last interval
    "budget_fraction",  # trainee steps done / steps in the episode
    "previous_action",  # the last action in [-1, 1] (0 at reset)
)
SCALE_FREE_LIMIT = 10.0  # scale-free features are clipped to +-this (they are O(1) normally)
OPTIMIZER_FEATURE_NAMES = (
    "optimizer_adam",  # 1 for an Adam-like step (adam, adamw; prodigy and schedule-free: 0 for all three)
    "optimizer_momentum",  # 1 for SGD with momentum (momentum, or sgd with a momentum keyword > 0)
    "optimizer_sgd",  # 1 for plain SGD
)
FEATURE_SETS = {
    "xu": FEATURE_NAMES,
    "scale-free": SCALE_FREE_FEATURE_NAMES,
    "scale-free-optimizer": SCALE_FREE_FEATURE_NAMES + OPTIMIZER_FEATURE_NAMES,
}


@dataclass
class Measurement:
    """What the state needs from one look at the model on the validation subset."""

    val_loss: float
    val_accuracy: float
    prediction_variance: float
    prediction_change_variance: float
    final_weight_mean: float
    final_weight_variance: float
    probabilities: torch.Tensor  # kept to compute the next prediction change
    # Filled by the trainee (see :func:`parameter_change`); 0 where nothing was trained yet.
    parameter_norm: float = 0.0  # L2 norm of all trained parameters
    update_norm: float = 0.0  # L2 norm of their change since the previous measurement
    update_cosine: float = 0.0  # cosine between that change and the one before it

    @property
    def finite(self) -> bool:
        return all(
            math.isfinite(value)
            for value in (self.val_loss, self.final_weight_mean, self.final_weight_variance)
        )


@torch.no_grad()
def measure_model(
    model: nn.Module,
    final_layer: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    previous_probabilities: torch.Tensor | None,
    chunk_size: int = 2500,
) -> Measurement:
    """Validation loss/accuracy, prediction statistics and final-layer statistics.

    :param inputs: normalised validation inputs (the episode's fixed subset).
    :param previous_probabilities: the probabilities of the previous decision, or
        ``None`` at the first one (the change variance is then 0).
    """
    was_training = model.training
    model.eval()
    logits = torch.cat([model(part) for part in inputs.split(chunk_size)])
    model.train(was_training)
    logits = logits.float()
    probabilities = logits.softmax(dim=1)
    loss = F.cross_entropy(logits, labels)
    accuracy = (logits.argmax(dim=1) == labels).float().mean()
    prediction_variance = probabilities.var(dim=0).mean()
    if previous_probabilities is None:
        change_variance = torch.zeros((), device=logits.device)
    else:
        change_variance = (probabilities - previous_probabilities).var(dim=0).mean()
    weight = final_layer.weight.detach().float()
    # One transfer from the device for all six numbers.
    values = torch.stack(
        [loss, accuracy, prediction_variance, change_variance, weight.mean(), weight.var()]
    ).tolist()
    return Measurement(*values, probabilities=probabilities)


def observation(
    train_loss: float, measurement: Measurement, lr: float, budget_fraction: float
) -> np.ndarray:
    """The feature vector in :data:`FEATURE_NAMES` order, float32, always finite."""
    values = np.array(
        [
            train_loss,
            measurement.val_loss,
            measurement.prediction_variance,
            measurement.prediction_change_variance,
            measurement.final_weight_mean,
            measurement.final_weight_variance,
            math.log10(lr),
            budget_fraction,
        ],
        dtype=np.float64,
    )
    values = np.nan_to_num(values, nan=FEATURE_LIMIT, posinf=FEATURE_LIMIT, neginf=-FEATURE_LIMIT)
    return np.clip(values, -FEATURE_LIMIT, FEATURE_LIMIT).astype(np.float32)


@torch.no_grad()
def parameter_change(
    parameters: torch.Tensor, previous: torch.Tensor | None, previous_change: torch.Tensor | None
) -> tuple[float, float, float, torch.Tensor]:
    """Norms of the flat parameter vector and of its change since the previous measurement.

    :param parameters: all trained parameters, flattened into one vector.
    :param previous: that vector at the previous measurement (``None`` at reset).
    :param previous_change: the change measured then (``None`` before the second).
    :return: parameter norm, update norm, cosine between this change and the previous one
        (0 when either is missing or zero), and this change (to pass back next time).
    """
    parameters = parameters.float()
    if previous is None:
        change = torch.zeros_like(parameters)
    else:
        change = parameters - previous
    values = [parameters.norm(), change.norm()]
    if previous_change is not None:
        values.append(F.cosine_similarity(change, previous_change, dim=0, eps=1e-12))
    else:
        values.append(torch.zeros((), device=parameters.device))
    parameter_norm, update_norm, cosine = torch.stack(values).tolist()
    return parameter_norm, update_norm, cosine, change


class ModelMeter:
    """Measures one model at successive decisions, remembering what the next one compares with.

    :func:`measure_model` plus :func:`parameter_change`, with the previous predictions,
    parameters and change kept between calls. The trainee and the out-of-env
    controller both measure through one of these.
    """

    def __init__(self, model: nn.Module, final_layer: nn.Module) -> None:
        self.model, self.final_layer = model, final_layer
        self._probabilities: torch.Tensor | None = None
        self._parameters: torch.Tensor | None = None
        self._change: torch.Tensor | None = None

    def measure(self, inputs: torch.Tensor, labels: torch.Tensor) -> Measurement:
        measurement = measure_model(self.model, self.final_layer, inputs, labels, self._probabilities)
        self._probabilities = measurement.probabilities
        flat = torch.cat([parameter.detach().reshape(-1) for parameter in self.model.parameters()])
        had_previous = self._parameters is not None
        (measurement.parameter_norm, measurement.update_norm, measurement.update_cosine,
         change) = parameter_change(flat, self._parameters, self._change)
        self._parameters = flat.clone()
        self._change = change if had_previous else None
        return measurement


def optimizer_features(optimizer: str, optimizer_kwargs: dict | None = None) -> tuple[float, ...]:
    """The one-hot of :data:`OPTIMIZER_FEATURE_NAMES` for a trainee optimizer and its keywords.

    Three kinds, because their good rates differ by decades: Adam-like (``adam``, ``adamw``),
    SGD with momentum (``momentum``, or ``sgd`` with ``momentum > 0``) and plain SGD.
    Optimizers that set their own step size (``prodigy``, ``schedulefree-*``) are none of
    them: all three 0.
    """
    kind = optimizer_kind(optimizer, optimizer_kwargs)
    return tuple(float(name == f"optimizer_{kind}") for name in OPTIMIZER_FEATURE_NAMES)


def _log_ratio(numerator: float, denominator: float) -> float:
    """log(numerator / denominator) for positive losses, guarded against 0."""
    return math.log(max(numerator, 1e-12)) - math.log(max(denominator, 1e-12))


class ScaleFreeFeatures:
    """The ``scale-free`` state of one episode (:data:`SCALE_FREE_FEATURE_NAMES`).

    Losses enter only as log ratios to the loss at reset, to the previous decision, to
    the best so far and to each other, so multiplying every loss by a constant changes
    nothing; parameters only as the ratio of the update norm to the parameter norm and
    the cosine of successive updates, so rescaling a network changes nothing either.
    The rate enters twice: relative to the do-nothing rate (what the controller has
    done) and as log10 (where the trainee is; Adam and SGD want different decades).

    :param initial_val_loss: the validation loss at reset.
    :param ema_decay: decay of the trend EMA (0.7: about three decisions).
    :param constant: features that hold for the whole episode, appended after the twelve
        (``scale-free-optimizer``: :func:`optimizer_features`).
    """

    def __init__(self, initial_val_loss: float, ema_decay: float = 0.7, constant: tuple[float, ...] = ()) -> None:
        self.constant = tuple(float(value) for value in constant)
        self.initial_val_loss = float(initial_val_loss)
        self.previous_val_loss = float(initial_val_loss)
        self.best_val_loss = float(initial_val_loss)
        self.ema_decay = float(ema_decay)
        self.change_ema = 0.0

    def observe(
        self,
        train_loss: float,
        measurement: Measurement,
        lr: float,
        lr_multiplier: float,
        budget_fraction: float,
        previous_action: float,
    ) -> np.ndarray:
        """The feature vector after one interval (or at reset), float32, always finite."""
        val_loss = measurement.val_loss
        change = _log_ratio(val_loss, self.previous_val_loss)
        self.change_ema = self.ema_decay * self.change_ema + (1.0 - self.ema_decay) * change
        self.previous_val_loss = val_loss
        self.best_val_loss = min(self.best_val_loss, val_loss)
        if measurement.update_norm > 0 and measurement.parameter_norm > 0:
            update_ratio = math.log10(measurement.update_norm / measurement.parameter_norm)
        else:
            update_ratio = -SCALE_FREE_LIMIT  # nothing has moved yet
        values = np.array(
            [
                _log_ratio(train_loss, self.initial_val_loss),
                _log_ratio(val_loss, self.initial_val_loss),
                change,
                self.change_ema,
                _log_ratio(val_loss, self.best_val_loss),
                _log_ratio(val_loss, train_loss),
                update_ratio,
                measurement.update_cosine,
                math.log(lr_multiplier),
                math.log10(lr),
                budget_fraction,
                previous_action,
                *self.constant,
            ],
            dtype=np.float64,
        )
        values = np.nan_to_num(values, nan=0.0, posinf=SCALE_FREE_LIMIT, neginf=-SCALE_FREE_LIMIT)
        return np.clip(values, -SCALE_FREE_LIMIT, SCALE_FREE_LIMIT).astype(np.float32)

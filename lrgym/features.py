"""The controller's state: one function measures a model, one turns that into features.

Used by the environment, by the out-of-env scheduler (a controller driving an
ordinary training loop) and by the benchmarks, so the three always agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

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

"""A user's own model for lrgym: torchvision's MLP block on the flattened image."""

from __future__ import annotations

import math

from torch import nn
from torchvision.ops import MLP


def build(input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...] = (128, 64)) -> nn.Module:
    """``lrgym`` calls this with the dataset's input shape, its class count and the task's ``model_kwargs``."""
    return nn.Sequential(nn.Flatten(), MLP(math.prod(input_shape), [*hidden, num_classes]))

"""Trainee architectures: an MLP, LeNet-5 (the source paper's CNN), ResNet-18 and the DAC4SGD CNN.

Every builder takes the dataset's input shape ``(channels, *spatial)`` and number of
classes, then its own size keywords (a task's ``model_kwargs``, e.g. ``hidden=[64, 64]``
for the MLP; task families draw them). One-dimensional inputs (MNIST-1D, shape
``(1, 40)``) get the 1-D version of LeNet; ResNet-18 needs images.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torchvision
from torch import nn

from lrgym.tasks.names import unknown_name_error


def mlp(input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...] = (256, 256)) -> nn.Module:
    """Fully connected ReLU network on the flattened input.

    :param hidden: the width of each hidden layer (its length is the depth; empty: linear).
    """
    features = 1
    for size in input_shape:
        features *= size
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(features, width), nn.ReLU()]
        features = width
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


def lenet(
    input_shape: tuple[int, ...],
    num_classes: int,
    channels: tuple[int, int] = (6, 16),
    hidden: tuple[int, int] = (120, 84),
) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling, as commonly used on (Fashion-)MNIST.

    conv(6, 5x5) -> pool -> conv(16, 5x5) -> pool -> fc 120 -> fc 84 -> fc classes.
    28x28 inputs are padded by 2 so the feature map sizes match the 32x32 original.

    :param channels: the two convolutions' output channels (default: the original 6, 16).
    :param hidden: the two hidden fully connected widths (default: the original 120, 84).
    """
    if len(channels) != 2 or len(hidden) != 2:
        raise ValueError(f"lenet needs two channels and two hidden widths, got {channels} and {hidden}")
    in_channels, *spatial = input_shape
    if len(spatial) == 1:
        conv, pool, padding = nn.Conv1d, nn.MaxPool1d, 2
    elif len(spatial) == 2:
        conv, pool, padding = nn.Conv2d, nn.MaxPool2d, 2 if spatial[0] < 32 else 0
    else:
        raise ValueError(f"lenet needs 1-D or 2-D inputs, got input shape {input_shape}")
    features = nn.Sequential(
        conv(in_channels, channels[0], 5, padding=padding), nn.ReLU(), pool(2),
        conv(channels[0], channels[1], 5), nn.ReLU(), pool(2),
        nn.Flatten(),
    )
    with torch.no_grad():
        flat = features(torch.zeros(1, *input_shape)).shape[1]
    return nn.Sequential(
        features,
        nn.Linear(flat, hidden[0]), nn.ReLU(),
        nn.Linear(hidden[0], hidden[1]), nn.ReLU(),
        nn.Linear(hidden[1], num_classes),
    )


def dac_cnn(
    input_shape: tuple[int, ...], num_classes: int, channels: tuple[int, int, int] = (8, 23, 255)
) -> nn.Module:
    """The DAC4SGD competition generator's CNN (automl/DAC4SGD ``generators.py`` at 5c13047,
    ``_random_feature_extractor`` and ``_random_mnist_model``).

    conv(c1, 3x3) -> pool -> conv(c2, 3x3) -> pool -> conv(c3, 3x3) -> ReLU -> fc classes: no
    padding, no activation after the first two convolutions (as in the generator). The
    generator's final ``LogSoftmax`` is left out: lrgym's cross-entropy on the logits is its
    negative log-likelihood loss on log-probabilities (``log_softmax`` of log-probabilities
    changes nothing). Its MLP is :func:`mlp` with two hidden layers.

    :param channels: the three convolutions' output channels (the generator draws 2..8, 6..23, 32..255).
    """
    if len(channels) != 3:
        raise ValueError(f"dac-cnn needs three channel counts, got {channels}")
    if len(input_shape) != 3:
        raise ValueError(f"dac-cnn needs image inputs (C, H, W), got input shape {input_shape}")
    features = nn.Sequential(
        nn.Conv2d(input_shape[0], channels[0], 3), nn.MaxPool2d(2),
        nn.Conv2d(channels[0], channels[1], 3), nn.MaxPool2d(2),
        nn.Conv2d(channels[1], channels[2], 3), nn.ReLU(),
        nn.Flatten(),
    )
    with torch.no_grad():
        flat = features(torch.zeros(1, *input_shape)).shape[1]
    return nn.Sequential(features, nn.Linear(flat, num_classes))


def resnet18(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 adapted to small images: 3x3 stride-1 stem, no max-pool."""
    channels, *spatial = input_shape
    if len(spatial) != 2:
        raise ValueError(f"resnet18 needs image inputs (C, H, W), got input shape {input_shape}")
    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": mlp,
    "lenet": lenet,
    "resnet18": resnet18,
    "dac-cnn": dac_cnn,
}


def model_keywords(name: str) -> list[str]:
    """The size keywords model ``name`` takes (its ``model_kwargs``)."""
    if name not in MODELS:
        raise unknown_name_error("model", name, list(MODELS))
    return list(inspect.signature(MODELS[name]).parameters)[2:]


def build_model(
    name: str, input_shape: tuple[int, ...], num_classes: int, **model_kwargs: Any
) -> nn.Module:
    """Build trainee ``name`` with its size keywords; unknown names or keywords raise an
    error listing the valid ones."""
    unknown = sorted(set(model_kwargs) - set(model_keywords(name)))
    if unknown:
        raise ValueError(
            f"model {name!r} takes no keyword(s) {unknown}; valid: {', '.join(model_keywords(name)) or 'none'}"
        )
    sizes = {key: tuple(value) if isinstance(value, list) else value for key, value in model_kwargs.items()}
    return MODELS[name](tuple(input_shape), num_classes, **sizes)


def final_layer(model: nn.Module) -> nn.Module:
    """The last layer with a weight (the classifier), whose statistics enter the state."""
    last = None
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            last = module
    if last is None:
        raise ValueError("model has no linear or convolutional layer")
    return last

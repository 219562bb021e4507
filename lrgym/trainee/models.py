"""Trainee architectures: an MLP, LeNet-5 (the source paper's CNN), ResNet-18 and the DAC4SGD CNN.

Every builder takes the dataset's input shape ``(channels, *spatial)`` and number of
classes, then its own size keywords (a task's ``model_kwargs``, e.g. ``hidden=[64, 64]``
for the MLP; task families draw them). One-dimensional inputs (MNIST-1D, shape
``(1, 40)``) get the 1-D version of LeNet; ResNet-18 needs images.

The builders are the built-in entries of one registry (:data:`MODEL_REGISTRY`,
:mod:`lrgym.trainee.registry`) that ``register_model``, entry points in the
``lrgym.models`` group and plug-in references ``module:function`` join. A plug-in builder
is called the same way, ``build(input_shape, num_classes, **model_kwargs)`` (lists in
``model_kwargs`` arrive as tuples), and must return an ``nn.Module`` whose output on a
batch of inputs is ``(batch, num_classes)`` logits: checked on a probe batch of two
zero inputs in eval mode when it is built, so that a mistake is one line naming the
plug-in rather than a shape error deep in training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torchvision
from torch import nn

from lrgym.trainee.registry import REGISTRIES, Registry, keyword_names, unknown_keywords_error


def mlp(input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...] = (256, 256)) -> nn.Module:
    """Fully connected ReLU network on the flattened input.

    :param hidden: the width of each hidden layer (its length is the depth; empty: linear).
    """
    _check_widths("mlp", "hidden", hidden)
    features = 1
    for size in input_shape:
        features *= size
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(features, width), nn.ReLU()]
        features = width
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


def _check_widths(model: str, name: str, widths: tuple[int, ...]) -> None:
    """A layer of width 0 trains nothing and measures NaN: refuse it where the spec says so."""
    if any(isinstance(width, bool) or not isinstance(width, int) or width < 1 for width in widths):
        raise ValueError(f"{model}: model_kwargs.{name} must be integers >= 1, got {list(widths)}")


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
    _check_widths("lenet", "channels", channels)
    _check_widths("lenet", "hidden", hidden)
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


MODEL_REGISTRY = REGISTRIES["model"] = Registry("model", "lrgym.models", MODELS)


def register_model(name: str, builder: Callable[..., nn.Module], replace: bool = False) -> None:
    """Make ``builder`` the model ``name`` (in this process and lrgym's local workers).

    :param builder: ``builder(input_shape, num_classes, **model_kwargs) -> nn.Module``
        returning ``(batch, num_classes)`` logits; a module-level function, so that workers receive it.
    :param replace: allow replacing an existing name (lrgym's own included).
    """
    MODEL_REGISTRY.register(name, builder, replace=replace)


def model_keywords(name: str) -> list[str] | None:
    """The size keywords model ``name`` takes (its ``model_kwargs``); ``None``: any (``**kwargs``)."""
    return keyword_names(MODEL_REGISTRY.resolve(name), skip=2)


def build_model(
    name: str, input_shape: tuple[int, ...], num_classes: int, **model_kwargs: Any
) -> nn.Module:
    """Build trainee ``name`` (a registered name or a plug-in reference) with its size keywords;
    unknown names or keywords raise an error listing the valid ones, a plug-in that fails or
    returns something else than ``(batch, num_classes)`` logits one naming it."""
    error = unknown_keywords_error("model", name, MODEL_REGISTRY.resolve(name), model_kwargs, skip=2)
    if error is not None:
        raise error
    sizes = {key: tuple(value) if isinstance(value, list) else value for key, value in model_kwargs.items()}
    model = MODEL_REGISTRY.call(name, tuple(input_shape), num_classes, **sizes)
    if not MODEL_REGISTRY.is_builtin(name):
        _check_plugin_model(name, model, tuple(input_shape), num_classes)
    return model


def _check_plugin_model(name: str, model: Any, input_shape: tuple[int, ...], num_classes: int) -> None:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model {name!r} returned a {type(model).__name__}; expected a torch.nn.Module")
    parameter = next(model.parameters(), None)
    if parameter is None:
        raise ValueError(f"model {name!r} has no parameters to train")
    if not any(isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)) for module in model.modules()):
        raise ValueError(f"model {name!r} has no nn.Linear or convolution: the state reads the last one's weights")
    probe = torch.zeros(2, *input_shape, device=parameter.device)
    training = model.training
    model.eval()  # no batch-norm statistics change, no dropout draw
    try:
        with torch.no_grad():
            output = model(probe)
    except Exception as error:
        raise ValueError(f"model {name!r} fails on inputs of shape {tuple(probe.shape)} (batch, *input_shape): "
                         f"{type(error).__name__}: {error}") from error
    finally:
        model.train(training)
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != (2, num_classes):
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(f"model {name!r} maps inputs of shape {tuple(probe.shape)} to {shape}; "
                         f"expected logits of shape (2, {num_classes}) (batch, num_classes)")


def final_layer(model: nn.Module) -> nn.Module:
    """The last layer with a weight (the classifier), whose statistics enter the state."""
    last = None
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            last = module
    if last is None:
        raise ValueError("model has no linear or convolutional layer")
    return last

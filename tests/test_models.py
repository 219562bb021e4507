"""Trainee architectures."""

from __future__ import annotations

import pytest
import torch

from lrgym.models import build_model, final_layer


@pytest.mark.parametrize(
    "name,shape",
    [("mlp", (1, 40)), ("mlp", (1, 28, 28)), ("lenet", (1, 40)), ("lenet", (1, 28, 28)),
     ("lenet", (3, 32, 32)), ("resnet18", (1, 28, 28)), ("resnet18", (3, 32, 32))],
)
def test_models_map_inputs_to_class_logits(name, shape):
    model = build_model(name, shape, 7)
    assert model(torch.zeros(2, *shape)).shape == (2, 7)
    assert final_layer(model).weight.shape[0] == 7


def test_resnet18_is_adapted_to_small_images():
    model = build_model("resnet18", (1, 28, 28), 10)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert model.conv1.in_channels == 1
    assert isinstance(model.maxpool, torch.nn.Identity)


def test_resnet18_refuses_one_dimensional_inputs():
    with pytest.raises(ValueError, match="image inputs"):
        build_model("resnet18", (1, 40), 10)


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="valid models: lenet, mlp, resnet18"):
        build_model("vgg", (1, 28, 28), 10)

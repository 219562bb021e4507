"""Trainee architectures."""

from __future__ import annotations

import pytest
import torch

from lrgym.trainee.models import build_model, final_layer


@pytest.mark.parametrize(
    "name,shape",
    [("mlp", (1, 40)), ("mlp", (1, 28, 28)), ("lenet", (1, 40)), ("lenet", (1, 28, 28)),
     ("lenet", (3, 32, 32)), ("resnet18", (1, 28, 28)), ("resnet18", (3, 32, 32)), ("dac-cnn", (1, 28, 28)),
     ("dac-cnn", (3, 32, 32))],
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
    with pytest.raises(ValueError, match="valid models: dac-cnn, lenet, mlp, resnet18"):
        build_model("vgg", (1, 28, 28), 10)


def test_model_kwargs_set_the_size():
    from torch import nn

    model = build_model("mlp", (1, 40), 10, hidden=[64, 32, 16])
    widths = [layer.out_features for layer in model if isinstance(layer, nn.Linear)]
    assert widths == [64, 32, 16, 10]
    lenet = build_model("lenet", (1, 40), 10, channels=(4, 8), hidden=(30, 20))
    convs = [m.out_channels for m in lenet.modules() if isinstance(m, nn.Conv1d)]
    assert convs == [4, 8]


def test_unknown_model_kwargs_name_the_valid_ones():
    with pytest.raises(ValueError, match="valid: hidden"):
        build_model("mlp", (1, 40), 10, width=3)


def test_the_dac_cnn_needs_images_and_three_channel_counts():
    with pytest.raises(ValueError, match="dac-cnn needs image inputs"):
        build_model("dac-cnn", (1, 40), 10)
    with pytest.raises(ValueError, match="dac-cnn needs three channel counts"):
        build_model("dac-cnn", (1, 28, 28), 10, channels=[4, 8])

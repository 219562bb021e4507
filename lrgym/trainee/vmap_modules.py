"""Module forms that ``torch.func.vmap`` batches well on the CPU, for the population's
``functional_call`` (:mod:`lrgym.trainee.population`)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class MatmulConv1d(nn.Module):
    """``nn.Conv1d`` (stride 1, no dilation, one group) as im2col and a matrix product.

    Hand-written because ``vmap`` turns a 1-D convolution with per-member weights into one
    grouped convolution, measured 1.6x slower on one CPU core than this form (which
    ``vmap`` turns into one batched matrix product) for the 1-D LeNet at N=16. The
    parameters keep their names and shapes: it is a drop-in for ``functional_call``.
    """

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self.kernel_size, self.padding = conv.kernel_size[0], int(conv.padding[0])

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.padding:
            inputs = F.pad(inputs, (self.padding, self.padding))
        length = inputs.shape[-1] - self.kernel_size + 1
        # Shifted slices rather than Tensor.unfold (whose backward has no vmap batching
        # rule), stacked so the product lands in (B, out, L) order with no transpose.
        shifted = [inputs[..., offset : offset + length] for offset in range(self.kernel_size)]
        columns = torch.stack(shifted, dim=2).flatten(1, 2)  # (B, C*k, L)
        outputs = torch.matmul(self.weight.flatten(1), columns)
        return outputs if self.bias is None else outputs + self.bias[:, None]


def vmap_skeleton(model: nn.Module) -> nn.Module:
    """A weightless copy of ``model`` for ``functional_call`` under ``vmap``, with the 1-D
    convolutions that :class:`MatmulConv1d` can replace replaced."""
    skeleton = copy.deepcopy(model)
    for parent in skeleton.modules():
        for name, child in parent.named_children():
            plain = (
                isinstance(child, nn.Conv1d) and child.stride == (1,) and child.dilation == (1,)
                and child.groups == 1 and child.padding_mode == "zeros" and not isinstance(child.padding, str)
            )
            if plain:
                setattr(parent, name, MatmulConv1d(child))
    return skeleton.to("meta")


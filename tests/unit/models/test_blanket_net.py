"""The built-in backbone: its time mixing and how far each state's output reaches."""

import pytest
import torch
from skyquilt_testing.models import random_model_config

from skyquilt.models.blanket_net import TimeMixing
from skyquilt.models.config import parse_model_config
from skyquilt.models.weights import build_denoiser


@pytest.mark.parametrize(("kernel", "size"), [(5, 12), (23, 12), (7, 3)])
def test_time_mixing_is_a_zero_padded_depthwise_convolution_over_time(kernel, size):
    """The banded-matrix product equals torch's depthwise Conv3d with a (kernel, 1, 1)
    kernel, also when the kernel is longer than the blanket."""
    torch.manual_seed(0)
    mixing = TimeMixing(channels=4, kernel=kernel)
    torch.nn.init.normal_(mixing.taps)
    h = torch.randn(2, 4, size, 3, 5)
    expected = torch.nn.functional.conv3d(
        h, mixing.taps.detach()[:, None, :, None, None], padding=(kernel // 2, 0, 0), groups=4
    )
    torch.testing.assert_close(mixing(h).detach(), expected)


@pytest.mark.parametrize(
    ("kwargs", "reach"),
    [
        ({"dilations": [1, 2, 4]}, 2 + 1 + 2 + 4),
        ({"dilations": [1, 2, 4], "time_kernel": 5}, 2 + 2 + 2 + 4),
        ({"time_kernel": 5, "factorised": True}, 2 + 3 * 2),
    ],
)
def test_blocks_reach_two_plus_the_sum_of_their_reaches(kwargs, reach):
    """Through its convolutions and time mixing a state's output depends on inputs reach
    states away, and none further: the encoder and decoder reach one state each, block b
    max(dilations[b], time_kernel // 2), or time_kernel // 2 when factorised. (Group
    normalisation couples every state through its statistics; it is replaced by the identity
    here, and the time-mixing taps, which start at zero, are drawn at random.)"""
    torch.manual_seed(0)
    raw = random_model_config(blanket_size=32)
    raw["backbone"]["kwargs"] = {"hidden_channels": 4, "blocks": 3, "embedding": 8} | kwargs
    backbone = build_denoiser(parse_model_config(raw)).backbone
    for block in backbone.blocks:
        block.norm = torch.nn.Identity()
        if block.time_mixing is not None:
            torch.nn.init.normal_(block.time_mixing.taps)
    shape = (1, 32, *parse_model_config(raw).latent_shape)
    x = torch.randn(shape, requires_grad=True)
    out = backbone(x, torch.zeros(1), torch.zeros(1, 32, 4))
    out[0, 16].sum().backward()
    reached = x.grad[0].abs().flatten(1).sum(dim=1).nonzero().flatten()
    assert (reached.min().item(), reached.max().item()) == (16 - reach, 16 + reach)

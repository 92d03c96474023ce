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


@pytest.mark.parametrize(("kernel", "size"), [(5, 12), (23, 12), (7, 3)])
def test_reflect_padded_time_mixing_reads_the_blanket_mirrored_at_its_ends(kernel, size):
    """With padding "reflect" the taps beyond an end read the states mirrored there (state
    -1 is state 1), as often as a kernel longer than the blanket needs; written out as the
    sum over taps, with the blanket unfolded by hand."""
    torch.manual_seed(0)
    mixing = TimeMixing(channels=4, kernel=kernel, padding="reflect")
    torch.nn.init.normal_(mixing.taps)
    h = torch.randn(2, 4, size, 3, 5)
    period = list(range(size)) + list(range(size - 2, 0, -1))  # one back-and-forth
    reach = kernel // 2
    expected = torch.stack(
        [
            sum(
                mixing.taps.detach()[:, tap, None, None]
                * h[:, :, period[(k + tap - reach) % len(period)]]
                for tap in range(kernel)
            )
            for k in range(size)
        ],
        dim=2,
    )
    torch.testing.assert_close(mixing(h).detach(), expected)


def test_reflect_padding_mixes_an_edge_state_with_every_tap():
    """A blanket that does not change stays unchanged up to the taps' sum at every state
    with "reflect"; with "zeros" its first and last states lose the taps beyond the ends."""
    h = torch.ones(1, 2, 10, 1, 1)
    sums = {}
    for padding in ("zeros", "reflect"):
        mixing = TimeMixing(channels=2, kernel=7, padding=padding)
        torch.nn.init.constant_(mixing.taps, 1.0)
        sums[padding] = mixing(h)[0, 0, :, 0, 0].detach()
    torch.testing.assert_close(sums["reflect"], torch.full((10,), 7.0))
    assert sums["zeros"][0].item() == 4.0 and sums["zeros"][5].item() == 7.0


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

"""The composed denoiser: batched blankets, chunking, stitching and the coarse scale."""

import numpy as np
import torch

from skyquilt.models.calendar import time_features
from skyquilt.models.weights import load_coarse_denoiser, load_denoiser
from skyquilt.sampling.blankets import fold, padded_size, unfold
from skyquilt.sampling.coarse import block_means, cover, fold_cover, unfold_cover
from skyquilt.sampling.composition import CoarseScale, ComposedDenoiser, ProcessSplit
from skyquilt.sampling.timestamps import trajectory_times


def composed(tiny_model, size=20, overlap=4, **options):
    denoiser, config = load_denoiser(tiny_model)
    padded = padded_size(size, config.blanket_size, overlap)
    times = trajectory_times(np.datetime64("2000-04-03T00"), padded, config.blanket_dt)
    features = time_features(times)
    module = ComposedDenoiser(denoiser, features, config.blanket_size, overlap, **options)
    return module, denoiser, features, padded, config


@torch.inference_mode()
def test_batched_blankets_equal_one_call_per_blanket(tiny_model):
    module, denoiser, features, padded, config = composed(tiny_model)
    x = torch.randn(1, padded, *config.latent_shape)
    sigma = torch.tensor(2.0)
    batched = module(x, sigma)
    blankets = unfold(x[0], config.blanket_size, 4)
    feature_blankets = unfold(features, config.blanket_size, 4)
    looped = torch.stack(
        [
            denoiser(blanket[None], sigma[None], feature[None])[0]
            for blanket, feature in zip(blankets, feature_blankets, strict=True)
        ]
    )
    assert torch.allclose(batched[0], fold(looped, 4), atol=1e-5)


@torch.inference_mode()
def test_max_blankets_per_batch_does_not_change_the_result(tiny_model):
    whole, *_, padded, config = composed(tiny_model, size=40)
    chunked, *_ = composed(tiny_model, size=40, max_blankets_per_batch=2)
    x = torch.randn(1, padded, *config.latent_shape)
    assert torch.allclose(whole(x, torch.tensor(1.0)), chunked(x, torch.tensor(1.0)), atol=1e-5)


@torch.inference_mode()
def test_chunks_are_as_few_and_as_even_as_the_cap_allows(tiny_model):
    module, denoiser, _, padded, config = composed(tiny_model, size=40, max_blankets_per_batch=4)
    assert module.chunks(17) == [(0, 3), (3, 6), (6, 10), (10, 13), (13, 17)]
    assert module.chunks(4) == [(0, 4)] and module.chunks(0) == []
    for count in range(1, 40):
        sizes = [stop - start for start, stop in module.chunks(count)]
        assert sum(sizes) == count and max(sizes) <= 4 and max(sizes) - min(sizes) <= 1
        assert len(sizes) == -(-count // 4)
    batches = []
    denoiser.register_forward_hook(lambda _module, inputs, _output: batches.append(len(inputs[0])))
    module(torch.randn(1, padded, *config.latent_shape), torch.tensor(1.0))
    assert batches == [3, 3, 3]  # the 9 blankets of T' = 40 (K = 8, O = 4) in 3 calls


def test_process_split_covers_every_blanket_once():
    for count in range(0, 12):
        for world in range(1, 5):
            covered = []
            for rank in range(world):
                start, stop = ProcessSplit(rank, world).share(count)
                covered.extend(range(start, stop))
            assert covered == list(range(count))


@torch.inference_mode()
def test_reduced_precision_stays_close_to_float32(tiny_model):
    reference, *_, padded, config = composed(tiny_model)
    x = torch.randn(1, padded, *config.latent_shape)
    expected = reference(x, torch.tensor(1.0))
    for precision, tolerance in (("float16", 2e-2), ("bfloat16", 1e-1)):
        reduced, *_ = composed(tiny_model, precision=precision)
        output = reduced(x, torch.tensor(1.0))
        assert output.dtype == torch.float32
        assert (output - expected).abs().max() < tolerance * expected.abs().max()


def two_scale(tiny_two_scale_model, size=20, until_sigma=1.0, **options):
    """The tiny model's composed denoiser with its coarse scale (constant spread) and the
    coarse model itself."""
    module, denoiser, features, padded, config = composed(tiny_two_scale_model, size)
    coarse_denoiser, coarse_config = load_coarse_denoiser(tiny_two_scale_model, config)
    coarse = CoarseScale(coarse_denoiser, 2, coarse_config.blanket_size, 2, "constant", until_sigma)
    corrected = ComposedDenoiser(
        denoiser, features, config.blanket_size, 4, coarse=coarse, **options
    )
    return module, corrected, coarse_denoiser, features, padded, config


@torch.inference_mode()
def test_two_scale_gives_the_block_means_of_the_coarse_model(tiny_two_scale_model):
    """At sigma >= until_sigma the corrected estimate's block means are the coarse model's
    estimate of the noisy block means (noise sigma / sqrt(2)), its windows folded back; the
    states inside a block keep the blankets' differences."""
    blankets, corrected, coarse_denoiser, features, padded, config = two_scale(tiny_two_scale_model)
    x = torch.randn(2, padded, *config.latent_shape)
    sigma = torch.tensor(3.0)
    means = block_means(x, 2, dim=1)
    size, starts = cover(padded // 2, 4, 2)
    windows = unfold_cover(means, size, starts, dim=1)  # (W, 2, 4, C, H, W)
    window_features = unfold_cover(block_means(features, 2), size, starts)
    expected = torch.stack(
        [
            coarse_denoiser(
                window, (sigma / 2**0.5).expand(2), window_features[index].expand(2, -1, -1)
            )
            for index, window in enumerate(windows)
        ]
    )
    expected = fold_cover(expected, starts, padded // 2, dim=1)
    output = corrected(x, sigma)
    torch.testing.assert_close(block_means(output, 2, dim=1), expected, atol=1e-5, rtol=1e-5)
    fine = blankets(x, sigma)
    torch.testing.assert_close(output - fine, (output - fine)[:, ::2].repeat_interleave(2, 1))


@torch.inference_mode()
def test_two_scale_leaves_low_noise_levels_and_chunking_alone(tiny_two_scale_model):
    blankets, corrected, *_, padded, config = two_scale(tiny_two_scale_model)
    x = torch.randn(1, padded, *config.latent_shape)
    assert torch.equal(corrected(x, torch.tensor(0.5)), blankets(x, torch.tensor(0.5)))
    _, chunked, *_ = two_scale(tiny_two_scale_model, max_blankets_per_batch=2)
    sigma = torch.tensor(4.0)
    torch.testing.assert_close(chunked(x, sigma), corrected(x, sigma), atol=1e-5, rtol=1e-5)
    # Per-sample noise levels: only the samples at or above until_sigma are corrected.
    pair = torch.cat([x, x])
    mixed = corrected(pair, torch.tensor([4.0, 0.5]))
    torch.testing.assert_close(mixed[:1], corrected(x, torch.tensor(4.0)), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mixed[1:], blankets(x, torch.tensor(0.5)), atol=1e-5, rtol=1e-5)

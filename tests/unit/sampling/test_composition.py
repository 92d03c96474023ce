"""The composed denoiser: batched blankets, chunking and stitching."""

import numpy as np
import torch

from skyquilt.models.calendar import time_features
from skyquilt.models.weights import load_denoiser
from skyquilt.sampling.blankets import fold, padded_size, unfold
from skyquilt.sampling.composition import ComposedDenoiser, ProcessSplit
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

"""One ensemble member: a whole padded trajectory denoised at once, then trimmed to T.

The member's noise is drawn from torch's global generator seeded with the member's own
seed right before sampling, so regenerating a member reproduces it bit for bit.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from skyquilt.blankets import blanket_count, padded_size
from skyquilt.composition import ComposedDenoiser, ProcessSplit
from skyquilt.diffusion.samplers import build_sampler, init_noise
from skyquilt.diffusion.schedules import build_schedule
from skyquilt.models.directory import ModelConfig
from skyquilt.timestamps import time_features, trajectory_times

log = logging.getLogger(__name__)


class NonFiniteSampleError(RuntimeError):
    """The sampled trajectory contains NaN or Inf values."""


@dataclass(frozen=True)
class MemberRequest:
    """Everything that determines one member's trajectory."""

    trajectory_size: int
    start_date: np.datetime64
    overlap: int
    sampler: str
    steps: int
    seed: int
    sampler_options: dict = field(default_factory=dict)
    precision: str = "float32"
    stitch: str = "symmetric"
    max_blankets_per_batch: int | None = None


@dataclass
class MemberResult:
    """A trimmed latent trajectory (T, C, H, W), its timestamps and how it was made."""

    latent: np.ndarray
    times: np.ndarray
    padded_size: int
    blanket_count: int
    seconds_per_step: float
    denoiser_seconds: float
    total_seconds: float


def generate_member(
    denoiser: nn.Module,
    model: ModelConfig,
    request: MemberRequest,
    device: torch.device | None = None,
    split: ProcessSplit | None = None,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> MemberResult:
    """Sample one trajectory of `request.trajectory_size` states with composed blankets.

    on_step(n), if given, is called after sampler step n (1, 2, ..., steps).
    """
    began = time.perf_counter()
    device = device or torch.device("cpu")
    split = split or ProcessSplit()
    blanket_size = model.blanket_size
    padded = padded_size(request.trajectory_size, blanket_size, request.overlap)
    count = blanket_count(request.trajectory_size, blanket_size, request.overlap)
    times = trajectory_times(request.start_date, padded, model.blanket_dt)
    composed = ComposedDenoiser(
        denoiser,
        time_features(times),
        blanket_size,
        request.overlap,
        stitch=request.stitch,
        max_blankets_per_batch=request.max_blankets_per_batch,
        precision=request.precision,
        split=split,
    ).to(device)
    schedule = build_schedule(model.noise_schedule, model.sigma_min, model.sigma_max)
    sampler = build_sampler(
        request.sampler, composed, schedule, request.steps, request.sampler_options
    )
    log.info(
        "T=%d padded=%d blankets=%d (K=%d, O=%d) sampler=%s %s steps=%d precision=%s "
        "device=%s seed=%d processes=%d",
        request.trajectory_size, padded, count, blanket_size, request.overlap, request.sampler,
        request.sampler_options, request.steps, request.precision, device, request.seed,
        split.world_size,
    )  # fmt: skip
    bar = tqdm(total=sampler.steps, unit="step", disable=not progress or split.rank != 0)
    steps_done = 0

    def step_done() -> None:
        nonlocal steps_done
        steps_done += 1
        bar.update()
        if on_step is not None:
            on_step(steps_done)

    sampler.on_step = step_done
    torch.manual_seed(request.seed)
    noise = init_noise(schedule, (1, padded, *model.latent_shape)).to(device)
    sampling_began = time.perf_counter()
    with torch.inference_mode():
        sample = sampler(noise)[0].float().cpu()
    sampling_seconds = time.perf_counter() - sampling_began
    bar.close()
    if not torch.isfinite(sample).all():
        bad = int((~torch.isfinite(sample)).sum())
        raise NonFiniteSampleError(
            f"the sampled trajectory has {bad} NaN/Inf values (precision={request.precision}, "
            f"sampler={request.sampler}); no shard was written"
        )
    result = MemberResult(
        latent=sample[: request.trajectory_size].numpy(),
        times=times[: request.trajectory_size],
        padded_size=padded,
        blanket_count=count,
        seconds_per_step=sampling_seconds / max(sampler.steps, 1),
        denoiser_seconds=composed.forward_seconds,
        total_seconds=time.perf_counter() - began,
    )
    log.info(
        "sampled in %.2f s (%.3f s/step), total %.2f s",
        sampling_seconds, result.seconds_per_step, result.total_seconds,
    )  # fmt: skip
    return result

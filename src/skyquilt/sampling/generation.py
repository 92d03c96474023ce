"""One ensemble member: a whole padded trajectory denoised at once, then trimmed to T.

The member's noise is drawn from torch's global generator seeded with the member's own
seed right before sampling, so regenerating a member reproduces it bit for bit. A member
resumed from a checkpoint (`skyquilt.sampling.checkpoints`) continues from the sampler state
and RNG state stored there, and ends bit-identical too.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from skyquilt.diffusion.samplers import Sampler, build_sampler, init_noise
from skyquilt.diffusion.schedules import DiffusionSchedule, build_schedule
from skyquilt.models.calendar import time_features
from skyquilt.models.config import ModelConfig
from skyquilt.models.weights import load_coarse_denoiser, load_denoiser
from skyquilt.sampling.blankets import padded_size
from skyquilt.sampling.checkpoints import Checkpointer, set_rng_state
from skyquilt.sampling.composition import CoarseScale, ComposedDenoiser, ProcessSplit
from skyquilt.sampling.request import MemberRequest, RunSettings
from skyquilt.sampling.timestamps import trajectory_times

log = logging.getLogger(__name__)

# How generation spreads two-scale corrections, and the noise level where they stop.
TWO_SCALE_SPREAD = "linear"
TWO_SCALE_UNTIL_SIGMA = 0.3


class NonFiniteSampleError(RuntimeError):
    """The sampled trajectory contains NaN or Inf values."""


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


def load_models(
    settings: RunSettings,
) -> tuple[nn.Module, ModelConfig, CoarseScale | None]:
    """The run's denoiser, its config and, when the run composes two_scale, its coarse scale:
    the coarse model that the config declares (`two_scale`)."""
    model_path = Path(settings.model_path)
    denoiser, model = load_denoiser(model_path, settings.model_target, settings.trust_model_code)
    if settings.composition != "two_scale":
        return denoiser, model, None
    target, trust = settings.model_target, settings.trust_model_code
    return denoiser, model, coarse_scale(model_path, model, target, trust)


def coarse_scale(
    model_path: Path, model: ModelConfig, target: str = "best", trust: bool | tuple = False
) -> CoarseScale:
    """Two-scale composition's coarse scale with the coarse model that the model at
    `model_path` (config `model`) declares, with its `target` weights."""
    coarse, coarse_model = load_coarse_denoiser(model_path, model, target, trust)
    return CoarseScale(coarse, **two_scale_settings(coarse_model, model))


def two_scale_settings(coarse_model: ModelConfig, model: ModelConfig) -> dict:
    """CoarseScale's settings (all but its denoiser) for the coarse model (config
    `coarse_model`) of the model `model`, as generation runs it: coarse windows overlapping by
    half, the correction spread linearly, down to sigma = 0.3 (docs/composition.md: the exact
    study's choice)."""
    return {
        "block": model.coarse.block,
        "blanket_size": coarse_model.blanket_size,
        "overlap": coarse_model.blanket_size // 2,
        "spread": TWO_SCALE_SPREAD,
        "until_sigma": TWO_SCALE_UNTIL_SIGMA,
        "min_blanket_size": coarse_model.min_blanket_size,
    }


def member_sampler(
    denoiser: nn.Module,
    model: ModelConfig,
    request: MemberRequest,
    schedule: DiffusionSchedule,
    times: np.ndarray,
    device: torch.device,
    split: ProcessSplit,
    coarse: CoarseScale | None = None,
) -> tuple[Sampler, ComposedDenoiser]:
    """The sampler of one member over its padded trajectory.

    Arguments:
        denoiser: the blanket denoiser.
        model: its config.
        request: the member, with its run's settings.
        schedule: the noise schedule.
        times: (T',) datetime64 timestamps of the padded trajectory.
        device: where to sample.
        split: this process's share of the blankets.
        coarse: the coarse scale, which a run that composes two_scale needs (see
            `load_models`); ignored by one that composes blankets.

    Returns:
        The sampler, and the composed denoiser it calls (it counts the denoiser's time).
    """
    settings = request.settings
    if settings.composition == "two_scale" and coarse is None:
        raise ValueError("composition two_scale needs the model's coarse scale; see load_models")
    composed = ComposedDenoiser(
        denoiser,
        time_features(times),
        model.blanket_size,
        settings.overlap,
        stitch=settings.stitch,
        max_blankets_per_batch=settings.max_blankets_per_batch,
        precision=settings.precision,
        split=split,
        coarse=coarse if settings.composition == "two_scale" else None,
    ).to(device)
    sampler = build_sampler(
        settings.sampler, composed, schedule, settings.steps, settings.sampler_options
    )
    _log_setup(request, model, len(times), composed, device, split)
    return sampler, composed


def _sample(
    sampler: Sampler,
    schedule: DiffusionSchedule,
    shape: tuple[int, ...],
    seed: int,
    device: torch.device,
    progress: bool,
    checkpointer: Checkpointer | None = None,
    resume: dict | None = None,
) -> torch.Tensor:
    """Draw the noise from `seed` (or take the state of `resume`, a checkpoint) and run the
    sampler, checkpointing after its steps: (1, T', C, H, W) -> (T', C, H, W)."""
    bar = tqdm(total=sampler.steps, unit="step", disable=not progress)
    sampler.on_step = bar.update
    with bar, torch.inference_mode():  # the bar closes before a stop's or error's log line
        if resume is None:
            torch.manual_seed(seed)
            noise = init_noise(schedule, shape).to(device)
            state = sampler.begin(noise)
        else:
            state = {
                key: value.to(device) if isinstance(value, torch.Tensor) else value
                for key, value in resume["state"].items()
            }
            if "history" in state:
                state["history"] = [z.to(device) for z in state["history"]]
            if resume["steps"] != sampler.steps or not 0 < state["step"] <= sampler.steps:
                raise ValueError(f"a checkpoint of {resume['steps']} steps: not this sampler's")
            set_rng_state(resume["rng"], device)
            bar.update(state["step"])
            log.info("resumed from step %d of %d", state["step"], sampler.steps)
        after_step = None
        if checkpointer is not None:
            checkpointer.start(state["step"], sampler.steps)
            after_step = checkpointer.after_step
        return sampler.finish(sampler.run(state, after_step))[0].float().cpu()


def _check_finite(sample: torch.Tensor, settings: RunSettings) -> None:
    """Raise NonFiniteSampleError, naming the run's precision and sampler, unless all finite."""
    if not torch.isfinite(sample).all():
        raise NonFiniteSampleError(
            f"the sampled trajectory has {int((~torch.isfinite(sample)).sum())} NaN/Inf values "
            f"(precision={settings.precision}, sampler={settings.sampler}); no shard was written"
        )


def _log_setup(
    request: MemberRequest,
    model: ModelConfig,
    padded: int,
    composed: ComposedDenoiser,
    device: torch.device,
    split: ProcessSplit,
) -> None:
    """One log line with everything that shapes the member's sampling."""
    settings = request.settings
    coarse = composed.coarse
    log.info(
        "T=%d padded=%d blankets=%d (K=%d, O=%d) composition=%s sampler=%s %s steps=%d "
        "precision=%s device=%s seed=%d processes=%d",
        request.trajectory_size, padded, composed.blanket_count, model.blanket_size,
        settings.overlap, settings.composition, settings.sampler, settings.sampler_options,
        settings.steps, settings.precision, device, request.seed, split.world_size,
    )  # fmt: skip
    if settings.composition == "two_scale" and coarse is None:
        log.warning("two-scale: %d states are too few for the coarse model: blankets alone", padded)
    if coarse is not None:
        log.info(
            "two-scale: %d coarse windows of %d blocks of %d states (overlap >= %d), %s "
            "spread, at sigma >= %g",
            composed.coarse_count, composed.coarse_window, coarse.block, coarse.overlap,
            coarse.spread, coarse.until_sigma,
        )  # fmt: skip


def generate_member(
    denoiser: nn.Module,
    model: ModelConfig,
    request: MemberRequest,
    device: torch.device | None = None,
    split: ProcessSplit | None = None,
    progress: bool = True,
    checkpointer: Checkpointer | None = None,
    resume: dict | None = None,
    coarse: CoarseScale | None = None,
) -> MemberResult:
    """Sample one trajectory of T = `request.trajectory_size` states with composed blankets.

    The padded trajectory of T' states is sampled as a whole, each step scoring its N blankets
    in one batch, and trimmed back to T. Raises NonFiniteSampleError on NaN or Inf values, and
    `stopping.SamplingStopped`, once its checkpoint is written, on the checkpointer's stop.

    Arguments:
        denoiser: the blanket denoiser.
        model: its config.
        request: the member, with its run's settings and seed.
        device: where to sample; the CPU when None.
        split: this process's share of the blankets; all of them when None.
        progress: show a progress bar (on rank 0 only).
        checkpointer: writes checkpoints between steps; none when None.
        resume: a checkpoint to continue from (`checkpoints.read_checkpoint`), whose
            fingerprint matches `request`; sampling starts afresh when None.
        coarse: the coarse scale of a run that composes two_scale (`load_models`).

    Returns:
        The latent trajectory (T, C, H, W), its timestamps (T,) and timings.
    """
    began = time.perf_counter()
    device, split = device or torch.device("cpu"), split or ProcessSplit()
    padded = padded_size(request.trajectory_size, model.blanket_size, request.settings.overlap)
    times = trajectory_times(request.start_time, padded, model.blanket_dt)
    schedule = build_schedule(model.noise_schedule, model.sigma_min, model.sigma_max)
    sampler, composed = member_sampler(
        denoiser, model, request, schedule, times, device, split, coarse
    )
    sampling_began = time.perf_counter()
    shape = (1, padded, *model.latent_shape)
    show = progress and split.rank == 0
    sample = _sample(sampler, schedule, shape, request.seed, device, show, checkpointer, resume)
    sampling_seconds = time.perf_counter() - sampling_began
    _check_finite(sample, request.settings)
    result = MemberResult(
        latent=sample[: request.trajectory_size].numpy(),
        times=times[: request.trajectory_size],
        padded_size=padded,
        blanket_count=composed.blanket_count,
        seconds_per_step=sampling_seconds / max(sampler.steps, 1),
        denoiser_seconds=composed.forward_seconds,
        total_seconds=time.perf_counter() - began,
    )
    log.info(
        "sampled in %.2f s (%.3f s/step), total %.2f s",
        sampling_seconds, result.seconds_per_step, result.total_seconds,
    )  # fmt: skip
    return result

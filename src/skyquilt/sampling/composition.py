"""The composed trajectory denoiser: every blanket of a trajectory scored in one batch.

The padded trajectory x_t (B, T', C, H, W) is unfolded into N blankets, all N*B blankets
go through the blanket denoiser together (in chunks of at most `max_blankets_per_batch`
to bound memory, and split across processes when several are running), and the
denoised blankets are folded back into one trajectory.

Two-scale composition (`CoarseScale`) then corrects the slow part of that estimate, which no
blanket sees whole: at noise levels sigma >= `until_sigma`, the block means of m consecutive
noisy states (noise sigma / sqrt(m)) are denoised by a coarse model over windows of many
blocks, and the difference between its block means and those of the fine estimate is spread
back to the states (`skyquilt.sampling.coarse`). docs/composition.md measures why.
"""

import contextlib
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from skyquilt.sampling.blankets import fold, unfold
from skyquilt.sampling.coarse import block_means, cover, fold_cover, spread_blocks, unfold_cover

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class ProcessSplit:
    """This process's share of the blankets: rank `rank` of `world_size` processes."""

    rank: int = 0
    world_size: int = 1

    def share(self, count: int) -> tuple[int, int]:
        """[start, stop) of the blankets this rank denoises; every rank gets ceil(count / P)."""
        per_rank = -(-count // self.world_size)
        start = min(self.rank * per_rank, count)
        return start, min(start + per_rank, count)


@dataclass(frozen=True)
class CoarseScale:
    """The coarse half of two-scale composition.

    denoiser: the coarse model, a blanket denoiser of block means (x_t: (M, L, C, H, W),
        sigma: (M,), time_features: (M, L, 4)) -> (M, L, C, H, W), for windows of any L up
        to `blanket_size`.
    block: m, states per block mean.
    blanket_size: its windows, in blocks.
    overlap: the least overlap of its windows, in blocks.
    spread: how a correction per block reaches the states: "constant" or "linear" (see
        `skyquilt.sampling.coarse.spread_blocks`), or a function (B, n, C, H, W) ->
        (B, n m, C, H, W) (the exact study's conditional mean, `skyquilt.scoring.gaussian`).
    until_sigma: the noise level below which the fine estimate is left as it is.
    min_blanket_size: the shortest windows the coarse model serves; a trajectory of fewer
        blocks is composed by its blankets alone.
    """

    denoiser: nn.Module
    block: int
    blanket_size: int
    overlap: int
    spread: str | Callable[[Tensor], Tensor]
    until_sigma: float
    min_blanket_size: int = 1


class ComposedDenoiser(nn.Module):
    """The sampler's trajectory denoiser: every blanket of the trajectory in one batch.

    denoise(x_t: (B, T', C, H, W), sigma: () or (B,)) -> (B, T', C, H, W), see `forward`.

    Arguments:
        denoiser: the blanket denoiser, (x_t: (M, K, C, H, W), sigma: (M,),
            time_features: (M, K, 4)) -> (M, K, C, H, W).
        time_features: (T', 4), the calendar features of the padded trajectory.
        blanket_size: K.
        overlap: O.
        stitch: how the blankets are folded back, see `skyquilt.sampling.blankets.fold`.
        max_blankets_per_batch: the most blankets per denoiser call; None for all at once.
        precision: dtype of the denoiser's forward pass (autocast); the result has the
            input's dtype (float32 in generation), so that the sampler's state and updates are
            never reduced.
        split: this process's share of the blankets; all of them when None.
        coarse: two-scale composition's coarse model; blankets alone when None.
    """

    def __init__(
        self,
        denoiser: nn.Module,
        time_features: Tensor,
        blanket_size: int,
        overlap: int,
        stitch: str = "symmetric",
        max_blankets_per_batch: int | None = None,
        precision: str = "float32",
        split: ProcessSplit | None = None,
        coarse: CoarseScale | None = None,
    ):
        super().__init__()
        self.denoiser = denoiser
        self.blanket_size = blanket_size
        self.overlap = overlap
        self.stitch = stitch
        self.max_blankets_per_batch = max_blankets_per_batch
        self.precision = precision
        self.split = split or ProcessSplit()
        self.register_buffer("blanket_features", unfold(time_features, blanket_size, overlap))
        self.blanket_count = self.blanket_features.shape[0]
        self._features: Tensor | None = None
        self.forward_seconds = 0.0
        self.coarse, self.coarse_count = None, 0
        if coarse is not None and len(time_features) // coarse.block >= coarse.min_blanket_size:
            self._add_coarse(coarse, time_features)  # else too short for it: blankets alone

    def _add_coarse(self, coarse: CoarseScale, time_features: Tensor) -> None:
        """Set up the coarse scale: its network, its windows over the T' / m block means and
        their calendar features (the block means of the states'), (W, L, 4)."""
        self.coarse = coarse
        self.coarse_denoiser = coarse.denoiser
        means = block_means(time_features, coarse.block)
        self.coarse_window, self.coarse_starts = cover(
            len(means), coarse.blanket_size, coarse.overlap
        )
        self.coarse_count = len(self.coarse_starts)
        self.register_buffer(
            "coarse_features", unfold_cover(means, self.coarse_window, self.coarse_starts)
        )

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The context the denoiser runs in: autocast to `precision`, nothing for float32."""
        if self.precision == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=DTYPES[self.precision])

    def chunks(self, count: int) -> list[tuple[int, int]]:
        """[start, stop) of each denoiser call over `count` blankets.

        As few calls as `max_blankets_per_batch` allows, of equal sizes (17 blankets at most 16
        per call go as 9 + 8, not 16 + 1, which the batch of one makes slower: BENCHMARKS.md).
        """
        if count == 0:
            return []
        calls = -(-count // self.max_blankets_per_batch) if self.max_blankets_per_batch else 1
        bounds = [count * index // calls for index in range(calls + 1)]
        return list(itertools.pairwise(bounds))

    def denoise_blankets(
        self, blankets: Tensor, sigma: Tensor, features: Tensor, denoiser: nn.Module | None = None
    ) -> Tensor:
        """Denoise blankets in `chunks`, adding the time taken to `forward_seconds` (on a GPU,
        from the end of the work queued before to the end of the denoiser's own).

        Arguments:
            blankets: (M, K, C, H, W) noisy blankets.
            sigma: (M,) their noise levels.
            features: (M, K, 4) their calendar features.
            denoiser: the network; the blanket denoiser when None.

        Returns:
            (M, K, C, H, W) in the dtype of `blankets`; zeros when M = 0.
        """
        denoiser = self.denoiser if denoiser is None else denoiser
        chunks = self.chunks(blankets.shape[0])
        outputs = []
        if blankets.is_cuda:  # the sampler's queued kernels are not the denoiser's time
            torch.cuda.synchronize(blankets.device)
        began = time.perf_counter()
        with self._autocast(blankets.device):
            for start, stop in chunks:
                outputs.append(
                    denoiser(blankets[start:stop], sigma[start:stop], features[start:stop])
                )
        if blankets.is_cuda:
            torch.cuda.synchronize(blankets.device)
        self.forward_seconds += time.perf_counter() - began
        if not outputs:  # this process's share is empty
            return blankets.new_zeros(blankets.shape)
        return (outputs[0] if len(outputs) == 1 else torch.cat(outputs)).to(blankets.dtype)

    def denoise_shared(
        self, windows: Tensor, sigma: Tensor, features: Tensor, denoiser: nn.Module | None = None
    ) -> Tensor:
        """Denoise the windows of every sample: this process's share, gathered from the others.

        Arguments:
            windows: (W, B, L, C, H, W) noisy windows, window-major.
            sigma: (B,) each sample's noise level.
            features: (W * B, L, 4) the windows' calendar features, window-major.
            denoiser: the network; the blanket denoiser when None.

        Returns:
            (W, B, L, C, H, W), the same on every process.
        """
        count, samples = windows.shape[:2]
        flat = windows.flatten(0, 1)
        noise_levels = sigma.reshape(1, -1).expand(count, samples).reshape(-1)
        start, stop = self.split.share(count * samples)
        denoised = self.denoise_blankets(
            flat[start:stop], noise_levels[start:stop], features[start:stop], denoiser
        )
        if self.split.world_size > 1:
            denoised = gather_shares(denoised, count * samples, self.split)
        return denoised.unflatten(0, (count, samples))

    def features(self, samples: int) -> Tensor:
        """(N * samples, K, 4): each blanket's features once per sample, blanket-major."""
        cached = self._features
        if (
            cached is None
            or cached.shape[0] != samples * self.blanket_count
            or cached.device != self.blanket_features.device
        ):
            self._features = self.blanket_features.repeat_interleave(samples, dim=0)
        return self._features

    def forward(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        """Denoise whole trajectories, blanket by blanket.

        Arguments:
            x_t: (B, T', C, H, W) noisy padded trajectories, VE coordinates.
            sigma: () or (B,) their noise levels.

        Returns:
            E[x | x_t]: (B, T', C, H, W) in the dtype of x_t, the denoised blankets folded
            back with `stitch`, corrected by the coarse scale where it applies.
        """
        samples = x_t.shape[0]
        sigma = torch.as_tensor(sigma, dtype=x_t.dtype, device=x_t.device).expand(samples)
        blankets = unfold(x_t, self.blanket_size, self.overlap, dim=1)  # (N, B, K, C, H, W)
        denoised = self.denoise_shared(blankets, sigma, self.features(samples))
        estimate = fold(denoised, self.overlap, mode=self.stitch, dim=1)
        if self.coarse is None or not bool((sigma >= self.coarse.until_sigma).any()):
            return estimate
        return estimate + self.coarse_correction(x_t, estimate, sigma)

    def coarse_correction(self, x_t: Tensor, estimate: Tensor, sigma: Tensor) -> Tensor:
        """What two-scale composition adds to the fine estimate (B, T', C, H, W) of x_t at
        noise levels sigma (B,): the coarse model's block means minus the estimate's, spread
        to the states; zero for samples below `until_sigma`."""
        coarse = self.coarse
        means = block_means(x_t, coarse.block, dim=1)  # (B, n, C, H, W)
        windows = unfold_cover(means, self.coarse_window, self.coarse_starts, dim=1)
        # A block mean of m noisy states carries noise sigma / sqrt(m).
        features = self.coarse_features.repeat_interleave(x_t.shape[0], dim=0)
        denoised = self.denoise_shared(
            windows, sigma / math.sqrt(coarse.block), features, self.coarse_denoiser
        )
        target = fold_cover(denoised, self.coarse_starts, means.shape[1], dim=1)
        correction = target - block_means(estimate, coarse.block, dim=1)
        active = (sigma >= coarse.until_sigma).to(correction.dtype)
        correction = correction * active.view(-1, *[1] * (correction.dim() - 1))
        if callable(coarse.spread):
            return coarse.spread(correction)
        return spread_blocks(correction, coarse.block, coarse.spread, dim=1)


def gather_shares(share: Tensor, count: int, split: ProcessSplit) -> Tensor:
    """Concatenate every rank's share of `count` blankets, in rank order, on every rank.

    Arguments:
        share: (M, K, C, H, W) this rank's denoised blankets, M <= ceil(count / P).
        count: the number of blankets over all ranks.
        split: this process's rank among P = `split.world_size`.

    Returns:
        (count, K, C, H, W), the same on every rank.
    """
    per_rank = -(-count // split.world_size)
    padded = share.new_zeros((per_rank, *share.shape[1:]))
    padded[: share.shape[0]] = share
    gathered = [torch.empty_like(padded) for _ in range(split.world_size)]
    dist.all_gather(gathered, padded.contiguous())
    return torch.cat(gathered)[:count]

"""The composed trajectory denoiser: every blanket of a trajectory scored in one batch.

The padded trajectory x_t (B, T', C, H, W) is unfolded into N blankets, all N*B blankets
go through the blanket denoiser together (in chunks of at most `max_blankets_per_batch`
to bound memory, and split across processes when several are running), and the
denoised blankets are folded back into one trajectory.
"""

import contextlib
import itertools
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from skyquilt.sampling.blankets import fold, unfold

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
        precision: dtype of the denoiser's forward pass (autocast); the input and the result
            stay float32, so that the sampler's state and updates are never reduced.
        split: this process's share of the blankets; all of them when None.
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

    def denoise_blankets(self, blankets: Tensor, sigma: Tensor, features: Tensor) -> Tensor:
        """Denoise blankets in `chunks`, adding the time taken to `forward_seconds` (on a GPU,
        from the end of the work queued before to the end of the denoiser's own).

        Arguments:
            blankets: (M, K, C, H, W) noisy blankets.
            sigma: (M,) their noise levels.
            features: (M, K, 4) their calendar features.

        Returns:
            (M, K, C, H, W) float32; zeros when M = 0.
        """
        chunks = self.chunks(blankets.shape[0])
        outputs = []
        if blankets.is_cuda:  # the sampler's queued kernels are not the denoiser's time
            torch.cuda.synchronize(blankets.device)
        began = time.perf_counter()
        with self._autocast(blankets.device):
            for start, stop in chunks:
                outputs.append(
                    self.denoiser(blankets[start:stop], sigma[start:stop], features[start:stop])
                )
        if blankets.is_cuda:
            torch.cuda.synchronize(blankets.device)
        self.forward_seconds += time.perf_counter() - began
        if not outputs:  # this process's share is empty
            return blankets.new_zeros(blankets.shape, dtype=torch.float32)
        return (outputs[0] if len(outputs) == 1 else torch.cat(outputs)).float()

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
            E[x | x_t]: (B, T', C, H, W) float32, the denoised blankets folded back with
            `stitch`.
        """
        samples = x_t.shape[0]
        blankets = unfold(x_t, self.blanket_size, self.overlap, dim=1)  # (N, B, K, C, H, W)
        count = blankets.shape[0] * samples
        flat = blankets.flatten(0, 1)  # (N * B, K, C, H, W), blanket-major
        noise_levels = torch.as_tensor(sigma, dtype=x_t.dtype, device=x_t.device)
        noise_levels = noise_levels.reshape(1, -1).expand(blankets.shape[0], samples).reshape(-1)
        start, stop = self.split.share(count)
        denoised = self.denoise_blankets(
            flat[start:stop], noise_levels[start:stop], self.features(samples)[start:stop]
        )
        if self.split.world_size > 1:
            denoised = gather_shares(denoised, count, self.split)
        denoised = denoised.unflatten(0, (blankets.shape[0], samples))
        return fold(denoised, self.overlap, mode=self.stitch, dim=1)


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

"""Statistics of the aggregate's latents that need no decoding, streamed member by member.

The latent ensemble mean and standard deviation over members (per start date, state, channel
and grid point) and a sha256 checksum per member are exact functions of the standardised
latents in `trajectories.zarr`; no decoder is involved. Statistics of physical fields (mean,
std, quantiles of geopotential, ...) do need decoding: the decoder is nonlinear, so the decoded
mean is not the decoding of the latent mean, and quantiles do not commute with it either.
"""

import numpy as np
import xarray as xr

from skyquilt.io.shards import LATENT, checksum
from skyquilt.scoring.statistics import RunningMoments

DDOF = 1


def latent_statistics(aggregate: xr.Dataset) -> xr.Dataset:
    """Latent mean and std (ddof = 1) over members, and each member's checksum.

    aggregate: `latent (start_date, member, time, channel, y, x)`, lazily (one member is read
    at a time) -> mean, std (start_date, time, channel, y, x) float32 and checksum
    (start_date, member) the sha256 of the member's float32 latents (as its shard records).
    """
    latent = aggregate[LATENT]
    means, stds, sums = [], [], []
    for date in range(latent.sizes["start_date"]):
        moments = None
        sums.append([])
        for member in range(latent.sizes["member"]):
            values = np.asarray(latent[date, member].values, dtype=np.float32)
            if moments is None:
                moments = RunningMoments(values.shape)
            moments.update(values)
            sums[-1].append(checksum(values))
        means.append(moments.mean.astype(np.float32))
        stds.append(moments.std(DDOF).astype(np.float32))
    dims = ("start_date", "time", "channel", "y", "x")
    coords = {name: aggregate[name] for name in ("start_date", "member") if name in aggregate}
    for name in ("lead_time", "valid_time"):
        if name in aggregate.coords:
            coords[name] = aggregate[name]
    return xr.Dataset(
        {
            "mean": (dims, np.stack(means)),
            "std": (dims, np.stack(stds)),
            "checksum": (("start_date", "member"), np.array(sums, dtype=str)),
        },
        coords=coords,
        attrs={"members": int(latent.sizes["member"]), "ddof": DDOF},
    )

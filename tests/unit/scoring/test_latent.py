"""Latent statistics of an aggregate against numpy over the whole stacked ensemble."""

import numpy as np
import xarray as xr

from skyquilt.io.shards import checksum
from skyquilt.scoring.latent import latent_statistics


def test_latent_statistics_equal_numpy_over_the_aggregate():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(2, 5, 3, 2, 4, 6)).astype(np.float32)
    dims = ("start_date", "member", "time", "channel", "y", "x")
    aggregate = xr.Dataset(
        {"latent": (dims, values)},
        coords={
            "start_date": np.array(["2000-01-01", "2000-01-02"], dtype="datetime64[ns]"),
            "member": np.arange(5),
        },
    ).chunk({"start_date": 1, "member": 1})
    result = latent_statistics(aggregate)
    np.testing.assert_allclose(result["mean"], values.mean(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result["std"], values.std(axis=1, ddof=1), rtol=1e-5, atol=1e-6)
    assert result["mean"].dims == ("start_date", "time", "channel", "y", "x")
    assert result["checksum"].values[1, 3] == checksum(values[1, 3])
    assert result.attrs["members"] == 5

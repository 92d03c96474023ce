"""The statistics job on tiny decoded members (the decode job's layout): every group in the
WeatherBench2 layout, values equal numpy over the stacked members, whatever the block size."""

import re
import shutil

import numpy as np
import pytest
import xarray as xr
import zarr
from skyquilt_testing.decoding import write_decoded_members

from skyquilt.demo.dataset import VARIABLES
from skyquilt.io.fingerprints import INPUTS
from skyquilt.jobs.ensemble_statistics import GROUPS, MOMENTS, run_statistics
from skyquilt.jobs.render import open_ensemble

QUANTILES = [0.05, 0.5, 0.95]
STATES = 6


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """5 decoded members of 6 states on an 8 x 16 grid, 4 states per chunk."""
    return write_decoded_members(tmp_path_factory.mktemp("decoded"), 5, states=STATES)


def stacked(members, variable: str) -> np.ndarray:
    """(N, T, L, H, W) of the members, loaded whole (fine at this size)."""
    return np.stack([xr.open_zarr(path)[variable].values[0, 0] for path in members])


def expected(values: np.ndarray) -> dict[str, np.ndarray]:
    values = values.astype(np.float64)
    return {
        "mean": values.mean(axis=0),
        "std": values.std(axis=0, ddof=1),
        "min": values.min(axis=0),
        "max": values.max(axis=0),
        "quantile": np.quantile(values, QUANTILES, axis=0),
    }


@pytest.mark.parametrize("block_mb", [256, 0.002])  # one band; bands of one row
def test_statistics_equal_numpy_over_the_members(members, tmp_path, block_mb):
    output = tmp_path / "2000-04-03T00.zarr"
    run_statistics(members, output, QUANTILES, block_mb=block_mb)
    for group in GROUPS:
        result = xr.open_zarr(output, group=group)
        for variable in VARIABLES:
            want = expected(stacked(members, variable))[group]
            got = result[variable].values[0]
            # float32 output of float64 sums: a few ulps of 5.5e4 for geopotential's mean.
            scale = np.abs(want).max()
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * scale)


def test_groups_are_weatherbench2_forecasts_named_like_the_decoded_variables(members, tmp_path):
    output = tmp_path / "stats.zarr"
    run_statistics(members, output, QUANTILES)
    decoded = xr.open_zarr(members[0])
    for group in MOMENTS:
        result = xr.open_zarr(output, group=group)
        assert set(result.data_vars) == set(VARIABLES)
        for variable in VARIABLES:
            assert result[variable].dims == (
                "time", "prediction_timedelta", "level", "latitude", "longitude",
            )  # fmt: skip
            assert result[variable].dtype == np.float32
            assert result[variable].attrs["units"] == VARIABLES[variable]["units"]
        for name in ("time", "prediction_timedelta", "level", "latitude", "longitude"):
            np.testing.assert_array_equal(result[name], decoded[name])
        assert result.attrs["statistic"] == group
    quantiles = xr.open_zarr(output, group="quantile")
    assert quantiles["geopotential"].dims == (
        "time", "quantile", "prediction_timedelta", "level", "latitude", "longitude",
    )  # fmt: skip
    assert quantiles["quantile"].values.tolist() == QUANTILES
    root = xr.open_zarr(output)
    assert root.attrs["members"] == 5
    assert root.attrs["quantiles"] == QUANTILES
    assert root.attrs["ddof"] == 1
    assert root.attrs["start_date"] == "2000-04-03T00"  # shared by every member
    assert "member" not in root.attrs and "skyquilt_version" in root.attrs
    tree = xr.open_datatree(output, engine="zarr")
    assert set(tree.children) == set(GROUPS)


def test_members_of_another_start_date_are_refused_and_nothing_is_written(members, tmp_path):
    other = write_decoded_members(tmp_path / "other", 1, states=STATES, start="2000-04-04T00")
    output = tmp_path / "stats.zarr"
    with pytest.raises(ValueError, match=f"decoded member {other[0]} has another time"):
        run_statistics([*members, *other], output, QUANTILES)
    assert not output.exists()
    assert not list(tmp_path.glob(".stats.zarr.*"))


def test_a_rerun_replaces_the_previous_output(members, tmp_path):
    output = tmp_path / "stats.zarr"
    run_statistics(members[:2], output, [0.5])
    run_statistics(members, output, QUANTILES)
    assert xr.open_zarr(output).attrs["members"] == 5
    shutil.rmtree(output)


def record_inputs(path, fingerprint: str) -> None:
    """Give a decoded member a record of its denoiser (as the decode job writes one)."""
    group = zarr.open_group(path, mode="r+")
    group.attrs[INPUTS] = {"denoiser": {"files": ["best.safetensors"], "fingerprint": fingerprint}}
    zarr.consolidate_metadata(path, zarr_format=2)


def test_members_made_from_different_denoisers_are_refused(members, tmp_path):
    copies = [shutil.copytree(path, tmp_path / path.name) for path in members[:3]]
    for path, fingerprint in zip(copies, ["a" * 64, "a" * 64, "b" * 64], strict=True):
        record_inputs(path, fingerprint)
    output = tmp_path / "statistics.zarr"
    message = (
        f"decoded members made from different inputs: {copies[0]}, {copies[1]} (denoiser "
        f"aaaaaaaaaaaa); {copies[2]} (denoiser bbbbbbbbbbbb)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        run_statistics(copies, output, QUANTILES)
    with pytest.raises(ValueError, match=re.escape(message)):
        open_ensemble(copies)  # the evaluation's and the galleries' members
    assert not output.exists()
    record_inputs(copies[2], "a" * 64)
    run_statistics(copies, output, QUANTILES)
    assert xr.open_zarr(output, group="mean").attrs[INPUTS]["denoiser"]["fingerprint"] == "a" * 64

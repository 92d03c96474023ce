"""Whether a request for on-request outputs can be served: the dataset's truth, fields,
periods, and what the decoder needs of it."""

import dataclasses
import re

import numpy as np
import pytest
import xarray as xr
import yaml
from skyquilt_testing.decoding import VARIABLES, synthetic_dataset, write_synthetic_dataset
from skyquilt_testing.workflow import ON_REQUEST as DEFAULTS
from skyquilt_testing.workflow import REPO, tiny_config
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from skyquilt.planning import dataset_checks
from skyquilt.planning.dataset_checks import (
    check_climate_period,
    check_climatology_period,
    check_ground_truth,
)
from skyquilt.planning.errors import ConfigError, schema_error_line
from skyquilt.planning.plan import make_plan
from skyquilt.planning.products import make_products


@pytest.fixture
def products(tiny_model):
    config = tiny_config(tiny_model, dataset="era5.zarr", output_dir="out") | DEFAULTS
    return make_products(config, make_plan(config))


def test_trajectories_leaving_the_dataset_are_named_with_its_range(products):
    times = np.datetime64("2000-04-01", "ns") + np.arange(24 * 20 - 1) * np.timedelta64(1, "h")
    with pytest.raises(ConfigError) as error:
        check_ground_truth(products, times, "era5.zarr")
    assert "2000-04-20T12 (T = 12)" in str(error.value)
    assert "2000-04-03T00" not in str(error.value)
    assert "covers 2000-04-01T00 to 2000-04-20T22" in str(error.value)
    one_more_hour = np.append(times, times[-1] + np.timedelta64(1, "h"))
    check_ground_truth(products, one_more_hour, "era5.zarr")


def test_a_climatology_period_must_not_overlap_evaluated_trajectories(products, tiny_model):
    config = tiny_config(tiny_model, dataset="era5.zarr") | DEFAULTS
    for period, overlaps in [
        (["1999-07-01", "2000-04-02"], False),
        (["1999-07-01", "2000-04-03"], True),
        (["2000-04-03T12", "2000-04-20T11"], False),
        (["2000-04-20T23", "2000-04-30"], True),  # the second trajectory ends 2000-04-20T23
        (["2000-04-21", "2000-04-30"], False),
    ]:
        config["evaluate"] = {"fields": None, "climatology_period": period}
        products = make_products(config, make_plan(config))
        if overlaps:
            with pytest.raises(ConfigError, match="evaluate.climatology_period"):
                check_climatology_period(products)
        else:
            check_climatology_period(products)


def test_a_climate_period_must_be_in_order_and_hold_truth(tiny_model):
    config = tiny_config(tiny_model, dataset="era5.zarr") | DEFAULTS
    hours = np.datetime64("2000-04-01T00", "ns") + np.arange(48) * np.timedelta64(1, "h")
    for period, problem in [
        (["2000-04-01", "2000-04-02"], None),
        (["2000-04-02T23", "2000-04-03"], "holds under two states"),
        (["2000-04-02", "2000-04-01"], "is reversed"),
        (["2001-01-01", "2001-01-31"], "holds under two states"),
    ]:
        config["evaluate"] = {"fields": None, "climatology_period": None, "climate_period": period}
        products = make_products(config, make_plan(config))
        assert products.climate_period == tuple(period)
        if problem is None:
            check_climate_period(products, hours)
            continue
        with pytest.raises(ConfigError, match=f"^evaluate.climate_period: .*{problem}"):
            check_climate_period(products, hours)


REPORT_SCHEMA = REPO / "config/schema.report.yaml"


@pytest.mark.parametrize(
    ("period", "message"),
    [
        (["2000-13", "2000-04-02"], r"evaluate.climate_period.0: '2000-13' does not match"),
        (["2000-04-01"], r"evaluate.climate_period: \['2000-04-01'\] is too short"),
        ("2000-04-01", r"evaluate.climate_period: '2000-04-01' is not of type 'array', 'null'"),
    ],
)
def test_a_malformed_climate_period_fails_the_schema_in_one_line_naming_it(period, message):
    with pytest.raises(WorkflowError) as error:
        validate({"evaluate": {"climate_period": period}}, schema=str(REPORT_SCHEMA))
    assert re.match(message, schema_error_line(error.value))


def test_statistics_need_the_dataset_but_not_its_ground_truth(tiny_model, tmp_path):
    config = tiny_config(tiny_model) | DEFAULTS
    products = make_products(config, make_plan(config))
    with pytest.raises(ConfigError, match="dataset: decoding needs the dataset"):
        dataset_checks.check_request(products, {"statistics"}, built=[str(tiny_model)])
    config["dataset"] = str(tmp_path / "nowhere.zarr")  # decoding takes the dataset's grid
    products = make_products(config, make_plan(config))
    with pytest.raises(ConfigError, match="^dataset: .*nowhere.zarr does not exist"):
        dataset_checks.check_request(products, {"statistics"}, built=[str(tiny_model)])
    # A dataset long before the start dates: statistics need no truth.
    config["dataset"] = str(write_synthetic_dataset(tmp_path / "era5.zarr", "1999-01-01", 6))
    products = make_products(config, make_plan(config))
    dataset_checks.check_request(products, {"statistics"}, built=[str(tiny_model)])


def decodable(tmp_path, dataset) -> str:
    """A decoder config in tmp_path/latents/ae for the variables and grid of `dataset`."""
    model_path = tmp_path / "latents/denoisers/denoiser/0"
    (tmp_path / "latents/ae").mkdir(parents=True)
    architecture = {"variables": list(VARIABLES), "grid": [dataset.sizes["latitude"], 32]}
    (tmp_path / "latents/ae/config.yaml").write_text(yaml.safe_dump({"architecture": architecture}))
    return str(model_path)


@pytest.mark.parametrize(
    ("damage", "asked", "message"),
    [
        (
            lambda data: data.drop_vars("geopotential"),
            "statistics",
            "lacks variable 'geopotential'",
        ),
        (lambda data: data.drop_vars("latitude"), "decoded", "no coordinate latitude"),
        (lambda data: data.drop_vars("time"), "evaluation", "no coordinate time"),
        (lambda data: data.drop_vars("level"), "decoded", "no coordinate level"),
        (
            lambda data: xr.concat([data, data.assign_coords(level=[850])], "level"),
            "decoded",
            "at levels [500, 850]",
        ),
        (lambda data: data.isel(longitude=slice(0, 16)), "statistics", "16 (latitude x longitude)"),
    ],
)
def test_a_dataset_lacking_what_the_decoder_or_evaluation_needs_is_refused(
    tiny_model, tmp_path, damage, asked, message
):
    dataset = synthetic_dataset("2000-04-01", 24 * 25, (16, 32))
    model_path = decodable(tmp_path, dataset)
    config = tiny_config(tiny_model, dataset=str(tmp_path / "era5.zarr")) | DEFAULTS
    products = make_products(config, make_plan(config))
    products = dataclasses.replace(
        products,
        plan=dataclasses.replace(
            products.plan,
            settings=dataclasses.replace(products.plan.settings, model_path=model_path),
        ),
    )
    dataset.to_zarr(tmp_path / "era5.zarr", zarr_format=2)
    dataset_checks.check_request(products, {asked}, built=[model_path])  # the intact one
    damage(dataset).to_zarr(tmp_path / "damaged.zarr", zarr_format=2)
    products = dataclasses.replace(products, dataset=str(tmp_path / "damaged.zarr"))
    with pytest.raises(ConfigError, match=f"^dataset: .*{re.escape(message)}"):
        dataset_checks.check_request(products, {asked}, built=[model_path])


def test_a_decoder_config_that_gives_a_key_twice_is_refused(tmp_path):
    model_path = tmp_path / "autoencoders/ae/0/latents/dump/denoisers/denoiser/0"
    config = tmp_path / "autoencoders/ae/0/latents/dump/ae/config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("architecture:\n  variables: [geopotential]\n  variables: [u]\n")
    with pytest.raises(ConfigError) as raised:
        dataset_checks.decoder_outputs(str(model_path))
    assert str(raised.value).startswith(
        f"model_path: decoder config key 'architecture.variables' is given twice in {config} "
        "(lines 2 and 3)"
    )

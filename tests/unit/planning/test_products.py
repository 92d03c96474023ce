"""Settings, paths and request checks of the on-request outputs (decode, render, evaluate)."""

import dataclasses
import re

import numpy as np
import pytest
import xarray as xr
import yaml
from skyquilt_testing.decoding import VARIABLES, synthetic_dataset, write_synthetic_dataset
from skyquilt_testing.workflow import REPO, tiny_config
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from skyquilt.planning import products as products_module
from skyquilt.planning.config import ConfigError, schema_error_line
from skyquilt.planning.plan import make_plan
from skyquilt.planning.products import (
    Field,
    check_climate_period,
    check_climatology_period,
    check_ground_truth,
    make_products,
    parse_fields,
)

REPORT_SCHEMA = REPO / "config/schema.report.yaml"
DEFAULTS = {
    "decode": {"states_per_chunk": 8},
    "render": {
        "lead_hours": [0, 6, 11, 48],
        "quantile": 0.01,
        "gallery_members": 4,
        "animation": {"fps": 4, "mp4": False, "frames_per_job": 5, "members": 1},
        "fields": [{"variable": "geopotential", "level": 500}, {"variable": "t2m"}],
    },
    "evaluate": {"fields": None, "climatology_period": None},
}


@pytest.fixture
def products(tiny_model):
    config = tiny_config(tiny_model, dataset="era5.zarr", output_dir="out") | DEFAULTS
    return make_products(config, make_plan(config))


def test_field_labels_name_the_level_when_there_is_one():
    assert Field("geopotential", 500).label == "geopotential-500"
    assert Field("geopotential", 850.0).label == "geopotential-850"
    assert Field("2m_temperature").label == "2m_temperature"


def test_a_field_listed_twice_is_refused():
    entry = {"variable": "geopotential", "level": 500}
    with pytest.raises(ConfigError, match="render.fields: geopotential-500 listed more than once"):
        parse_fields([entry, entry], "render.fields")


def test_paths_follow_the_output_layout(products):
    assert products.decoded_path(12, "2000-04-03T00", 1) == (
        "out/prior/default/12h/decoded/2000-04-03T00/1.zarr"
    )
    assert products.gallery_path(12, "2000-04-03T00", "geopotential-500") == (
        "out/prior/default/12h/render/gallery/2000-04-03T00/geopotential-500.png"
    )
    assert (
        products.evaluation_path(12, "metrics.csv")
        == "out/prior/default/12h/evaluation/metrics.csv"
    )


def test_frames_are_split_into_jobs_of_at_most_frames_per_job(products):
    assert products.frame_chunks(12) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]


def test_gallery_leads_beyond_the_trajectory_are_left_out(products):
    assert products.gallery_lead_hours(12) == [0, 6, 11]


def test_render_targets_are_galleries_and_animations_of_the_animated_members(products):
    targets = products.render_targets()
    assert len(targets) == 2 * 2 * (1 + 1)  # dates x fields x (gallery + one member's GIF)
    assert "out/prior/default/12h/render/animation/2000-04-20T12/0/t2m.gif" in targets


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


def test_fidelity_targets_lie_in_each_size_s_evaluation_folder(products):
    assert products.fidelity_targets() == [
        "out/prior/default/12h/evaluation/fidelity.csv",
        "out/prior/default/12h/evaluation/fidelity.png",
    ]


def test_mp4_animations_are_planned_only_when_ffmpeg_is_available(tiny_model, monkeypatch):
    config = tiny_config(tiny_model, dataset="era5.zarr") | DEFAULTS
    config["render"] = {**DEFAULTS["render"], "animation": {**DEFAULTS["render"]["animation"]}}
    config["render"]["animation"]["mp4"] = True
    for available in (True, False):
        monkeypatch.setattr(products_module, "ffmpeg_available", lambda found=available: found)
        products = make_products(config, make_plan(config))
        mp4s = [path for path in products.render_targets() if path.endswith(".mp4")]
        assert len(mp4s) == (4 if available else 0)


def test_statistics_are_one_zarr_per_size_and_start_date(products):
    assert products.statistics_path(12, "2000-04-03T00") == (
        "out/prior/default/12h/statistics/2000-04-03T00.zarr"
    )
    assert products.statistics_targets() == [
        "out/prior/default/12h/statistics/2000-04-03T00.zarr",
        "out/prior/default/12h/statistics/2000-04-20T12.zarr",
    ]
    assert products.quantiles == (0.05, 0.5, 0.95)  # the default without a statistics section


def test_statistics_quantiles_are_sorted_and_checked(tiny_model):
    config = tiny_config(tiny_model) | DEFAULTS
    config["statistics"] = {"quantiles": [0.9, 0.1], "block_mb": 8}
    products = make_products(config, make_plan(config))
    assert products.quantiles == (0.1, 0.9) and products.statistics_block_mb == 8
    for bad, message in (
        ([0.5, 1.0], "statistics.quantiles: 1.0 is not a number strictly between 0 and 1"),
        ([0.2, 0.2], "statistics.quantiles: 0.2 listed more than once"),
    ):
        config["statistics"] = {"quantiles": bad}
        with pytest.raises(ConfigError, match=f"^{message}$"):
            make_products(config, make_plan(config))


def test_statistics_need_the_dataset_but_not_its_ground_truth(tiny_model, tmp_path):
    config = tiny_config(tiny_model) | DEFAULTS
    products = make_products(config, make_plan(config))
    with pytest.raises(ConfigError, match="dataset: decoding needs the dataset"):
        products_module.check_request(products, {"statistics"}, built=[str(tiny_model)])
    config["dataset"] = str(tmp_path / "nowhere.zarr")  # decoding takes the dataset's grid
    products = make_products(config, make_plan(config))
    with pytest.raises(ConfigError, match="^dataset: .*nowhere.zarr does not exist"):
        products_module.check_request(products, {"statistics"}, built=[str(tiny_model)])
    # A dataset long before the start dates: statistics need no truth.
    config["dataset"] = str(write_synthetic_dataset(tmp_path / "era5.zarr", "1999-01-01", 6))
    products = make_products(config, make_plan(config))
    products_module.check_request(products, {"statistics"}, built=[str(tiny_model)])


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
    products_module.check_request(products, {asked}, built=[model_path])  # the intact one
    damage(dataset).to_zarr(tmp_path / "damaged.zarr", zarr_format=2)
    products = dataclasses.replace(products, dataset=str(tmp_path / "damaged.zarr"))
    with pytest.raises(ConfigError, match=f"^dataset: .*{re.escape(message)}"):
        products_module.check_request(products, {asked}, built=[model_path])


def test_a_decoder_config_that_gives_a_key_twice_is_refused(tmp_path):
    model_path = tmp_path / "autoencoders/ae/0/latents/dump/denoisers/denoiser/0"
    config = tmp_path / "autoencoders/ae/0/latents/dump/ae/config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("architecture:\n  variables: [geopotential]\n  variables: [u]\n")
    with pytest.raises(ConfigError) as raised:
        products_module.decoder_outputs(str(model_path))
    assert str(raised.value).startswith(
        f"model_path: decoder config key 'architecture.variables' is given twice in {config} "
        "(lines 2 and 3)"
    )

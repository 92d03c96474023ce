"""Settings and paths of the on-request outputs (decode, render, evaluate, statistics)."""

import pytest
import yaml
from skyquilt_testing.workflow import ON_REQUEST as DEFAULTS
from skyquilt_testing.workflow import REPO, tiny_config

from skyquilt.planning import products as products_module
from skyquilt.planning.errors import ConfigError
from skyquilt.planning.plan import make_plan
from skyquilt.planning.products import Field, make_products, parse_fields

REPORT_SCHEMA = REPO / "config/schema.report.yaml"


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


def test_the_statistics_defaults_are_the_report_schema_s():
    """Without a statistics section (a config the schema has not filled in) the products take
    the defaults that config/schema.report.yaml gives the workflow."""
    schema = yaml.safe_load(REPORT_SCHEMA.read_text())["properties"]["statistics"]["properties"]
    assert tuple(schema["quantiles"]["default"]) == products_module.STATISTICS_QUANTILES
    assert schema["block_mb"]["default"] == products_module.STATISTICS_BLOCK_MB

"""The `demo:` config section: schema defaults, checks, and the paths the demo builds."""

import dataclasses
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from skyquilt.planning.demo import make_demo_plan
from skyquilt.planning.demo_settings import (
    AutoencoderSettings,
    CoarseSettings,
    DatasetSettings,
    DenoiserSettings,
    Forcing,
)
from skyquilt.planning.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
SCHEMA = REPO / "config/schema.demo.yaml"


def schema_defaults() -> dict:
    config: dict = {}
    validate(config, str(SCHEMA))
    return config["demo"]


def test_schema_fills_every_default_of_the_settings():
    demo = schema_defaults()
    assert DatasetSettings.from_config(demo["dataset"]) == DatasetSettings()
    assert AutoencoderSettings(**demo["autoencoder"]) == AutoencoderSettings()
    assert DenoiserSettings(**demo["denoiser"]) == DenoiserSettings()
    assert CoarseSettings(**demo["coarse"]) == CoarseSettings()
    assert demo["threads"] == 1


def test_schema_lists_every_forcing_parameter():
    properties = yaml.safe_load(SCHEMA.read_text())["properties"]["demo"]["properties"]
    forcing = properties["dataset"]["properties"]["forcing"]["properties"]
    assert set(forcing) == {field.name for field in dataclasses.fields(Forcing)}


def test_schema_rejects_an_unknown_key():
    with pytest.raises(Exception, match="stepz"):
        validate({"demo": {"autoencoder": {"stepz": 3}}}, str(SCHEMA))


def test_schema_rejects_an_unknown_resampling_naming_the_allowed_ones():
    with pytest.raises(Exception, match=r"'bicubic' is not one of \['shuffle', 'interpolate'\]"):
        validate({"demo": {"autoencoder": {"resampling": "bicubic"}}}, str(SCHEMA))


def test_demo_paths_are_the_defaults_of_the_workflow_config():
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    plan = make_demo_plan(schema_defaults())
    assert str(plan.dataset_path) == config["dataset"]
    assert str(plan.model_path) == config["model_path"]
    assert plan.latent_dir == plan.model_path.parents[2]


def test_built_model_config_has_the_latent_shape_of_the_autoencoder():
    plan = make_demo_plan(schema_defaults())
    built = plan.built_models()
    model = built[str(plan.model_path)]
    assert model.latent_shape == (8, 8, 16) == plan.latent_shape
    assert model.blanket_size == 48 and model.blanket_dt == 1
    assert model.noise_schedule == "rectified" and (model.sigma_min, model.sigma_max) == (1e-3, 1e3)
    # ...declaring its coarse model of 8-hour block means, which the workflow builds too.
    assert (model.coarse.path, model.coarse.block) == ("coarse", 8)
    coarse = built[str(plan.model_path / "coarse")]
    assert coarse.latent_shape == model.latent_shape and coarse.blanket_dt == 8
    assert (coarse.blanket_size, coarse.min_blanket_size) == (48, 12)
    without = make_demo_plan(schema_defaults() | {"coarse": {"enabled": False}})
    assert list(without.built_models()) == [str(plan.model_path)]
    assert without.model_config().coarse is None


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"dataset": {"grid": [30, 64]}}, "demo.dataset.grid"),
        ({"dataset": {"held_out": ["2001-01-01", "2001-01-31"]}}, "demo.dataset.held_out"),
        ({"dataset": {"held_out": ["2000-05-01", "2000-04-01"]}}, "demo.dataset.held_out"),
        ({"denoiser": {"noise_schedule": "cosine"}}, "demo.denoiser: unknown noise schedule"),
        ({"denoiser": {"sigma_min": 2.0}}, "demo.denoiser: .*sigma_min"),
        (
            {
                "dataset": {"held_out": ["2000-04-01", "2000-04-01"]},
                "denoiser": {"blanket_size": 30},
            },
            "demo.denoiser.blanket_size",
        ),
        (
            {"denoiser": {"blocks": 3, "dilations": [1, 2]}},
            r"demo.denoiser.dilations: \[1, 2\] must have one value per block .*blocks = 3",
        ),
        (
            {"denoiser": {"time_kernel": 4}},
            "demo.denoiser: time_kernel 4 must be 0 or an odd integer >= 3",
        ),
        (
            {"denoiser": {"factorised": True, "time_kernel": 0}},
            "demo.denoiser: factorised blocks need time_kernel >= 3",
        ),
        (
            {"denoiser": {"sanity_trajectory_size": 2000}},
            "demo.denoiser.sanity_trajectory_size: 2000 consecutive hours do not fit",
        ),
        ({"coarse": {"block": 7}}, "demo.coarse.block: 7 must divide demo.denoiser.blanket_size"),
        ({"coarse": {"min_blanket_size": 60}}, "demo.coarse.min_blanket_size: 60 must be at most"),
        ({"coarse": {"blanket_size": 200}}, "demo.coarse.blanket_size: 200 blocks of 8 hours"),
        ({"coarse": {"time_kernel": 4}}, "demo.coarse: time_kernel 4 must be 0 or an odd"),
        (
            {"denoiser": {"time_padding": "wrap"}},
            "demo.denoiser: time_padding 'wrap' must be one of zeros, reflect",
        ),
    ],
)
def test_settings_that_cannot_work_fail_naming_the_key(section, key):
    with pytest.raises(ConfigError, match=key):
        make_demo_plan(section)

"""The config against the files: keys given twice, and paths beyond the file system's limits,
refused in one line naming the key."""

import os

import pytest
from skyquilt_testing.workflow import tiny_config

from skyquilt.planning.errors import ConfigError
from skyquilt.planning.files import (
    check_config_files,
    check_input_limits,
    check_output_limits,
    written_paths,
)
from skyquilt.planning.plan import make_plan
from skyquilt.planning.products import make_products

REPORT_DEFAULTS = {
    "render": {"fields": None, "lead_hours": [0], "quantile": 0.99, "gallery_members": 1,
               "animation": {"fps": 4, "mp4": False}},
    "evaluate": {"fields": None},
    "decode": {"states_per_chunk": 8},
}  # fmt: skip
NAME_MAX = os.pathconf("/", "PC_NAME_MAX")


def test_a_key_given_twice_in_a_config_file_is_refused(tmp_path):
    good, bad = tmp_path / "config.yaml", tmp_path / "more.yaml"
    good.write_text("seed: 1\ndiffusion:\n  num_steps: 3\n")
    bad.write_text("diffusion:\n  num_steps: 3\n  sampler: {type: lms}\n  num_steps: 30\n")
    check_config_files([good])
    with pytest.raises(ConfigError) as raised:
        check_config_files([good, bad])
    assert str(raised.value) == (
        f"diffusion.num_steps: given twice in {bad} (lines 2 and 4); YAML would keep the last "
        "one silently: write it once"
    )


def plan_and_products(tiny_model, **overrides):
    config = tiny_config(tiny_model, **REPORT_DEFAULTS, **overrides)
    plan = make_plan(config)
    return plan, make_products(config, plan)


@pytest.mark.parametrize(
    ("overrides", "key", "says"),
    [
        ({"output_dir": "out/" + "o" * (NAME_MAX + 1)}, "output_dir", "per name"),
        ({"run": "r" * (NAME_MAX + 1)}, "run", "per name"),
        ({"output_dir": "/".join(["d" * 200] * 25)}, "output_dir", "as an absolute path"),
    ],
    ids=["output_dir_name", "run", "output_dir_total"],
)
def test_outputs_beyond_the_limits_are_refused_naming_the_key(
    tiny_model, tmp_path, overrides, key, says
):
    overrides = {"output_dir": str(tmp_path / "out"), **overrides}
    plan, products = plan_and_products(tiny_model, **overrides)
    with pytest.raises(ConfigError, match=f"^{key}: .*{says}"):
        check_output_limits(plan, products)


def test_names_up_to_the_limit_pass_and_every_kind_is_checked(tiny_model, tmp_path):
    longest = str(tmp_path / ("o" * NAME_MAX))
    plan, products = plan_and_products(tiny_model, output_dir=longest, run="r" * 200)
    check_output_limits(plan, products)
    paths = written_paths(plan, products)
    assert any(f"/damaged/{plan.run}/" in path for path in paths)
    assert any(path.endswith(".pt") for path in paths)
    assert any(path.endswith(".log") for path in paths)


def test_inputs_beyond_the_limits_are_refused_naming_the_key(tmp_path):
    long_name = str(tmp_path / ("m" * (NAME_MAX + 1)) / "denoiser")
    with pytest.raises(ConfigError, match="^model_path: .*per name"):
        check_input_limits({"model_path": long_name})
    with pytest.raises(ConfigError, match="^dataset: .*per name"):
        check_input_limits({"model_path": "models", "dataset": long_name})

"""The config's paths: usable as written, every output under output_dir."""

import re

import pytest

from skyquilt.planning.errors import ConfigError
from skyquilt.planning.paths import check_output_paths, check_path


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("output_dir", "", "empty"),
        ("output_dir", "  ", "empty"),
        ("output_dir", "out/../..", "'..' part"),
        ("output_dir", "~/results", "not be expanded"),
        ("output_dir", "$HOME/results", "not be expanded"),
        ("output_dir", "${SCRATCH}/results", "brace"),
        ("output_dir", "out{x}", "wildcard"),
        ("output_dir", "out\nx", "control character"),
        ("run", "..", "plain directory name"),
        ("run", ".", "plain directory name"),
        ("run", "a/b", "plain directory name"),
    ],
)
def test_output_paths_that_leave_the_output_tree_are_refused(key, value, message):
    with pytest.raises(ConfigError, match=f"^{key}: .*{re.escape(message)}"):
        check_output_paths({key: value})


def test_output_paths_with_spaces_and_shell_characters_are_kept_as_written():
    odd = 'out dir/it\'s "$5" & (x); #!*?`'
    assert check_output_paths({"output_dir": odd, "run": "a.b-c_d"}) == (odd, "a.b-c_d")


def test_output_dir_inside_the_dataset_is_refused(tmp_path):
    config = {"output_dir": str(tmp_path / "era5.zarr/out"), "dataset": str(tmp_path / "era5.zarr")}
    with pytest.raises(ConfigError, match="^output_dir: .* lies inside dataset"):
        check_output_paths(config)


@pytest.mark.parametrize("value", ["", " ", None, "a\tb", "x{y}"])
def test_input_paths_must_be_usable(value):
    with pytest.raises(ConfigError, match="^model_path: "):
        check_path(value, "model_path")

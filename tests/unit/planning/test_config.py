"""Config parsing: trajectory sizes, start dates, SLURM times, memory, paths, integers."""

import datetime as dt
import re

import numpy as np
import pytest

from skyquilt.planning.config import (
    ConfigError,
    check_job_count,
    check_no_yaml_dates,
    check_output_paths,
    check_path,
    check_trajectory_ends,
    date_label,
    integral_floats,
    parse_memory,
    parse_slurm_time,
    parse_start_date,
    parse_start_dates,
    parse_trajectory_sizes,
)


@pytest.mark.parametrize(
    ("value", "sizes"),
    [
        (72, [72]),
        ("72", [72]),
        ("24,48", [24, 48]),
        ("24-26", [24, 25, 26]),
        ("48, 24-25", [24, 25, 48]),
    ],
)
def test_trajectory_sizes_accept_ints_lists_and_inclusive_ranges(value, sizes):
    assert parse_trajectory_sizes(value) == sizes


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("72-24", "reversed"),
        ("0", ">= 1"),
        ("24,,48", "malformed"),
        ("a", "malformed"),
        (True, "not"),
    ],
)
def test_bad_trajectory_sizes_say_what_is_wrong(value, message):
    with pytest.raises(ConfigError, match=f"trajectory_sizes: .*{message}"):
        parse_trajectory_sizes(value)


def test_start_dates_parse_and_label():
    moment = parse_start_date("2000-04-20 12h")
    assert moment == np.datetime64("2000-04-20T12", "ns")
    assert date_label(moment) == "2000-04-20T12"


@pytest.mark.parametrize("text", ["2000-02-30 0h", "2000-01-01 25h", "2000-01-01", "01-01-2000 0h"])
def test_impossible_or_malformed_dates_are_rejected(text):
    with pytest.raises(ConfigError, match="start_dates"):
        parse_start_date(text)


@pytest.mark.parametrize(
    ("value", "minutes"),
    [
        ("30", 30),
        ("6:00", 6),
        ("6:30", 7),
        ("1:00:00", 60),
        ("1-0", 1440),
        ("1-2:30", 1590),
        ("0-0:0:30", 1),
    ],
)
def test_slurm_times_in_every_format(value, minutes):
    assert parse_slurm_time(value, "hardware.gen.time") == minutes


def test_unquoted_slurm_time_asks_to_quote_it():
    with pytest.raises(ConfigError, match="quote it"):
        parse_slurm_time(360, "hardware.gen.time")


@pytest.mark.parametrize(
    ("value", "megabytes"), [("60GB", 60000), ("512MB", 512), (2048, 2048), ("1GiB", 1074)]
)
def test_memory_sizes_become_mem_mb(value, megabytes):
    assert parse_memory(value, "hardware.gen.ram") == megabytes


def test_bad_memory_names_the_key():
    with pytest.raises(ConfigError, match="hardware.gen.ram"):
        parse_memory("lots", "hardware.gen.ram")


def test_sizes_beyond_the_bound_are_refused_before_a_range_is_expanded():
    with pytest.raises(ConfigError, match=r"^trajectory_sizes: .*<= 100000$"):
        parse_trajectory_sizes("1-100000000000000")  # would take hours to expand
    assert parse_trajectory_sizes(72.0) == [72]
    with pytest.raises(ConfigError, match="trajectory_sizes"):
        parse_trajectory_sizes(72.5)


@pytest.mark.parametrize("text", ["2300-01-01 0h", "1600-01-01 0h", "2262-04-12 0h"])
def test_dates_the_time_axis_cannot_hold_are_refused_not_wrapped(text):
    with pytest.raises(ConfigError, match=r"^start_dates: .*outside the time axis"):
        parse_start_date(text)
    assert parse_start_date("2262-04-11 23h") == np.datetime64("2262-04-11T23", "ns")


def test_one_instant_written_twice_is_refused():
    assert parse_start_dates(["2000-04-03 0h", "2000-04-03 1h"]) == [
        "2000-04-03T00",
        "2000-04-03T01",
    ]
    with pytest.raises(ConfigError, match="'2000-04-03 0h' and '2000-04-03 00h' are the same"):
        parse_start_dates(["2000-04-03 0h", "2000-04-03 00h"])


def test_trajectories_must_end_within_the_time_axis():
    check_trajectory_ends(["2262-04-11T12"], 12, 1)
    with pytest.raises(ConfigError, match="^start_dates: the 13-state trajectory from 2262"):
        check_trajectory_ends(["2262-04-11T12"], 13, 1)


def test_too_many_generation_jobs_name_the_largest_factor():
    check_job_count(10, 100, 100)
    with pytest.raises(ConfigError, match="^num_samples_per_date: .* = 100001 generation jobs"):
        check_job_count(1, 1, 100_001)
    with pytest.raises(ConfigError, match="^trajectory_sizes: 1000 trajectory size"):
        check_job_count(1000, 2, 200)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"start_dates": [dt.date(2000, 4, 3)]},
            'start_dates.0: 2000-04-03 is a YAML date.*"2000-04-03 0h"',
        ),
        (
            {"start_dates": ["2000-04-03 0h", dt.datetime(2000, 4, 20, 12)]},
            'start_dates.1: .* YAML timestamp.*"2000-04-20 12h"',
        ),
        ({"start_dates": [dt.datetime(2000, 4, 20, 12, 30)]}, "start_dates.0: .*whole hours only"),
        (
            {"evaluate": {"climatology_period": [dt.date(1999, 7, 1), "2000-01-01"]}},
            'evaluate.climatology_period.0: .*"1999-07-01"',
        ),
    ],
)
def test_yaml_dates_say_how_to_write_them(config, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        check_no_yaml_dates(config)


def test_integral_floats_become_integers_where_the_schema_asks_for_integers():
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "x": {"type": "number"},
            "sizes": {"type": ["integer", "string"]},
            "job": {"$ref": "#/$defs/job"},
            "list": {"type": "array", "items": {"type": "integer"}},
            "maybe": {"oneOf": [{"type": "integer"}, {"type": "null"}]},
        },
        "$defs": {"job": {"type": "object", "properties": {"cpus": {"type": "integer"}}}},
    }
    config = {"n": 2.0, "x": 2.0, "sizes": 72.0, "job": {"cpus": 4.0}, "list": [1.0, 2.5]}
    config["maybe"] = 3.0
    integral_floats(config, schema)
    assert config == {
        "n": 2,
        "x": 2.0,
        "sizes": 72,
        "job": {"cpus": 4},
        "list": [1, 2.5],
        "maybe": 3,
    }
    assert all(type(config[key]) is int for key in ("n", "sizes", "maybe"))
    assert type(config["x"]) is float and type(config["list"][1]) is float


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

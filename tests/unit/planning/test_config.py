"""Config parsing: trajectory sizes, start dates, SLURM times and memory."""

import numpy as np
import pytest

from skyquilt.planning.config import (
    ConfigError,
    date_label,
    parse_memory,
    parse_slurm_time,
    parse_start_date,
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

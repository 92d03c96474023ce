"""The ensemble a config asks for: trajectory sizes and the number of generation jobs."""

import pytest

from skyquilt.planning.ensemble import check_job_count, parse_trajectory_sizes
from skyquilt.planning.errors import ConfigError


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


def test_sizes_beyond_the_bound_are_refused_before_a_range_is_expanded():
    with pytest.raises(ConfigError, match=r"^trajectory_sizes: .*<= 100000$"):
        parse_trajectory_sizes("1-100000000000000")  # would take hours to expand
    assert parse_trajectory_sizes(72.0) == [72]
    with pytest.raises(ConfigError, match="trajectory_sizes"):
        parse_trajectory_sizes(72.5)


def test_too_many_generation_jobs_name_the_largest_factor():
    check_job_count(10, 100, 100)
    with pytest.raises(ConfigError, match="^num_samples_per_date: .* = 100001 generation jobs"):
        check_job_count(1, 1, 100_001)
    with pytest.raises(ConfigError, match="^trajectory_sizes: 1000 trajectory size"):
        check_job_count(1000, 2, 200)

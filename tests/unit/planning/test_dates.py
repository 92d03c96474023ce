"""Start dates: their format, labels, the time axis's bounds, and instants written twice."""

import numpy as np
import pytest

from skyquilt.planning.dates import (
    check_trajectory_ends,
    date_label,
    parse_start_date,
    parse_start_dates,
)
from skyquilt.planning.errors import ConfigError


def test_start_dates_parse_and_label():
    moment = parse_start_date("2000-04-20 12h")
    assert moment == np.datetime64("2000-04-20T12", "ns")
    assert date_label(moment) == "2000-04-20T12"


@pytest.mark.parametrize("text", ["2000-02-30 0h", "2000-01-01 25h", "2000-01-01", "01-01-2000 0h"])
def test_impossible_or_malformed_dates_are_rejected(text):
    with pytest.raises(ConfigError, match="start_dates"):
        parse_start_date(text)


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

"""What YAML makes of values: unquoted dates refused, integral floats made integers."""

import datetime as dt

import pytest

from skyquilt.planning.errors import ConfigError
from skyquilt.planning.yaml_values import check_no_yaml_dates, integral_floats


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

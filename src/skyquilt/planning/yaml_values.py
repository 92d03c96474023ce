"""What YAML makes of a config's values before skyquilt reads them.

YAML turns an unquoted date (2000-04-20) or timestamp into a date object, and keeps 2.0 a
float where the schema asks for an integer: `check_no_yaml_dates` refuses the first with a line
saying how to write it, `normalise_integers` makes the second the integer it equals.
"""

import datetime as dt

from skyquilt.planning.errors import ConfigError


def _date_line(key: str, value: dt.date) -> str:
    """How to write a YAML date or timestamp found at `key` as the text skyquilt expects."""
    kind = "timestamp" if isinstance(value, dt.datetime) else "date"
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    whole_hour = not isinstance(value, dt.datetime) or (
        value.minute == value.second == value.microsecond == 0
    )
    hour = value.hour if isinstance(value, dt.datetime) else 0
    if key.split(".")[0] == "start_dates":
        form = "'YYYY-MM-DD Hh'"
        example = f"{value:%Y-%m-%d} {hour}h" if whole_hour else "2000-04-20 12h"
    else:
        form = "'YYYY-MM-DD'"
        example = f"{value:%Y-%m-%d}" + (f"T{hour:02d}" if hour else "")
    return (
        f"{key}: {value} is a YAML {kind}, not text; write it as a quoted string {form}, "
        f'e.g. "{example}"' + ("" if whole_hour else " (whole hours only)")
    )


def check_no_yaml_dates(config: object, key: str = "") -> None:
    """No value of the config is a YAML date or timestamp (an unquoted 2000-04-20 12:00:00).

    skyquilt reads dates as strings; YAML turns unquoted dates into date objects, which the
    schema would only call "not of type 'string'".
    """
    if isinstance(config, dt.date):
        raise ConfigError(_date_line(key or "config", config))
    if isinstance(config, dict):
        for name, value in config.items():
            check_no_yaml_dates(value, f"{key}.{name}" if key else str(name))
    elif isinstance(config, list):
        for index, value in enumerate(config):
            check_no_yaml_dates(value, f"{key}.{index}")


def _integer_only(node: dict) -> bool:
    types = node.get("type", [])
    types = [types] if isinstance(types, str) else types
    return "integer" in types and "number" not in types


def integral_floats(value: object, schema: dict, node: dict | None = None) -> object:
    """`value` with every float that equals an integer (2.0) turned into that integer wherever
    `schema` asks for an integer; other floats (2.5) are left for the schema to refuse.

    So a YAML 2.0 means 2 in every job, never a float where an integer is used. Walks
    properties, items, $ref (#/$defs/...), oneOf and anyOf; changes dicts and lists in place.
    """
    node = schema if node is None else node
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rpartition("/")[2]]
    for alternative in (*node.get("oneOf", ()), *node.get("anyOf", ())):
        value = integral_floats(value, schema, alternative)
    if isinstance(value, float) and value.is_integer() and _integer_only(node):
        return int(value)
    if isinstance(value, dict):
        for name, child in node.get("properties", {}).items():
            if name in value:
                value[name] = integral_floats(value[name], schema, child)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for index, item in enumerate(value):
            value[index] = integral_floats(item, schema, node["items"])
    return value


def normalise_integers(config: dict, schema_file: str) -> dict:
    """`integral_floats` of the config against the schema in `schema_file` (YAML)."""
    import yaml

    # libyaml's loader where PyYAML has it: the pure-Python one takes 40-60 ms per schema,
    # on every parse of the workflow.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(schema_file, encoding="utf-8") as file:
        schema = yaml.load(file, Loader=loader)
    return integral_floats(config, schema)

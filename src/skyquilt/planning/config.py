"""Parsing and semantic checks of the workflow config.

The JSON schema (config/schema.yaml) checks types and shapes; the functions here check
meaning: date formats, size ranges, SLURM times, and the consistency of the config with
the model it points at. Every failure is a `ConfigError` whose message is one line naming
the key, the value and what is allowed.
"""

import datetime as dt
import math
import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import NoReturn, TypeVar

import numpy as np

START_DATE_PATTERN = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (\d{1,2})h$")
SLURM_TIME_PATTERN = re.compile(
    r"^(?:(?P<days>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?"
    r"|(?P<a>\d+)(?::(?P<b>\d+)(?::(?P<c>\d+))?)?)$"
)
MEMORY_UNITS = {"": 1e-6, "b": 1e-6, "kb": 1e-3, "mb": 1, "gb": 1e3, "tb": 1e6}
MEMORY_UNITS |= {"kib": 1024 / 1e6, "mib": 1.048576, "gib": 1073.741824, "tib": 1099511.627776}
MEMORY_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
# Upper bounds (README, Configuration): beyond them a config is a mistake, and planning it
# would build lists of millions of jobs before saying so.
MAX_TRAJECTORY_SIZE = 100_000
MAX_GENERATION_JOBS = 100_000
# The time axes are datetime64[ns], which hold 1678-09-21T00:12:43 to 2262-04-11T23:47:16;
# whole hours from FIRST_HOUR to LAST_HOUR are represented exactly, others would wrap around.
FIRST_HOUR = dt.datetime(1678, 9, 22, 0)
LAST_HOUR = dt.datetime(2262, 4, 11, 23)
# An environment variable as a shell would expand it: Snakemake does not, so "$HOME/x"
# would be a directory named "$HOME".
ENVIRONMENT_VARIABLE = re.compile(r"\$(\{|[A-Za-z_])")


class ConfigError(ValueError):
    """A config value that cannot be used; the message is one line naming the key."""


Result = TypeVar("Result")


def fail(message: object) -> NoReturn:
    """Stop parsing the workflow with one line that names the key and what is allowed."""
    print(f"skyquilt config error: {message}", file=sys.stderr)
    sys.exit(1)


def checked(check: Callable[..., Result], *args: object, **kwargs: object) -> Result:
    """check(*args, **kwargs), or `fail` with one line when it refuses the config.

    Catches this module's ConfigError and the schema errors of `snakemake.utils.validate`.
    """
    from snakemake.exceptions import WorkflowError

    try:
        return check(*args, **kwargs)
    except ConfigError as error:
        fail(error)
    except WorkflowError as error:
        fail(schema_error_line(error))


def parse_trajectory_sizes(value: int | str, key: str = "trajectory_sizes") -> list[int]:
    """Sizes from an int or a string of comma-separated items and inclusive ranges.

    "24,48" -> [24, 48]; "24-26" -> [24, 25, 26]; 72 -> [72]. Sorted, without repeats. Every
    size is at most MAX_TRAJECTORY_SIZE, checked before a range is expanded.
    """
    allowed = 'a positive int or a string like "72", "24,48" or "24-26"'
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"{key}: {value!r} is not {allowed}")
    sizes: set[int] = set()
    for item in str(value).split(","):
        item = item.strip()
        bounds = item.split("-")
        if not item or len(bounds) > 2 or not all(bound.strip().isdigit() for bound in bounds):
            raise ConfigError(f"{key}: {value!r} has a malformed item {item!r}; expected {allowed}")
        low, high = int(bounds[0]), int(bounds[-1])
        if low > high:
            raise ConfigError(f"{key}: range {item!r} is reversed; write it as '{high}-{low}'")
        if low <= 0:
            raise ConfigError(f"{key}: {value!r} contains {low}; sizes must be >= 1")
        if high > MAX_TRAJECTORY_SIZE:
            raise ConfigError(
                f"{key}: {value!r} contains {high}; sizes must be <= {MAX_TRAJECTORY_SIZE}"
            )
        sizes.update(range(low, high + 1))
    return sorted(sizes)


def _hour_text(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d} {moment.hour}h"


def parse_start_date(text: str, key: str = "start_dates") -> np.datetime64:
    """'YYYY-MM-DD Hh' (e.g. '2000-04-20 12h') -> datetime64[ns].

    Refuses a date outside what datetime64[ns] represents exactly (FIRST_HOUR to LAST_HOUR)
    instead of letting it wrap around to another date.
    """
    match = START_DATE_PATTERN.match(text) if isinstance(text, str) else None
    if not match:
        raise ConfigError(f"{key}: {text!r} is not a date like '2000-04-20 12h' ('YYYY-MM-DD Hh')")
    year, month, day, hour = (int(group) for group in match.groups())
    if hour > 23:
        raise ConfigError(f"{key}: {text!r} has hour {hour}; hours run from 0h to 23h")
    try:
        moment = dt.datetime(year, month, day, hour)
    except ValueError as error:
        raise ConfigError(f"{key}: {text!r} is not a calendar date ({error})") from None
    if not FIRST_HOUR <= moment <= LAST_HOUR:
        raise ConfigError(
            f"{key}: {text!r} is outside the time axis (datetime64[ns]), which holds "
            f"'{_hour_text(FIRST_HOUR)}' to '{_hour_text(LAST_HOUR)}'"
        )
    return np.datetime64(moment, "ns")


def parse_start_dates(texts: list[str], key: str = "start_dates") -> list[str]:
    """The path labels of the start dates; one instant written twice, in any way, is refused."""
    seen: dict[str, str] = {}
    for text in texts:
        label = date_label(parse_start_date(text, key))
        if label in seen:
            if seen[label] == text:
                raise ConfigError(f"{key}: {text!r} is listed twice")
            raise ConfigError(
                f"{key}: {seen[label]!r} and {text!r} are the same start date ({label}); "
                "list it once"
            )
        seen[label] = text
    return list(seen)


def check_trajectory_ends(labels: list[str], size: int, blanket_dt: int) -> None:
    """The longest trajectory from every start date ends within the time axis (LAST_HOUR)."""
    hours = (size - 1) * blanket_dt
    for label in labels:
        start = dt.datetime.fromisoformat(label)
        if (LAST_HOUR - start) / dt.timedelta(hours=1) < hours:
            raise ConfigError(
                f"start_dates: the {size}-state trajectory from {label} ({blanket_dt} h apart) "
                f"ends past '{_hour_text(LAST_HOUR)}', the last hour of the time axis "
                "(datetime64[ns])"
            )


def check_job_count(sizes: int, dates: int, samples: int) -> None:
    """At most MAX_GENERATION_JOBS generation jobs; the line names the largest factor."""
    jobs = sizes * dates * samples
    if jobs <= MAX_GENERATION_JOBS:
        return
    factors = {"num_samples_per_date": samples, "trajectory_sizes": sizes, "start_dates": dates}
    key = max(factors, key=factors.__getitem__)
    raise ConfigError(
        f"{key}: {sizes} trajectory size(s) x {dates} start date(s) x {samples} member(s) = "
        f"{jobs} generation jobs; at most {MAX_GENERATION_JOBS} per run (split the ensemble "
        "into runs with different `run` names)"
    )


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


def check_path(value: object, key: str) -> str:
    """A path from the config that Snakemake can use as written; ConfigError naming `key`.

    Refused: empty or blank, control characters (a newline), braces (Snakemake reads
    {name} as a wildcard), a leading ~ or an environment variable ($HOME, ${X}), which
    nothing expands, so that the files would land in a directory literally named so.
    """
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: {value!r} is empty; give a path")
    if any(ord(character) < 32 or ord(character) == 127 for character in value):
        raise ConfigError(f"{key}: {value!r} contains a control character (a newline?)")
    if "{" in value or "}" in value:
        raise ConfigError(
            f"{key}: {value!r} contains a brace, which Snakemake reads as a wildcard; "
            "rename the directory"
        )
    if value.startswith("~") or ENVIRONMENT_VARIABLE.search(value):
        raise ConfigError(
            f"{key}: {value!r} would not be expanded (no ~ or $VARIABLE expansion); "
            "write the path out in full"
        )
    return value


def check_output_paths(config: dict) -> tuple[str, str]:
    """(output_dir, run) that keep every output under output_dir/prior/run and logs/run.

    output_dir: a usable path (`check_path`) without '..' parts and not inside the model or
    dataset; run: one plain directory name (the schema allows letters, digits, _ . -).
    """
    output_dir = check_path(config.get("output_dir", "results"), "output_dir")
    if ".." in output_dir.replace("\\", "/").split("/"):
        raise ConfigError(
            f"output_dir: {output_dir!r} has a '..' part; give the directory itself, "
            "without climbing out of it"
        )
    run = config.get("run", "default")
    if not isinstance(run, str) or run in ("", ".", "..") or "/" in run or "\\" in run:
        raise ConfigError(
            f"run: {run!r} is not a plain directory name; use letters, digits, '_', '.' and "
            "'-' (not '.' or '..')"
        )
    resolved = os.path.realpath(output_dir)
    for name in ("model_path", "dataset"):
        if not isinstance(config.get(name), str) or not config[name].strip():
            continue
        inside = os.path.realpath(config[name])
        if resolved == inside or resolved.startswith(inside.rstrip(os.sep) + os.sep):
            raise ConfigError(
                f"output_dir: {output_dir!r} lies inside {name} {config[name]!r}; outputs "
                f"would be written into it"
            )
    return output_dir, run


def date_label(moment: np.datetime64) -> str:
    """The path label of a start date: 'YYYY-MM-DDTHH'."""
    return str(np.datetime64(moment, "h"))


def label_date(label: str) -> np.datetime64:
    """Inverse of `date_label`."""
    return np.datetime64(label, "ns")


def parse_slurm_time(value: str | int, key: str) -> int:
    """A SLURM time limit in minutes (rounded up): M, M:S, H:M:S, D-H, D-H:M, D-H:M:S."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ConfigError(f'{key}: {value!r} is not a SLURM time such as "6:00" or "1-12:00:00"')
    if isinstance(value, int):
        raise ConfigError(
            f"{key}: {value!r} is an integer; YAML reads an unquoted time such as 6:00 as "
            f'minutes*60+seconds, so quote it in SLURM\'s format, e.g. "6:00:00" for six hours'
        )
    match = SLURM_TIME_PATTERN.match(str(value).strip())
    if not match:
        raise ConfigError(
            f"{key}: {value!r} is not a SLURM time; allowed: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S"
        )
    parts = match.groupdict()
    if parts["days"] is not None:
        days, hours = int(parts["days"]), int(parts["dh"])
        minutes, seconds = int(parts["dm"] or 0), int(parts["ds"] or 0)
    else:
        numbers = [int(part) for part in (parts["a"], parts["b"], parts["c"]) if part is not None]
        days = 0
        hours, minutes, seconds = (
            (0, numbers[0], 0)
            if len(numbers) == 1
            else (0, numbers[0], numbers[1])
            if len(numbers) == 2
            else tuple(numbers)
        )
    total = days * 1440 + hours * 60 + minutes + math.ceil(seconds / 60)
    if total <= 0:
        raise ConfigError(f"{key}: {value!r} is zero; a job needs a positive time limit")
    return total


def parse_memory(value: str | int, key: str) -> int:
    """Memory in MB (Snakemake's mem_mb): '60GB' -> 60000, '512MiB' -> 537, 2048 -> 2048."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = MEMORY_PATTERN.match(str(value))
    unit = match.group(2).lower() if match else None
    if not match or unit not in MEMORY_UNITS or float(match.group(1)) <= 0:
        raise ConfigError(f'{key}: {value!r} is not a memory size such as "60GB" or "512MB"')
    return max(1, math.ceil(float(match.group(1)) * MEMORY_UNITS[unit]))


def check_overlap(overlap: int, blanket_size: int, source: str) -> None:
    """0 <= overlap < blanket_size, or a ConfigError naming the model that sets K."""
    if not 0 <= overlap < blanket_size:
        raise ConfigError(
            f"blanket_overlap: {overlap} must be in [0, {blanket_size - 1}]: the blanket size "
            f"of {source} is {blanket_size}"
        )


def check_unique(values: Iterable[str], key: str) -> None:
    """No value listed twice."""
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ConfigError(f"{key}: {value!r} is listed twice")
        seen.add(value)


def schema_error_line(error: Exception) -> str:
    """One line from Snakemake's schema validation error: the key path and the problem."""
    import jsonschema

    for cause in (*getattr(error, "args", ()), error.__cause__, error.__context__):
        if isinstance(cause, jsonschema.ValidationError):
            key = ".".join(str(part) for part in cause.absolute_path) or "config"
            # Patterns and unknown keys say what is wrong, not what is allowed: add that.
            if cause.validator == "additionalProperties":
                return f"{key}: {cause.message}; allowed: {', '.join(cause.schema['properties'])}"
            if cause.validator == "pattern" and "description" in cause.schema:
                return f"{key}: {cause.instance!r} is not {cause.schema['description']}"
            return f"{key}: {cause.message}"
    return str(error).strip().splitlines()[-1]

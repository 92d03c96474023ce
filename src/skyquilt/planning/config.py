"""Parsing and semantic checks of the workflow config.

The JSON schema (config/schema.yaml) checks types and shapes; the functions here check
meaning: date formats, size ranges, SLURM times, and the consistency of the config with
the model it points at. Every failure is a `ConfigError` whose message is one line naming
the key, the value and what is allowed.
"""

import datetime as dt
import math
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

    "24,48" -> [24, 48]; "24-26" -> [24, 25, 26]; 72 -> [72]. Sorted, without repeats.
    """
    allowed = 'a positive int or a string like "72", "24,48" or "24-26"'
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
        sizes.update(range(low, high + 1))
    return sorted(sizes)


def parse_start_date(text: str, key: str = "start_dates") -> np.datetime64:
    """'YYYY-MM-DD Hh' (e.g. '2000-04-20 12h') -> datetime64[ns]."""
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
    return np.datetime64(moment, "ns")


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

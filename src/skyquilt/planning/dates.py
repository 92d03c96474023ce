"""Start dates: 'YYYY-MM-DD Hh' in the config, 'YYYY-MM-DDTHH' in paths.

Only instants that the time axes (datetime64[ns]) hold exactly are accepted, and every
trajectory must end within them.
"""

import datetime as dt
import re

import numpy as np

from skyquilt.planning.errors import ConfigError

START_DATE_PATTERN = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (\d{1,2})h$")
# The time axes are datetime64[ns], which hold 1678-09-21T00:12:43 to 2262-04-11T23:47:16;
# whole hours from FIRST_HOUR to LAST_HOUR are represented exactly, others would wrap around.
FIRST_HOUR = dt.datetime(1678, 9, 22, 0)
LAST_HOUR = dt.datetime(2262, 4, 11, 23)


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


def date_label(moment: np.datetime64) -> str:
    """The path label of a start date: 'YYYY-MM-DDTHH'."""
    return str(np.datetime64(moment, "h"))


def label_date(label: str) -> np.datetime64:
    """Inverse of `date_label`."""
    return np.datetime64(label, "ns")

"""Names and options of samplers and noise schedules, checked without importing torch.

The workflow validates `diffusion.sampler` when it is parsed; keeping this table apart from
the samplers themselves keeps `snakemake -n` free of torch's import time.
"""

import math
from collections.abc import Mapping
from numbers import Real
from typing import Any

SCHEDULES = ("rectified", "log_linear")

SAMPLERS: dict[str, dict[str, Any]] = {
    "lms": {"order": 3},
    "ddpm": {},
    "ddim": {"eta": 0.0},
    "pc": {"corrections": 1, "delta": 0.01},
    "rewind": {"rewind_after": 16, "jump": 4},
}


# The largest LMS order: higher orders are numerically useless, and the sampler's
# coefficients take a loop over the order.
MAX_ORDER = 10


def check_integer(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """`value` as an int if it is an integer (2 or 2.0, not a bool) in [minimum, maximum],
    else a ValueError naming `name`."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    inside = not isinstance(value, bool) and isinstance(value, int) and value >= minimum
    if not inside or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"sampler option {name} must be an integer {bound}, got {value!r}")
    return value


def _real(name: str, value: Any, low: float, high: float, low_open: bool = False) -> float:
    inside = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    inside = inside and (low < value if low_open else low <= value) and value <= high
    if not inside:
        bound = f"{'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"sampler option {name} must be a number in {bound}, got {value!r}")
    return float(value)


def resolve_options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options of sampler `name`: its defaults updated by `options`, validated.

    Raises ValueError naming the allowed samplers or options, or the bad value.

    Arguments:
        name: one of SAMPLERS.
        options: the options to change; None keeps the defaults.

    Returns:
        Every option of the sampler, {} for one without options.
    """
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; allowed: {', '.join(SAMPLERS)}")
    allowed = SAMPLERS[name]
    unknown = sorted(set(options or {}) - set(allowed))
    if unknown:
        names = ", ".join(allowed) if allowed else "none"
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for sampler {name!r}; allowed: {names}"
        )
    resolved = {**allowed, **(options or {})}
    if "order" in resolved:
        resolved["order"] = check_integer("order", resolved["order"], 1, MAX_ORDER)
    if "eta" in resolved:
        # eta > 1 asks for more noise than the step removes: the DDIM update turns NaN.
        resolved["eta"] = _real("eta", resolved["eta"], 0.0, 1.0)
    if "corrections" in resolved:
        resolved["corrections"] = check_integer("corrections", resolved["corrections"], 0)
    if "delta" in resolved:
        resolved["delta"] = _real("delta", resolved["delta"], 0.0, 1.0, low_open=True)
    if "rewind_after" in resolved:
        rewind_after = check_integer("rewind_after", resolved["rewind_after"], 1)
        jump = check_integer("jump", resolved["jump"], 0)
        resolved["rewind_after"], resolved["jump"] = rewind_after, jump
        if jump >= rewind_after:
            raise ValueError(
                f"sampler option jump must be < rewind_after = {rewind_after}, got {jump}"
            )
    return resolved


def check_schedule(name: str, sigma_min: float, sigma_max: float) -> None:
    """A ValueError unless `name` spans VE noise levels [sigma_min, sigma_max]."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown noise schedule {name!r}; allowed: {', '.join(SCHEDULES)}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}")
    if name == "rectified" and not sigma_min < 1 < sigma_max:
        # A rectified path reaches VE noise levels sigma_t / alpha_t on both sides of 1 only.
        raise ValueError(
            f"the rectified schedule needs sigma_min < 1 < sigma_max, "
            f"got {sigma_min} and {sigma_max}"
        )

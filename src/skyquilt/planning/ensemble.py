"""The ensemble a config asks for: trajectory sizes, the number of generation jobs, the
blanket overlap."""

from skyquilt.planning.errors import ConfigError

# Upper bounds (config/README.md, what the checks accept): beyond them a config is a mistake,
# and planning it would build lists of millions of jobs before saying so.
MAX_TRAJECTORY_SIZE = 100_000
MAX_GENERATION_JOBS = 100_000


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


def check_overlap(overlap: int, blanket_size: int, source: str) -> None:
    """0 <= overlap < blanket_size, or a ConfigError naming the model that sets K."""
    if not 0 <= overlap < blanket_size:
        raise ConfigError(
            f"blanket_overlap: {overlap} must be in [0, {blanket_size - 1}]: the blanket size "
            f"of {source} is {blanket_size}"
        )

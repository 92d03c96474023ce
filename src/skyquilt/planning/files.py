"""The config against the files: config files as written, and paths the file system can hold.

Snakemake reads the config files (`configfile:`, `--configfile`) with a YAML reader that keeps
the last of two equal keys silently; `check_config_files` reads them again, strictly, and
refuses a key given twice at any depth, naming both lines. `check_path_limits` and
`check_output_limits` hold every path of the config, and every path the run would write
below `output_dir` (with the temporary names of atomic writes), against the limits of the
file system it lies on: the length of one name (NAME_MAX, usually 255 bytes) and of a whole
path (PATH_MAX, usually 4096 bytes). A path beyond them fails with one line naming the key,
instead of a traceback from the first job that writes it.
"""

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from skyquilt.io.strict_yaml import find_duplicate_key
from skyquilt.planning.errors import ConfigError
from skyquilt.planning.plan import Plan
from skyquilt.planning.products import Products

# What an atomic write adds to a name: ".<name>.tmp-<8 hex>" (skyquilt.io.atomic).
TEMPORARY_EXTRA = len("..tmp-") + 8
# The name of one verify run's directory under <output_dir>/damaged/<run>: a UTC time.
VERIFY_STAMP = "20000101T000000"
# Shown of a name that is too long.
SHOWN = 40


def check_config_files(paths: Iterable[str | os.PathLike]) -> None:
    """No config file gives a key twice in one mapping (at any depth)."""
    for path in paths:
        try:
            found = find_duplicate_key(Path(path).read_text())
        except (OSError, yaml.YAMLError):
            continue  # Snakemake has read it already and reports its own errors
        if found is not None:
            raise ConfigError(
                f"{found.key}: given twice in {path} (lines {found.first_line} and "
                f"{found.second_line}); YAML would keep the last one silently: write it once"
            )


def _limits(path: str) -> tuple[int, int]:
    """(NAME_MAX, PATH_MAX) of the file system that holds `path` or its nearest ancestor."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    try:
        return os.pathconf(existing, "PC_NAME_MAX"), os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 255, 4096


def _bytes(text: str) -> int:
    return len(os.fsencode(text))


def check_input_limits(config: dict) -> None:
    """model_path and dataset fit the limits of their file systems."""
    for key in ("model_path", "dataset"):
        if isinstance(config.get(key), str):
            check_path_limits(config[key], key)


def _long_name(path: str, name_max: int, extra: int) -> tuple[str, int] | None:
    """The first name of `path` longer than `name_max` bytes (the last one `extra` bytes
    longer), with its length; None when all fit."""
    parts = Path(path).parts
    for index, part in enumerate(parts):
        length = _bytes(part) + (extra if index == len(parts) - 1 else 0)
        if length > name_max:
            return part, length
    return None


def check_path_limits(path: str, key: str, extra: int = 0) -> None:
    """`path` (its last name `extra` bytes longer, for a temporary name) fits the limits of
    its file system; else a ConfigError naming `key`."""
    name_max, path_max = _limits(path)
    long_name = _long_name(path, name_max, extra)
    if long_name is not None:
        part, length = long_name
        raise ConfigError(
            f"{key}: {path[: SHOWN * 2]!r}... has a name of {length} bytes "
            f"({part[:SHOWN]!r}...); its file system allows {name_max} per name"
        )
    length = _bytes(os.path.abspath(path)) + extra
    if length >= path_max:
        raise ConfigError(
            f"{key}: {path[: SHOWN * 2]!r}... is {length} bytes long as an absolute path; its "
            f"file system allows {path_max - 1}"
        )


def written_paths(plan: Plan, products: Products) -> list[str]:
    """The longest paths of each kind that the run writes: its last member's shard,
    checkpoint, logs, decoded member, animations and frames, the aggregate, the evaluation,
    the statistics, and where `verify` moves them."""
    size, label, member = plan.sizes[-1], plan.date_labels[-1], plan.members[-1]
    fields = [field.label for field in products.render_fields or []] or ["field"]
    outputs = [
        plan.shard_path(size, label, member),
        plan.trajectories_path(size),
        products.decoded_path(size, label, member),
        products.statistics_path(size, label),
        products.latent_statistics_path(size),
        products.evaluation_path(size, "rank_histogram.png"),
    ]
    for field in fields:
        outputs.append(products.animation_path(size, label, member, field, "gif"))
        outputs.append(f"{products.frames_dir(size, label, member, field, 0)}/00000.png")
        outputs.append(products.gallery_path(size, label, field))
    moved = [
        f"{plan.output_dir}/damaged/{plan.run}/{VERIFY_STAMP}/"
        f"{os.path.relpath(path, plan.prior_dir)}"
        for path in outputs
    ]
    logs = [
        plan.log_path(f"generate/{size}h/{label}/{member}"),
        plan.log_path(f"render/{size}h/animation/{label}/{member}/{fields[-1]}"),
    ]
    return [*outputs, *moved, *logs, plan.checkpoint_path(size, label, member)]


def _key_of(path: str, plan: Plan, fields: Sequence[str]) -> str:
    """The config key to shorten when `path`, written by the run, is too long: the one that
    gave its overlong name (run, a render field), else output_dir."""
    long_name = _long_name(path, _limits(path)[0], TEMPORARY_EXTRA)
    if long_name is not None:
        part = long_name[0]
        if part == plan.run and part not in Path(plan.output_dir).parts:
            return "run"
        if any(field in part for field in fields):
            return "render.fields"
    return "output_dir"


def check_output_limits(plan: Plan, products: Products) -> None:
    """Every path that the run writes below output_dir fits its file system's limits."""
    fields = [field.label for field in products.render_fields or []]
    for path in written_paths(plan, products):
        check_path_limits(path, _key_of(path, plan, fields), TEMPORARY_EXTRA)

"""The config's paths (model_path, dataset, output_dir, run), checked so that Snakemake can use
them as written and every output stays under output_dir."""

import os
import re

from skyquilt.planning.errors import ConfigError

# An environment variable as a shell would expand it: Snakemake does not, so "$HOME/x"
# would be a directory named "$HOME".
ENVIRONMENT_VARIABLE = re.compile(r"\$(\{|[A-Za-z_])")


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

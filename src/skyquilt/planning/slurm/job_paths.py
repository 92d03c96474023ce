"""Paths that survive the way a SLURM job's command line is quoted.

A job submitted through Snakemake's SLURM executor carries the run's paths on two command
lines: Snakemake 9.27 lists the files the job waits for (`--wait-for-files`) quoted with
Python's `repr`, which a shell reads back unchanged without single quotes, backslashes and
unprintable characters (with them, only in some combinations and submission modes, so they
are refused outright: one rule a user can follow); and the plugin hands that command to
`sbatch --wrap="..."`, whose double quotes let the shell that runs sbatch expand `$` and
backquotes, unless the command goes to sbatch as a script (`--slurm-pass-command-as-script`).
Checked when the DAG is built, before any job is submitted, so that such a path fails in one
line instead of inside every job. Imports only `skyquilt.planning.errors`.
"""

from skyquilt.planning.errors import ConfigError

# Keys whose paths (or the paths under them) are inputs and outputs of SLURM jobs.
PATH_KEYS = ("model_path", "dataset", "output_dir")
# Characters that Snakemake's quoting for a SLURM job does not reliably keep.
NEVER = ("'", "\\")
# Characters that the shell running `sbatch --wrap="..."` expands.
EXPANDED_BY_WRAP = ("$", "`")
SCRIPT_OPTION = "--slurm-pass-command-as-script"


def run_paths(config: dict) -> dict[str, str]:
    """The paths of `PATH_KEYS` that the config sets (output_dir: default 'results')."""
    paths = {"output_dir": config.get("output_dir", "results")}
    paths |= {key: config[key] for key in ("model_path", "dataset") if config.get(key)}
    return {key: value for key, value in paths.items() if isinstance(value, str)}


def unquotable(path: str) -> str | None:
    """The first character of `path` that a SLURM submission may change, or None."""
    for character in path:
        if character in NEVER or not character.isprintable():
            return character
    return None


def check_slurm_paths(config: dict, pass_command_as_script: bool) -> None:
    """ConfigError naming the key when a path of the run cannot reach a SLURM job intact.

    pass_command_as_script: whether the run passes `--slurm-pass-command-as-script`, with
    which `$` and backquotes reach the job unexpanded.
    """
    for key, path in run_paths(config).items():
        character = unquotable(path)
        if character is not None:
            raise ConfigError(
                f"{key}: {path!r} contains {character!r}, which Snakemake's SLURM submission "
                "does not reliably quote for the job's shell; paths of SLURM runs may hold "
                "any printable character but ' and \\ (rename the directory, or run here "
                "with --cores N)"
            )
        expanded = [character for character in EXPANDED_BY_WRAP if character in path]
        if expanded and not pass_command_as_script:
            raise ConfigError(
                f"{key}: {path!r} contains {expanded[0]!r}, which the shell that runs "
                f'`sbatch --wrap="..."` would expand; run with {SCRIPT_OPTION} (the job\'s '
                "command then goes to sbatch as a script), or rename the directory"
            )

"""Paths of SLURM runs: every accepted path reaches the job unchanged, every refused character
breaks some path on its way, and the refusal is one line.

The quoting is the real one: Snakemake's own formatting of the files a job waits for
(`format_cli_arg`), the plugin's `sbatch --wrap="..."` escaping, and `sh` reading both.
"""

import subprocess

import pytest
from snakemake_interface_executor_plugins.utils import format_cli_arg

from skyquilt.planning.errors import ConfigError
from skyquilt.planning.slurm.job_paths import PATH_KEYS, SCRIPT_OPTION, check_slurm_paths

# Every character that means something to a shell, alone and together, with the verdict of the
# check without and with --slurm-pass-command-as-script (True: accepted).
PROBES = {
    "/data/plain": (True, True),
    "/data/with space": (True, True),
    '/data/a"b': (True, True),
    "/data/a'b": (False, False),
    "/data/a$b": (False, True),
    "/data/a`b": (False, True),
    "/data/a\\b": (False, False),
    **{f"/data/a{character}b": (True, True) for character in "&;()#!*?<>|~ "},
    "/data/a\tb": (False, False),
    "/data/it's": (False, False),
    '/data/odd dir "$5" & (x); #!*?`': (False, True),
    '/data/odd dir it\'s "$5"': (False, False),
    "/data/non\xa0breaking": (False, False),
}
MODES = {"wrap": False, "script": True}
ACCEPTED = [
    pytest.param(path, script, id=f"{path!r}-{mode}")
    for path, verdicts in PROBES.items()
    for (mode, script), verdict in zip(MODES.items(), verdicts, strict=True)
    if verdict
]


def reaches_the_job(path: str, pass_command_as_script: bool) -> bool:
    """Whether `sh` in a SLURM job reads `path` back from a command that lists it among the
    files to wait for, submitted with or without --slurm-pass-command-as-script."""
    command = f"printf '%s\\n' {format_cli_arg('--wait-for-files', [path]).split(' ', 1)[1]}"
    if not pass_command_as_script:
        # The plugin escapes only double quotes; the shell that runs sbatch reads the rest.
        wrapped = command.replace('"', '\\"')
        command = subprocess.run(
            f'printf "%s" "{wrapped}"', shell=True, capture_output=True, text=True
        ).stdout
    job = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
    return job.returncode == 0 and job.stdout == f"{path}\n"


def accepted(path: str, pass_command_as_script: bool) -> bool:
    try:
        check_slurm_paths({"model_path": path}, pass_command_as_script)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", PROBES)
def test_every_path_gets_its_verdict(path, mode):
    verdict = PROBES[path][list(MODES).index(mode)]
    assert accepted(path, MODES[mode]) is verdict


@pytest.mark.parametrize(("path", "script"), ACCEPTED)
def test_every_accepted_path_reaches_the_slurm_job_unchanged(path, script):
    assert reaches_the_job(path, script), f"{path!r} is accepted but changes on its way"


@pytest.mark.parametrize(
    ("path", "script"),
    [
        ("/data/a\\b", True),
        ('/data/odd dir it\'s "$5"', True),
        ("/data/non\xa0breaking", True),
        ("/data/a$5b", False),
        ("/data/a`b", False),
    ],
)
def test_every_refused_character_breaks_a_path_on_its_way(path, script):
    assert not accepted(path, script)
    assert not reaches_the_job(path, script)


@pytest.mark.parametrize("key", PATH_KEYS)
def test_dollar_and_backquote_need_the_script_option_which_the_line_names(key):
    config = {key: "/data/odd dir $5 `x`"}
    with pytest.raises(ConfigError) as error:
        check_slurm_paths(config, pass_command_as_script=False)
    line = str(error.value)
    assert line.startswith(f"{key}: '/data/odd dir $5 `x`' contains '$'")
    assert SCRIPT_OPTION in line and "\n" not in line
    check_slurm_paths(config, pass_command_as_script=True)


@pytest.mark.parametrize("key", PATH_KEYS)
def test_a_single_quote_is_refused_even_as_a_script_naming_what_is_allowed(key):
    with pytest.raises(ConfigError) as error:
        check_slurm_paths({key: "/data/it's"}, pass_command_as_script=True)
    line = str(error.value)
    assert line.startswith(f'{key}: "/data/it\'s" contains "\'"')
    assert "any printable character but ' and \\" in line


def test_the_default_output_dir_and_an_absent_dataset_pass():
    check_slurm_paths({"model_path": "/models/denoiser/0"}, pass_command_as_script=False)

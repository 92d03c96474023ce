"""Local runs and dry runs without the SLURM profile call no SLURM command, so a machine whose
/etc/slurm/slurm.conf names a controller that is down (or one without SLURM) runs them without
delay. Fake SLURM clients first on the PATH log every call and fail like a dead controller;
`snakemake --version` shows the calls Snakemake makes by itself (the SLURM executor plugin asks
`scontrol show config` when it is loaded), which the workflow must not add to."""

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from skyquilt_testing.workflow import REPO, SNAKEMAKE, run_snakemake, tiny_config, write_config

CLIENTS = ("scontrol", "sinfo", "squeue", "sacct", "sacctmgr", "sbatch", "srun")


@dataclass
class FakeSlurm:
    """SLURM clients first on the PATH (`env`) that log each call to `log` and fail like a
    dead controller; `by_snakemake`: the calls `snakemake --version` makes by itself."""

    env: dict
    log: Path
    by_snakemake: list[str]

    def calls(self) -> list[str]:
        """The calls logged since the last time, in order."""
        calls = self.log.read_text().splitlines() if self.log.exists() else []
        self.log.unlink(missing_ok=True)
        return calls


@pytest.fixture(scope="module")
def fake_slurm(tmp_path_factory) -> FakeSlurm:
    directory = tmp_path_factory.mktemp("fake_slurm")
    log = directory / "calls.log"
    for name in CLIENTS:
        path = directory / name
        path.write_text(
            f'#!/bin/sh\necho "{name} $*" >> "{log}"\n'
            f'echo "{name}: error: Unable to contact slurm controller (connect failure)" >&2\n'
            "exit 1\n"
        )
        path.chmod(0o755)
    fake = FakeSlurm({"PATH": f"{directory}{os.pathsep}{os.environ['PATH']}"}, log, [])
    subprocess.run([SNAKEMAKE, "--version"], env=os.environ | fake.env, check=True, timeout=120)
    fake.by_snakemake = fake.calls()
    return fake


@pytest.mark.parametrize(
    "arguments",
    [
        ("-n", "--cores", "1"),
        ("-n",),
        ("--cores", "1", "results/prior/default/12h/shards/2000-04-20T12/0.zarr"),
    ],
    ids=["dry-run-cores", "dry-run", "local-run"],
)
def test_runs_without_the_profile_call_no_slurm_command(
    fake_slurm, tiny_model, tmp_path, arguments
):
    write_config(tmp_path, tiny_config(tiny_model, start_dates=["2000-04-20 12h"]))
    started = time.monotonic()
    result = run_snakemake(tmp_path, *arguments, env=fake_slurm.env)
    print(f"\nsnakemake {' '.join(arguments)}: {time.monotonic() - started:.1f} s")
    assert fake_slurm.calls() == fake_slurm.by_snakemake, result.stderr[-3000:]
    assert "SLURM preflight" not in result.stdout + result.stderr


def test_a_dry_run_with_the_profile_asks_the_controller_and_says_it_does_not_answer(
    fake_slurm, tiny_model, tmp_path
):
    """The other side of the door: with the profile the preflight does call SLURM, once."""
    write_config(tmp_path, tiny_config(tiny_model, start_dates=["2000-04-20 12h"]))
    profile = ("--profile", str(REPO / "profiles" / "slurm"))
    result = run_snakemake(tmp_path, "-n", *profile, check=False, env=fake_slurm.env)
    assert result.returncode == 1
    assert fake_slurm.calls() == [*fake_slurm.by_snakemake, "scontrol show config"]
    assert result.stderr.splitlines()[-1] == (
        "skyquilt config error: SLURM preflight: `scontrol show config` failed (scontrol: "
        "error: Unable to contact slurm controller (connect failure)); check `scontrol ping` "
        "on this machine, or skip the SLURM checks with hardware.preflight: false"
    )

"""Reading a SLURM cluster: the outputs of scontrol, sinfo and sacctmgr as the test cluster
(tests/slurm/cluster.sh, SLURM 22.05) prints them, and client calls that fail or hang."""

import os
import time
from pathlib import Path

import pytest

from skyquilt.planning.errors import ConfigError
from skyquilt.planning.slurm.cluster import (
    Partition,
    parse_associations,
    parse_config,
    parse_max_time,
    parse_partitions,
    parse_seconds,
    slurm_output,
)

SCONTROL_CONFIG = """Configuration data as of 2026-11-30T03:40:00
AccountingStorageEnforce = associations
AccountingStorageType   = accounting_storage/slurmdbd
ClusterName             = skyquilt-test
MinJobAge               = 900 sec
"""


def test_scontrol_config_gives_accounting_and_min_job_age():
    settings = parse_config(SCONTROL_CONFIG)
    assert settings["AccountingStorageType"] == "accounting_storage/slurmdbd"
    assert settings["AccountingStorageEnforce"] == "associations"
    assert parse_seconds(settings["MinJobAge"]) == 900
    assert parse_seconds(None) is None


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("infinite", None), ("30:00", 30), ("2:00:00", 120), ("1-12:00:00", 2160), ("0:30", 1)],
)
def test_sinfo_time_limits_in_minutes(text, minutes):
    assert parse_max_time(text) == minutes


def test_sinfo_partitions_merge_node_configurations():
    text = "debug*|infinite|21300|gpu:fake:2\ncpu|1:00:00|64000|(null)\n"
    text += "gpu|2-00:00:00|128000|gpu:a100:4(S:0-1),mps:100\ngpu|2-00:00:00|256000|gpu:h100:8\n"
    partitions = parse_partitions(text)
    assert partitions["debug"] == Partition("debug", True, None, 21300, {"fake": 2})
    assert partitions["cpu"] == Partition("cpu", False, 60, 64000, {})
    assert partitions["gpu"] == Partition("gpu", False, 2880, 256000, {"a100": 4, "h100": 8})
    assert parse_partitions("gpu|infinite|1000|gpu:2\n")["gpu"].gpus == {"": 2}


def test_sacctmgr_associations_give_default_and_accounts():
    default, accounts = parse_associations("root|skyquilt-test\nroot|root\n")
    assert default == "root" and accounts == {"root", "skyquilt-test"}
    assert parse_associations("") == (None, frozenset())


def fake_command(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def test_a_client_call_that_hangs_is_one_line_after_the_timeout(tmp_path, monkeypatch):
    fake_command(tmp_path, "scontrol", "sleep 30")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"`scontrol show config` gave no answer within 1 s"):
        slurm_output("scontrol", "show", "config", timeout=1)
    assert time.monotonic() - started < 5


def test_a_failing_client_call_names_the_command_and_its_message(tmp_path, monkeypatch):
    fake_command(
        tmp_path, "sinfo", "echo 'sinfo: error: Unable to contact slurm controller' >&2; exit 1"
    )
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(ConfigError) as error:
        slurm_output("sinfo", "--noheader")
    assert "`sinfo --noheader` failed (sinfo: error: Unable to contact slurm controller)" in str(
        error.value
    )
    assert "hardware.preflight: false" in str(error.value)


def test_a_missing_client_says_where_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=r"`scontrol` is not installed here.*login node"):
        slurm_output("scontrol", "show", "config")

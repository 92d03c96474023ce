"""What a SLURM cluster offers a run, read with at most three client calls.

`scontrol show config` (accounting storage, MinJobAge), `sinfo` (partitions: default,
MaxTime, node memory, GPU GRES) and, only when the cluster has accounting storage,
`sacctmgr show user` (the accounts the user may charge). Every call has a timeout, and a
call that fails or does not answer is one `ConfigError` line naming the command and the fix.
Planning layer: torch-free, may import only the standard library and `planning.errors`.
"""

import re
import shutil
import subprocess
from dataclasses import dataclass, replace

from skyquilt.planning.errors import ConfigError

# Seconds one SLURM client call may take: a controller that is down makes scontrol retry
# for a minute or more, far longer than any answer from a working one.
CALL_TIMEOUT = 10
NO_ACCOUNTING = "accounting_storage/none"
# One line per partition and node configuration: name (default marked *), MaxTime,
# memory per node (MB), GRES per node.
SINFO_FORMAT = "%P|%l|%m|%G"
GPU_GRES = re.compile(r"(?:^|,)gpu(?::(?P<type>[^:,()]+))?:(?P<count>\d+)")
MAX_TIME = re.compile(r"^(?:(?P<days>\d+)-)?(?:(?P<h>\d+):)?(?P<m>\d+):(?P<s>\d+)$")


@dataclass(frozen=True)
class Partition:
    """A partition as its jobs see it: max_time in minutes (None: no limit), the memory
    of its largest node (MB), and its GPUs per node by GRES type ('' when untyped)."""

    name: str
    default: bool
    max_time: int | None
    max_memory_mb: int
    gpus: dict[str, int]


@dataclass(frozen=True)
class Cluster:
    """What the preflight checks need: accounting storage (the AccountingStorageType),
    AccountingStorageEnforce, MinJobAge (seconds), partitions by name, and the user's
    accounts and default account (None: not known, the cluster has no accounting)."""

    accounting: str
    enforce: str
    min_job_age: int | None
    partitions: dict[str, Partition]
    user: str
    accounts: frozenset[str] | None = None
    default_account: str | None = None

    @property
    def has_accounting(self) -> bool:
        """Whether sacct and sacctmgr have a database to ask (slurmdbd)."""
        return self.accounting != NO_ACCOUNTING


def slurm_output(*command: str, timeout: float = CALL_TIMEOUT) -> str:
    """stdout of one SLURM client call; a missing command, a failure or no answer within
    `timeout` seconds is a ConfigError that names the command."""
    text = " ".join(command)
    if shutil.which(command[0]) is None:
        raise ConfigError(
            f"SLURM preflight: `{command[0]}` is not installed here, but snakemake runs the "
            "slurm executor; run it on a machine that can submit jobs (the login node), or skip "
            "the SLURM checks with hardware.preflight: false"
        )
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"SLURM preflight: `{text}` gave no answer within {timeout:g} s (is the "
            "controller down?); check `scontrol ping` on this machine, or skip the SLURM "
            "checks with hardware.preflight: false"
        ) from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[0]
        raise ConfigError(
            f"SLURM preflight: `{text}` failed ({reason}); check `scontrol ping` on this "
            "machine, or skip the SLURM checks with hardware.preflight: false"
        )
    return done.stdout


def parse_config(text: str) -> dict[str, str]:
    """`scontrol show config` as {name: value}."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs}


def parse_seconds(value: str | None) -> int | None:
    """A MinJobAge such as '300 sec' or '300' in seconds (None when absent)."""
    match = re.match(r"^(\d+)", value or "")
    return int(match.group(1)) if match else None


def parse_max_time(text: str) -> int | None:
    """An sinfo time limit ('infinite', '30:00', '1-12:00:00') in minutes, rounded up."""
    match = MAX_TIME.match(text.strip())
    if not match:
        return None  # infinite / UNLIMITED / n/a
    days, hours = int(match["days"] or 0), int(match["h"] or 0)
    minutes, seconds = int(match["m"]), int(match["s"])
    return days * 1440 + hours * 60 + minutes + (seconds > 0)


def parse_gpus(gres: str) -> dict[str, int]:
    """GPUs per node by type from an sinfo GRES field ('gpu:a100:4(S:0-1),mps:100')."""
    return {match["type"] or "": int(match["count"]) for match in GPU_GRES.finditer(gres)}


def parse_partitions(text: str) -> dict[str, Partition]:
    """sinfo lines `SINFO_FORMAT` -> partitions, merging the node configurations of each."""
    partitions: dict[str, Partition] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 4:
            continue
        name, limit, memory, gres = fields
        default, name = name.endswith("*"), name.rstrip("*")
        gpus = parse_gpus(gres)
        memory_mb = int(re.match(r"\d*", memory).group() or 0)
        if name in partitions:
            known = partitions[name]
            memory_mb = max(memory_mb, known.max_memory_mb)
            gpus = {
                kind: max(gpus.get(kind, 0), known.gpus.get(kind, 0)) for kind in gpus | known.gpus
            }
        partitions[name] = Partition(name, default, parse_max_time(limit), memory_mb, gpus)
    return partitions


def parse_associations(text: str) -> tuple[str | None, frozenset[str]]:
    """`sacctmgr -nP show user U withassoc format=DefaultAccount,Account` -> (default
    account, every account of the user's associations)."""
    rows = [line.strip().split("|") for line in text.splitlines() if "|" in line]
    default = next((row[0] for row in rows if row[0]), None)
    return default, frozenset(row[1] for row in rows if row[1])


def read_cluster(user: str) -> Cluster:
    """The cluster that this machine's SLURM client talks to (two or three calls)."""
    settings = parse_config(slurm_output("scontrol", "show", "config"))
    partitions = parse_partitions(slurm_output("sinfo", "--noheader", f"--format={SINFO_FORMAT}"))
    cluster = Cluster(
        accounting=settings.get("AccountingStorageType", NO_ACCOUNTING),
        enforce=settings.get("AccountingStorageEnforce", "none"),
        min_job_age=parse_seconds(settings.get("MinJobAge")),
        partitions=partitions,
        user=user,
    )
    if not cluster.has_accounting:
        return cluster
    associations = slurm_output(
        "sacctmgr", "--noheader", "--parsable2", "show", "user", user, "withassoc",
        "format=DefaultAccount,Account",
    )  # fmt: skip
    default, accounts = parse_associations(associations)
    return replace(cluster, accounts=accounts, default_account=default)

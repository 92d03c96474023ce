"""SLURM preflight: refuse, before any job is submitted, a run that would hang or fail late.

Checked against the `cluster.Cluster` read once per run: that the executor plugin's status
queries can see finished jobs (sacct needs accounting storage; squeue needs a MinJobAge longer
than the gaps between status checks), the account, and for every kind of job its partition,
time limit, memory and GPUs. Each refusal is one `ConfigError` line naming the key, the value,
what the cluster allows and the fix. Planning layer: torch-free.
"""

from dataclasses import dataclass, field

from skyquilt.planning.errors import ConfigError
from skyquilt.planning.resources import HARDWARE_SECTIONS, section_rule
from skyquilt.planning.slurm.cluster import NO_ACCOUNTING, Cluster, Partition

# snakemake-executor-plugin-slurm 2.8: while no job finishes, the wait between status checks
# grows by 10 s up to this many seconds.
PLUGIN_LONGEST_WAIT = 180
PROFILE = "the profile (profiles/slurm/config.yaml)"


@dataclass(frozen=True)
class StatusPolling:
    """How the executor plugin asks SLURM for job states.

    command: slurm-status-command; first_wait: seconds-between-status-checks (before the
    first check); init_wait: slurm-init-seconds-before-status-checks (after a job finished);
    sacct_installed: whether `sacct` is on the PATH (the plugin uses squeue otherwise).
    """

    command: str
    first_wait: int
    init_wait: int
    sacct_installed: bool = True

    @property
    def longest_wait(self) -> int:
        """The longest gap between two status checks (seconds)."""
        return max(PLUGIN_LONGEST_WAIT, self.first_wait, self.init_wait)

    @property
    def needed_min_job_age(self) -> int:
        """MinJobAge (seconds) with which squeue sees every finished job: twice the longest
        gap between checks, and at least 3 * init_wait, below which the plugin asks sacct."""
        return max(2 * self.longest_wait, 3 * self.init_wait)

    def command_used(self, min_job_age: int | None) -> str:
        """The command the plugin really runs: it trades squeue for sacct when MinJobAge is
        below 3 * init_wait, and sacct for squeue when sacct is not installed."""
        if self.command == "squeue" and self.sacct_installed:
            if min_job_age is None or min_job_age < 3 * self.init_wait:
                return "sacct"
        if self.command == "sacct" and not self.sacct_installed:
            return "squeue"
        return self.command


@dataclass(frozen=True)
class JobRequest:
    """What one kind of job asks SLURM for (runtime in minutes), and for each field the
    config key it came from: 'hardware.gen.time', or 'default-resources: runtime'."""

    partition: str | None
    runtime: int | None
    mem_mb: int | None
    gpus_per_node: int
    gpu_model: str | None
    keys: dict[str, str] = field(default_factory=dict)


def check_status_queries(cluster: Cluster, polling: StatusPolling) -> None:
    """Refuse status queries that cannot see a finished job (the run would wait forever)."""
    command, age = polling.command_used(cluster.min_job_age), cluster.min_job_age
    needed = polling.needed_min_job_age
    if command == "sacct" and not cluster.has_accounting:
        if age is not None and age >= needed:
            fix = f"set `slurm-status-command: squeue` in {PROFILE} (MinJobAge = {age} s is enough)"
        else:
            fix = (
                f"ask the cluster's administrators for accounting storage (slurmdbd) or "
                f"MinJobAge >= {needed} s (now {age} s), then use `slurm-status-command: squeue`"
            )
        raise ConfigError(
            f"slurm-status-command: {polling.command}: the executor would ask sacct for job "
            f"states, but this cluster has no accounting storage (AccountingStorageType="
            f"{NO_ACCOUNTING}), so no job would ever be seen to finish; {fix}"
        )
    if command == "squeue" and (age is None or age < needed):
        if cluster.has_accounting and polling.sacct_installed:
            fix = f"set `slurm-status-command: sacct` in {PROFILE} (this cluster has accounting)"
        else:
            fix = f"ask the cluster's administrators for MinJobAge >= {needed} s"
        raise ConfigError(
            f"slurm-status-command: squeue, but this cluster's MinJobAge is {age} s and status "
            f"checks can be {polling.longest_wait} s apart, so a finished job can leave squeue "
            f"before it is seen and the run would wait forever; {fix}"
        )


def check_account(cluster: Cluster, account: str | None) -> None:
    """hardware.account is one the user may charge, or the cluster does not need one."""
    if cluster.accounts is None:
        return  # no accounting storage: SLURM takes any account name
    allowed = ", ".join(sorted(cluster.accounts)) or "none"
    if account and account.lower() not in {name.lower() for name in cluster.accounts}:
        raise ConfigError(
            f"hardware.account: {account!r} is not an account that user {cluster.user} can "
            f"charge on this cluster (accounts: {allowed}); set hardware.account to one of them"
        )
    if not account and "associations" in cluster.enforce and not cluster.default_account:
        raise ConfigError(
            f"hardware.account: not set, but this cluster requires an account "
            f"(AccountingStorageEnforce={cluster.enforce}) and user {cluster.user} has no "
            f"default account; set hardware.account to one of: {allowed}"
        )


def find_partition(cluster: Cluster, request: JobRequest) -> Partition:
    """The partition a job of `request` is submitted to (the cluster's default if unset)."""
    key = request.keys["partition"]
    names = ", ".join(sorted(cluster.partitions)) or "none"
    if request.partition is None:
        default = [part for part in cluster.partitions.values() if part.default]
        if not default:
            raise ConfigError(
                f"{key}: not set, and this cluster has no default partition; set {key} to "
                f"one of: {names}"
            )
        return default[0]
    if request.partition not in cluster.partitions:
        raise ConfigError(
            f"{key}: {request.partition!r} is not a partition of this cluster (partitions: "
            f"{names}); set {key} to one of them"
        )
    return cluster.partitions[request.partition]


def check_limits(partition: Partition, request: JobRequest) -> None:
    """Time limit within the partition's MaxTime, memory within its largest node."""
    name, keys = partition.name, request.keys
    if partition.max_time is not None and (request.runtime or 0) > partition.max_time:
        most = partition.max_time
        raise ConfigError(
            f"{keys['runtime']}: {request.runtime} minutes is above the MaxTime of partition "
            f"{name!r} ({most} minutes), so the jobs would wait forever; set "
            f'{keys["runtime"]} to at most "{most // 60}:{most % 60:02d}:00" ({most} minutes) '
            "or use a partition with a longer MaxTime"
        )
    if (request.mem_mb or 0) > partition.max_memory_mb:
        raise ConfigError(
            f"{keys['mem_mb']}: {request.mem_mb} MB is more than any node of partition "
            f"{name!r} has ({partition.max_memory_mb} MB), so sbatch would refuse the jobs; "
            f"set {keys['mem_mb']} to at most {partition.max_memory_mb}MB"
        )


def check_gpus(partition: Partition, request: JobRequest) -> None:
    """GPUs only on a partition with GPU GRES: as many per node, of the model asked for."""
    if not request.gpus_per_node:
        return
    name, key = partition.name, request.keys["gpus"]
    if not partition.gpus:
        raise ConfigError(
            f"{key}: {request.gpus_per_node} GPU(s), but partition {name!r} has no GPU (no "
            f"gpu GRES on its nodes), so sbatch would refuse the jobs; set "
            f"{request.keys['partition']} to a partition with GPUs, or {key}: 0"
        )
    if request.gpu_model and request.gpu_model not in partition.gpus:
        types = ", ".join(sorted(kind for kind in partition.gpus if kind)) or "untyped only"
        raise ConfigError(
            f"{request.keys['gpu_model']}: {request.gpu_model!r} is not a GPU type of "
            f"partition {name!r} (types: {types}); set it to one of them, or remove it"
        )
    most = max(partition.gpus.values())
    if request.gpus_per_node > most:
        raise ConfigError(
            f"{key}: {request.gpus_per_node} GPUs per node, but the nodes of partition "
            f"{name!r} have at most {most}; set hardware.gpus_per_node to at most {most}"
        )


def job_request(resources: dict, keys: dict[str, str]) -> JobRequest:
    """A JobRequest from Snakemake resources (mem_mb or mem in MB, runtime in minutes)."""
    return JobRequest(
        partition=resources.get("slurm_partition"),
        runtime=resources.get("runtime"),
        mem_mb=resources.get("mem_mb", resources.get("mem")),
        gpus_per_node=int(resources.get("gpus_per_node", resources.get("gpu", 0)) or 0),
        gpu_model=resources.get("gpu_model"),
        keys=keys,
    )


def job_requests(hardware: dict, resources: dict, defaults: dict) -> list[JobRequest]:
    """One JobRequest for Snakemake's default resources (rules without a hardware section)
    and one for each section of config['hardware'] (resources: rule -> its resources)."""
    default_keys = {
        name: f"default-resources: {resource}"
        for name, resource in (
            ("partition", "slurm_partition"),
            ("runtime", "runtime"),
            ("mem_mb", "mem_mb"),
            ("gpus", "gpu"),
            ("gpu_model", "gpu_model"),
        )
    }
    requests = [job_request(defaults, default_keys)]
    for section in HARDWARE_SECTIONS:
        if section not in hardware:
            continue
        given = hardware[section] or {}
        keys = {
            name: f"hardware.{section}.{key}" if key in given else default_keys[name]
            for name, key in (
                ("partition", "partition"),
                ("runtime", "time"),
                ("mem_mb", "ram"),
                ("gpus", "gpus"),
                ("gpu_model", "gpu_model"),
            )
        }
        requests.append(job_request({**defaults, **resources[section_rule(section)]}, keys))
    return requests


def preflight(
    cluster: Cluster, polling: StatusPolling, account: str | None, requests: list[JobRequest]
) -> list[Partition]:
    """Every check, in the order a user would fix them; the first refusal stops the run.

    Returns the partition each request's jobs will run on, in the order of `requests`.
    """
    check_status_queries(cluster, polling)
    check_account(cluster, account)
    partitions = []
    for request in requests:
        partition = find_partition(cluster, request)
        check_limits(partition, request)
        check_gpus(partition, request)
        partitions.append(partition)
    return partitions

"""SLURM preflight: each way a cluster would make a run hang or fail late is one line with
the fix; a cluster that fits passes. The clusters are built as `cluster.read_cluster` does."""

import pytest

from skyquilt.planning.errors import ConfigError
from skyquilt.planning.resources import hardware_resources
from skyquilt.planning.slurm.cluster import Cluster, Partition
from skyquilt.planning.slurm.preflight import (
    JobRequest,
    StatusPolling,
    check_account,
    check_gpus,
    check_limits,
    check_status_queries,
    find_partition,
    job_requests,
    preflight,
)

# profiles/slurm as shipped: first check after 30 s, 40 s after a job finished.
SHIPPED = StatusPolling(command="sacct", first_wait=30, init_wait=40)
DEBUG = Partition("debug", True, None, 21300, {"fake": 2})
CPU = Partition("cpu", False, 60, 64000, {})


def cluster(accounting: bool = False, min_job_age: int = 900, **fields) -> Cluster:
    """The test cluster of tests/slurm/cluster.sh, with or without slurmdbd."""
    base = {
        "accounting": "accounting_storage/slurmdbd" if accounting else "accounting_storage/none",
        "enforce": "associations" if accounting else "none",
        "min_job_age": min_job_age,
        "partitions": {"debug": DEBUG, "cpu": CPU},
        "user": "ada",
    }
    if accounting:
        base |= {"accounts": frozenset({"root", "skyquilt-test"}), "default_account": "root"}
    return Cluster(**(base | fields))


def refusal(check, *args) -> str:
    """The one line with which `check(*args)` refuses."""
    with pytest.raises(ConfigError) as error:
        check(*args)
    return str(error.value)


def test_sacct_without_accounting_storage_is_refused_with_the_squeue_fix():
    message = refusal(check_status_queries, cluster(), SHIPPED)
    assert message.startswith("slurm-status-command: sacct: the executor would ask sacct")
    assert "AccountingStorageType=accounting_storage/none" in message
    assert "set `slurm-status-command: squeue` in the profile (profiles/slurm/config.yaml)" in (
        message
    )


def test_sacct_without_accounting_and_a_short_min_job_age_asks_the_administrators():
    with pytest.raises(ConfigError, match=r"accounting storage \(slurmdbd\) or MinJobAge >= 360 s"):
        check_status_queries(cluster(min_job_age=300), SHIPPED)


def test_squeue_with_a_min_job_age_below_the_polling_gaps_is_refused():
    squeue = StatusPolling(command="squeue", first_wait=30, init_wait=40, sacct_installed=False)
    message = refusal(check_status_queries, cluster(min_job_age=300), squeue)
    assert "MinJobAge is 300 s and status checks can be 180 s apart" in message
    assert "MinJobAge >= 360 s" in message
    with pytest.raises(ConfigError, match=r"set `slurm-status-command: sacct`"):
        check_status_queries(cluster(True, min_job_age=300), StatusPolling("squeue", 30, 40))


def test_squeue_the_plugin_trades_for_sacct_is_refused_without_accounting():
    """Plugin 2.8 asks sacct instead when MinJobAge < 3 * init_wait."""
    squeue = StatusPolling(command="squeue", first_wait=30, init_wait=400)
    assert squeue.command_used(900) == "sacct"
    with pytest.raises(ConfigError, match=r"^slurm-status-command: squeue: the executor would ask"):
        check_status_queries(cluster(), squeue)


def test_status_queries_that_see_every_job_pass():
    check_status_queries(cluster(True, min_job_age=300), SHIPPED)
    check_status_queries(cluster(), StatusPolling("squeue", 30, 40))
    check_status_queries(cluster(), StatusPolling("squeue", 2, 2))  # the live tests' polling


def test_an_account_the_user_cannot_charge_is_refused_with_the_accounts():
    assert refusal(check_account, cluster(True), "nope") == (
        "hardware.account: 'nope' is not an account that user ada can charge on this cluster "
        "(accounts: root, skyquilt-test); set hardware.account to one of them"
    )
    check_account(cluster(True), "skyquilt-test")
    check_account(cluster(), "anything")  # no accounting: SLURM takes any name


def test_a_missing_account_is_refused_where_the_cluster_requires_one():
    strict = cluster(True, default_account=None)
    with pytest.raises(ConfigError, match=r"^hardware.account: not set, but this cluster requires"):
        check_account(strict, None)
    check_account(cluster(True), None)  # the user's default account


def request(**fields) -> JobRequest:
    keys = {
        name: f"hardware.gen.{key}"
        for name, key in [("partition", "partition"), ("runtime", "time"), ("mem_mb", "ram")]
        + [("gpus", "gpus"), ("gpu_model", "gpu_model")]
    }
    base = {"partition": "debug", "runtime": 10, "mem_mb": 1000, "gpus_per_node": 0}
    return JobRequest(**(base | {"gpu_model": None} | fields), keys=keys)


def test_an_unknown_partition_is_refused_with_the_cluster_s_partitions():
    assert refusal(find_partition, cluster(), request(partition="a5000")) == (
        "hardware.gen.partition: 'a5000' is not a partition of this cluster (partitions: cpu, "
        "debug); set hardware.gen.partition to one of them"
    )
    assert find_partition(cluster(), request(partition=None)) == DEBUG


def test_no_partition_and_no_default_partition_is_refused():
    with pytest.raises(ConfigError, match=r"not set, and this cluster has no default partition"):
        find_partition(cluster(partitions={"cpu": CPU}), request(partition=None))


def test_a_time_above_max_time_is_refused_with_the_longest_allowed():
    assert refusal(check_limits, CPU, request(partition="cpu", runtime=360)) == (
        "hardware.gen.time: 360 minutes is above the MaxTime of partition 'cpu' (60 minutes), "
        'so the jobs would wait forever; set hardware.gen.time to at most "1:00:00" (60 '
        "minutes) or use a partition with a longer MaxTime"
    )
    check_limits(DEBUG, request(runtime=100_000))  # MaxTime infinite


def test_memory_above_every_node_is_refused():
    assert refusal(check_limits, DEBUG, request(mem_mb=60000)) == (
        "hardware.gen.ram: 60000 MB is more than any node of partition 'debug' has (21300 MB), "
        "so sbatch would refuse the jobs; set hardware.gen.ram to at most 21300MB"
    )


def test_gpus_on_a_partition_without_gpu_gres_are_refused():
    assert refusal(check_gpus, CPU, request(partition="cpu", gpus_per_node=1)) == (
        "hardware.gen.gpus: 1 GPU(s), but partition 'cpu' has no GPU (no gpu GRES on its "
        "nodes), so sbatch would refuse the jobs; set hardware.gen.partition to a partition "
        "with GPUs, or hardware.gen.gpus: 0"
    )


def test_a_gpu_model_or_count_the_partition_lacks_is_refused():
    with pytest.raises(ConfigError, match=r"^hardware.gen.gpu_model: 'a100' is not a GPU type"):
        check_gpus(DEBUG, request(gpus_per_node=1, gpu_model="a100"))
    with pytest.raises(ConfigError, match=r"4 GPUs per node, but the nodes of partition 'debug'"):
        check_gpus(DEBUG, request(gpus_per_node=4))
    check_gpus(DEBUG, request(gpus_per_node=2, gpu_model="fake"))


def test_requests_name_the_hardware_key_or_the_profile_s_default_resources():
    hardware = {"backend": "slurm", "gen": {"ram": "1GB", "partition": "debug", "gpus": 1}}
    resources = {"generate": hardware_resources(hardware, "gen")}
    defaults, gen = job_requests(hardware, resources, {"mem_mb": 4000, "runtime": 60})
    assert (defaults.partition, defaults.runtime, defaults.mem_mb) == (None, 60, 4000)
    assert defaults.keys["mem_mb"] == "default-resources: mem_mb"
    assert (gen.partition, gen.runtime, gen.mem_mb, gen.gpus_per_node) == ("debug", 60, 1000, 1)
    assert gen.keys["mem_mb"] == "hardware.gen.ram"
    assert gen.keys["runtime"] == "default-resources: runtime"


def test_a_run_that_fits_the_cluster_passes():
    hardware = {
        "backend": "slurm",
        "account": "skyquilt-test",
        "gen": {"ram": "1GB", "time": "10:00", "partition": "debug", "gpus": 1},
        "aggregate": {"ram": "1GB", "time": "10:00", "partition": "cpu"},
    }
    resources = {
        rule: hardware_resources(hardware, section)
        for section, rule in [("gen", "generate"), ("aggregate", "aggregate")]
    }
    requests = job_requests(hardware, resources, {"mem_mb": 4000, "runtime": 60})
    # Default resources go to the default partition; each section to its own.
    assert preflight(cluster(True), SHIPPED, "skyquilt-test", requests) == [DEBUG, DEBUG, CPU]

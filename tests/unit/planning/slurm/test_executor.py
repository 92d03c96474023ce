"""The default resources the preflight checks, read from Snakemake's settings."""

from types import SimpleNamespace

from snakemake.resources import Resources

from skyquilt.planning.slurm.executor import constant_resources


def test_default_resources_give_numbers_and_plain_names_not_expressions():
    """As Snakemake parses the profile's default-resources (strings become expressions)."""
    parsed = Resources.parse(
        ["mem_mb=4000", "runtime=60", "slurm_partition=cpu", "gpu_model='a100'"]
        + ["slurm_account=str(1 + 1)"],
        defaults="full",
        allow_expressions=True,
    )
    workflow = SimpleNamespace(resource_settings=SimpleNamespace(default_resources=parsed))
    assert constant_resources(workflow) == {
        "mem_mb": 4000,
        "runtime": 60,
        "slurm_partition": "cpu",
        "gpu_model": "a100",
    }

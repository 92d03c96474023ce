"""The run's plan: config meaning, resources from `hardware`, launch commands."""

import pytest
from skyquilt_testing.workflow import example_config

from skyquilt.planning.config import ConfigError
from skyquilt.planning.plan import make_plan
from skyquilt.planning.resources import hardware_resources, launcher_command


def test_the_original_example_config_is_accepted(tiny_model):
    plan = make_plan(example_config(tiny_model))
    assert plan.sizes == [72]
    assert plan.date_labels == ["2000-04-03T00", "2000-04-20T12"]
    assert plan.members == [0, 1]
    settings = plan.settings
    assert (settings.sampler, settings.steps, settings.precision, settings.overlap) == (
        "lms",
        64,
        "float16",
        4,
    )


def test_hardware_maps_onto_slurm_resources(tiny_model):
    resources = make_plan(example_config(tiny_model)).resources
    assert resources["generate"] == {
        "cpus": 8,
        "cpus_per_task": 8,
        "mem_mb": 60000,
        "runtime": 6,
        "gpu": 1,
        "nodes": 1,
        "gpus_per_node": 1,
        "slurm_partition": "a5000",
        "slurm_account": "users",
    }
    assert resources["aggregate"]["runtime"] == 4
    assert "gpu" not in resources["aggregate"]


def test_local_backend_has_no_slurm_resources():
    resources = hardware_resources(
        {"backend": "local", "gen": {"cpus": 2, "partition": "a"}}, "gen"
    )
    assert "slurm_partition" not in resources and "cpus_per_task" not in resources


def test_unquoted_slurm_time_is_rejected_with_a_hint():
    with pytest.raises(ConfigError, match=r"hardware.gen.time: 360 is an integer.*quote it"):
        hardware_resources({"gen": {"time": 360}}, "gen")


def test_null_steps_use_the_models_validation_steps(tiny_model):
    config = example_config(tiny_model)
    config["diffusion"]["num_steps"] = None
    assert make_plan(config).settings.steps == 8


def test_null_precision_uses_the_training_precision(tiny_model):
    config = example_config(tiny_model)
    config["precision"] = None
    assert make_plan(config).settings.precision == "float32"


def test_one_process_runs_the_script_directly():
    assert "torch.distributed.run" not in launcher_command(1)


def test_several_gpus_on_one_node_run_torchrun_standalone():
    command = launcher_command(4, nodes=1)
    assert "torch.distributed.run --standalone --nproc-per-node 4" in command


def test_gpus_beyond_one_node_use_c10d_rendezvous_on_the_first_node():
    command = launcher_command(8, nodes=2)
    assert command.startswith("srun --overlap --nodes 2 --ntasks-per-node 1 ")
    assert "--nnodes 2 --nproc-per-node 4 --rdzv-backend c10d" in command
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1' in command
    assert '--rdzv-id "$SLURM_JOB_ID"' in command


def test_multi_gpu_job_asks_for_enough_nodes():
    hardware = {"backend": "slurm", "gpus_per_node": 4, "gen": {"gpus": 8, "gpu_model": "a100"}}
    resources = hardware_resources(hardware, "gen")
    assert (resources["gpu"], resources["nodes"], resources["gpus_per_node"]) == (8, 2, 4)
    assert resources["gpu_model"] == "a100"

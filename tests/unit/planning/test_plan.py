"""The run's plan: config meaning, resources from `hardware`, launch commands."""

import re
import shutil
from pathlib import Path

import pytest
import yaml
from skyquilt_testing.workflow import REPO, example_config, tiny_config

from skyquilt.planning.errors import ConfigError
from skyquilt.planning.plan import make_plan
from skyquilt.planning.resources import (
    check_backend,
    generation_processes,
    hardware_resources,
    visible_gpu_count,
)
from skyquilt.planning.slurm.executor import check_executor
from skyquilt.planning.slurm.launcher import launcher_command, time_limit_warning
from skyquilt.planning.yaml_values import normalise_integers


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
        "slurm_extra": "--signal=URG@60",  # the warning before the time limit
    }
    assert resources["aggregate"]["runtime"] == 4
    assert "gpu" not in resources["aggregate"] and "slurm_extra" not in resources["aggregate"]


@pytest.mark.parametrize(
    ("time", "seconds"),
    [("1:00", 30), ("2:00", 60), ("30:00", 180), ("6:00:00", 600), ("2-00:00:00", 600)],
)
def test_generation_jobs_ask_slurm_for_a_warning_before_their_time_limit(time, seconds):
    """A tenth of the limit, within 1 to 10 minutes, at most half the limit."""
    hardware = {"backend": "slurm", "gen": {"time": time}}
    assert time_limit_warning(hardware_resources(hardware, "gen")["runtime"]) == seconds
    assert hardware_resources(hardware, "gen")["slurm_extra"] == f"--signal=URG@{seconds}"


def test_no_warning_without_a_time_or_with_backend_local():
    assert "slurm_extra" not in hardware_resources({"backend": "slurm", "gen": {}}, "gen")
    local = {"backend": "local", "gen": {"time": "1:00:00"}}
    assert "slurm_extra" not in hardware_resources(local, "gen")


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


def test_integers_given_as_floats_are_the_integers_everywhere(tiny_model):
    config = example_config(tiny_model)
    config.update(num_samples_per_date=2.0, blanket_overlap=4.0, seed=1.0, trajectory_sizes=72.0)
    config["diffusion"] = {"num_steps": 8.0, "sampler": {"type": "lms", "config": {"order": 2.0}}}
    config["generation"] = {"max_blankets_per_batch": 16.0, "processes": 1.0}
    config["hardware"]["gen"] |= {"cpus": 2.0, "gpus": 1.0}
    normalise_integers(config, str(REPO / "config/schema.yaml"))
    plan = make_plan(config)
    settings = plan.settings
    assert (plan.sizes, plan.members, plan.processes) == ([72], [0, 1], 1)
    values = (settings.steps, settings.overlap, settings.seed, settings.max_blankets_per_batch)
    assert values == (8, 4, 1, 16) and all(type(value) is int for value in values)
    assert (
        settings.sampler_options == {"order": 2} and type(settings.sampler_options["order"]) is int
    )
    assert plan.resources["generate"]["cpus"] == 2 and plan.resources["generate"]["gpu"] == 1
    assert '"order": 2}' in settings.to_json() and "2.0" not in settings.to_json()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"order": 2.5}, "order must be an integer in [1, 10], got 2.5"),
        ({"order": 1000}, "order must be an integer in [1, 10]"),
    ],
)
def test_bad_integer_sampler_options_are_refused(tiny_model, options, message):
    config = example_config(tiny_model)
    config["diffusion"]["sampler"]["config"] = options
    with pytest.raises(
        ConfigError, match=re.escape(f"diffusion.sampler.config: sampler option {message}")
    ):
        make_plan(config)


def test_local_backend_never_plans_several_nodes_or_srun():
    hardware = {"backend": "local", "gpus_per_node": 2, "gen": {"gpus": 4}}
    resources = hardware_resources(hardware, "gen")
    assert resources["nodes"] == 1 and "slurm_partition" not in resources
    processes, warnings = generation_processes(hardware, resources, 1, visible=4)
    assert processes == 4
    assert warnings == [
        "hardware.gen.gpus: 4 GPUs are more than gpus_per_node = 2, but backend local runs "
        "every job on this machine, on one node: generation jobs run 4 processes here, "
        "under one torchrun --standalone"
    ]
    assert not launcher_command(processes, resources["nodes"]).startswith("srun")


def test_local_gpus_beyond_those_of_the_machine_are_lowered_with_a_warning():
    hardware = {"backend": "local", "gen": {"gpus": 4}}
    resources = hardware_resources(hardware, "gen")
    processes, warnings = generation_processes(hardware, resources, 1, visible=2)
    assert (processes, resources["gpu"]) == (2, 2)
    assert warnings == [
        "hardware.gen.gpus: 4, but this machine shows 2 GPU(s) (backend local): generation "
        "jobs ask for 2 GPU(s) and run 2 process(es)"
    ]
    resources = hardware_resources(hardware, "gen")
    processes, warnings = generation_processes(hardware, resources, 1, visible=0)
    assert processes == 4 and "no NVIDIA GPU is visible" in warnings[0]
    slurm = {"backend": "slurm", "gpus_per_node": 2, "gen": {"gpus": 4}}
    resources = hardware_resources(slurm, "gen")
    assert generation_processes(slurm, resources, 1, visible=0) == (4, [])
    assert resources["nodes"] == 2


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpu_count() == 0


def test_local_backend_refuses_an_executor_that_submits_jobs():
    check_executor({"backend": "local"}, "local")
    check_executor({"backend": "local"}, "dryrun")
    check_executor({"backend": "slurm"}, "slurm")
    with pytest.raises(ConfigError, match="^hardware.backend: 'local', but .* 'slurm' executor"):
        check_executor({"backend": "local"}, "slurm")


def test_unknown_backend_names_the_allowed_ones():
    with pytest.raises(
        ConfigError, match="^hardware.backend: 'slrum' is unknown; allowed: local, slurm$"
    ):
        check_backend({"backend": "slrum"})


def test_cpu_processes_with_one_gpu_are_refused():
    resources = hardware_resources({"gen": {"gpus": 1}}, "gen")
    with pytest.raises(ConfigError, match="^generation.processes: 2 CPU processes"):
        generation_processes({"backend": "slurm"}, resources, 2)


def test_checkpoints_lie_outside_the_prior_and_default_to_every_10_minutes(tiny_model):
    plan = make_plan(example_config(tiny_model))
    assert plan.checkpoint_path(72, "2000-04-03T00", 1) == (
        "results/checkpoints/default/72h/2000-04-03T00/1.pt"
    )
    assert plan.checkpoint_every == (None, 10.0)
    assert str(plan.checkpoint_arguments) == (
        "--checkpoint-dir results/checkpoints/default --checkpoint-every-steps none "
        "--checkpoint-every-minutes 10.0"
    )


def test_checkpoint_arguments_are_no_recorded_snakemake_parameter(tiny_model):
    config = example_config(tiny_model)
    config.update(output_dir="my results", generation={"checkpoint": {"every_steps": 4}})
    arguments = make_plan(config).checkpoint_arguments
    # Snakemake records (and reruns on) parameters of builtin types only.
    assert not isinstance(arguments, (str, int, float, list, tuple, dict))
    assert f"{arguments}" == (
        "--checkpoint-dir 'my results/checkpoints/default' --checkpoint-every-steps 4 "
        "--checkpoint-every-minutes 10.0"
    )


def test_members_of_a_size_or_of_one_start_date_come_in_the_aggregate_s_order(tiny_model):
    plan = make_plan(tiny_config(tiny_model))
    dates = ["2000-04-03T00", "2000-04-20T12"]
    assert plan.members_of(12) == [(12, date, member) for date in dates for member in (0, 1)]
    assert plan.members_of("12", dates[1]) == [("12", dates[1], 0), ("12", dates[1], 1)]


def composition_config(model_path, composition="auto", overlap=4):
    config = example_config(model_path)
    config.update(blanket_overlap=overlap, generation={"composition": composition})
    return config


def test_auto_composes_two_scale_where_the_model_has_a_coarse_model(
    tiny_model, tiny_two_scale_model
):
    plan = make_plan(composition_config(tiny_two_scale_model))
    assert plan.settings.composition == "two_scale" and plan.coarse_model.blanket_dt == 2
    assert plan.settings.provenance()["composition"] == "two_scale"
    plain = make_plan(composition_config(tiny_model))
    assert plain.settings.composition == "blankets" and plain.coarse_model is None
    asked = make_plan(composition_config(tiny_two_scale_model, "blankets"))
    assert asked.settings.composition == "blankets" and asked.coarse_model is None


def test_two_scale_is_refused_for_a_model_without_a_coarse_model(tiny_model):
    with pytest.raises(ConfigError) as refused:
        make_plan(composition_config(tiny_model, "two_scale"))
    assert str(refused.value) == (
        f"generation.composition: two_scale needs a coarse model, and the model at {tiny_model} "
        "declares none (its config.yaml has no 'coarse' section; docs/composition.md says how "
        "to train one); use blankets or auto"
    )


def test_blocks_that_do_not_fit_the_overlap_refuse_two_scale_and_make_auto_compose_blankets(
    tiny_two_scale_model,
):
    """Blocks of 2 states do not tile blankets of 8 with overlap 3."""
    with pytest.raises(ConfigError, match=r"^generation.composition: two_scale needs blocks of 2"):
        make_plan(composition_config(tiny_two_scale_model, "two_scale", overlap=3))
    plan = make_plan(composition_config(tiny_two_scale_model, overlap=3))
    assert plan.settings.composition == "blankets"
    assert any("auto composes blankets alone" in warning for warning in plan.warnings)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("config", r"declares \(coarse.path in its config.yaml\), and .*coarse has no config"),
        ("weights", "model_target: checkpoint .*coarse/best.safetensors is missing"),
        ("shape", "must model block means of the model's states: latent_shape"),
    ],
)
def test_a_declared_coarse_model_that_cannot_serve_is_refused(
    tiny_two_scale_model, tmp_path, damage, message
):
    model = Path(shutil.copytree(tiny_two_scale_model, tmp_path / "model"))
    coarse = model / "coarse"
    if damage == "config":
        (coarse / "config.yaml").unlink()
    elif damage == "weights":
        (coarse / "best.safetensors").unlink()
    else:
        config = yaml.safe_load((coarse / "config.yaml").read_text())
        config["train"]["blanket_dt"] = 3
        (coarse / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=message):
        make_plan(composition_config(model))

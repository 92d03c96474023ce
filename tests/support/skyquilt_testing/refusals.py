"""The config-refusal table: malformed configs (or broken model directories and datasets), each
with what its one error line must say.

Every case is checked twice over: in-process, where the refusal happens, through the functions
the workflow calls while it is parsed (tests/unit/planning/test_workflow.py), and, for one case
of every kind of refusal, by real `snakemake` runs that must stop before any job with that line
(tests/workflow/test_config_errors.py).
"""

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import xarray as xr
import yaml

from skyquilt_testing.decoding import (
    install_autoencoder,
    random_autoencoder,
    write_synthetic_dataset,
)
from skyquilt_testing.workflow import tiny_config, write_config

PREFIX = "skyquilt config error: "


@dataclass(frozen=True)
class Models:
    """Model directories: a good one and broken copies of it."""

    good: Path
    weights_file: Path
    missing: Path
    no_best: Path
    truncated_best: Path
    lacks_blanket_size: Path
    truncated_config: Path
    config_key_twice: Path
    decodable: Path
    with_backslash: Path
    dataset: Path
    dataset_without_geopotential: Path
    dataset_without_time: Path
    dataset_with_two_levels: Path
    dataset_on_another_grid: Path


@dataclass(frozen=True)
class Case:
    """A malformed config and what its one error line must say.

    edit(config, models) changes the tiny config in place, or returns YAML text to write
    as is (for mistakes that only exist in YAML, such as an unquoted time).
    key: what the line names right after the prefix; allowed: what else it must contain.
    targets: what the run asks for (the default target when empty); options: further
    snakemake options (the SLURM executor).
    """

    name: str
    edit: Callable[[dict, Models], str | None]
    key: str
    allowed: tuple[str, ...]
    targets: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


def setting(key: str, value) -> Callable[[dict, Models], None]:
    """An edit that sets a (dotted) key of the config."""

    def edit(config: dict, models: Models) -> None:
        *parents, last = key.split(".")
        section = config
        for part in parents:
            section = section.setdefault(part, {})
        section[last] = value

    return edit


def without(key: str) -> Callable[[dict, Models], None]:
    """An edit that deletes a (dotted) key of the config."""

    def edit(config: dict, models: Models) -> None:
        *parents, last = key.split(".")
        section = config
        for part in parents:
            section = section[part]
        del section[last]

    return edit


def model(which: str) -> Callable[[dict, Models], None]:
    """An edit that points model_path at one of the (broken) model directories."""

    def edit(config: dict, models: Models) -> None:
        config["model_path"] = str(getattr(models, which))

    return edit


def unquoted_time(config: dict, models: Models) -> str:
    """`time: 6:00` without quotes, which YAML 1.1 reads as the integer 360."""
    text = yaml.safe_dump(config, sort_keys=False)
    return text.replace("time: '10:00'", "time: 6:00", 1)


def rendering(dataset: str, **changes) -> Callable[[dict, Models], None]:
    """An edit that asks to render geopotential at 500 hPa from one of the datasets."""

    def edit(config: dict, models: Models) -> None:
        config.update(
            model_path=str(models.decodable),
            dataset=str(getattr(models, dataset)),
            render={"fields": [{"variable": "geopotential", "level": 500}]},
            **changes,
        )

    return edit


def yaml_text(replace: str, by: str) -> Callable[[dict, Models], str]:
    """An edit that writes the config as YAML with `replace` replaced (a YAML-only mistake)."""

    def edit(config: dict, models: Models) -> str:
        text = yaml.safe_dump(config, sort_keys=False)
        assert replace in text, text
        return text.replace(replace, by, 1)

    return edit


def asking(target: str, dataset: str, key: str, *allowed: str, name: str = "") -> Case:
    """A case that asks for `target` (statistics, evaluate, ...) with one of the datasets
    (a Models attribute) or with the path `dataset`."""

    def edit(config: dict, models: Models) -> None:
        value = getattr(models, dataset) if hasattr(models, dataset) else dataset
        config.update(model_path=str(models.decodable), dataset=str(value))

    return Case(name or f"{target}_{dataset}", edit, key, allowed, targets=(target,))


def inside_dataset(config: dict, models: Models) -> None:
    config.update(dataset=str(models.dataset), output_dir=str(models.dataset / "results"))


def bad(name: str, key: str, value, *allowed: str) -> Case:
    """A case that sets `key` to a bad `value`; the line must name `key`."""
    return Case(name, setting(key, value), key, allowed)


def sampler(name: str, type_: str, options, *allowed: str) -> Case:
    """A case with bad options for sampler `type_`."""
    edit = setting("diffusion.sampler", {"type": type_, "config": options})
    return Case(name, edit, "diffusion.sampler.config", allowed)


# A real run on the SLURM executor; no cluster is needed, the paths are refused first.
SLURM = ("--executor", "slurm", "--jobs", "1")
SCRIPT = "--slurm-pass-command-as-script"


def through_slurm(name: str, key: str, path: str, *allowed: str, script: bool = False) -> Case:
    """A case that runs on the SLURM executor (backend slurm) with `key` set to `path` (or to
    the Models attribute so named), with or without --slurm-pass-command-as-script."""

    def edit(config: dict, models: Models) -> None:
        config["hardware"]["backend"] = "slurm"
        config[key] = str(getattr(models, path, path))

    return Case(name, edit, key, allowed, options=SLURM + ((SCRIPT,) if script else ()))


CASES = [
    # trajectory sizes
    bad("sizes_reversed_range", "trajectory_sizes", "72-24", "'24-72'"),
    bad("sizes_zero", "trajectory_sizes", "0", ">= 1"),
    bad("sizes_negative_int", "trajectory_sizes", -12, '"24,48"'),
    bad("sizes_empty_item", "trajectory_sizes", "24,,48", '"24-26"'),
    bad("sizes_as_list", "trajectory_sizes", [12, 24], "'integer', 'string'"),
    # sample counts
    bad("samples_zero", "num_samples_per_date", 0, "minimum of 1"),
    bad("samples_as_string", "num_samples_per_date", "2", "'integer'"),
    Case("samples_missing", without("num_samples_per_date"), "config", ("'num_samples_per_date'",)),
    # start dates
    bad("date_february_30", "start_dates", ["2000-02-30 0h"], "calendar date"),
    bad("date_hour_25", "start_dates", ["2000-01-01 25h"], "0h to 23h"),
    bad("date_without_hour", "start_dates", ["2000-01-01"], "2000-04-20 12h", "YYYY-MM-DD Hh"),
    bad("dates_not_a_list", "start_dates", "2000-04-03 0h", "'array'"),
    bad("dates_empty", "start_dates", [], "non-empty"),
    bad("date_listed_twice", "start_dates", ["2000-04-03 0h"] * 2, "listed twice"),
    # blanket overlap (the tiny model has blanket size 8)
    bad("overlap_equal_to_blanket_size", "blanket_overlap", 8, "[0, 7]"),
    bad("overlap_negative", "blanket_overlap", -1, "minimum of 0"),
    bad("overlap_as_string", "blanket_overlap", "4", "'integer'"),
    # diffusion
    bad("sampler_unknown", "diffusion.sampler.type", "euler", "'lms'", "'ddim'"),
    sampler("sampler_option_misspelled", "lms", {"orderr": 2}, "allowed: order"),
    sampler("sampler_option_of_another_sampler", "ddim", {"order": 2}, "allowed: eta"),
    sampler("sampler_option_out_of_range", "lms", {"order": 0}, "[1, 10]"),
    sampler("sampler_config_not_a_mapping", "lms", [2], "'object'"),
    bad("steps_zero", "diffusion.num_steps", 0, "minimum of 1"),
    Case("diffusion_misspelled_key", setting("diffusion.steps", 3), "diffusion", ("num_steps",)),
    bad("precision_fp16", "precision", "fp16", "'float16'", "'bfloat16'"),
    # model directory and checkpoints
    bad("model_target_unknown", "model_target", "final", "'best'", "'last'"),
    Case("model_path_is_a_file", model("weights_file"), "model_path", ("is a file", "<lap>")),
    Case("model_path_missing", model("missing"), "model_path", ("no config.yaml",)),
    Case("checkpoint_missing", model("no_best"), "model_target", ("best.safetensors", "missing")),
    Case("checkpoint_truncated", model("truncated_best"), "model_target", ("truncated",)),
    Case("model_config_lacks_a_key", model("lacks_blanket_size"), "model_path", ("blanket_size",)),
    Case("model_config_truncated", model("truncated_config"), "model_path", ("config.yaml",)),
    Case(
        "model_config_key_twice",
        model("config_key_twice"),
        "model_path",
        ("'train.blanket_size' is given twice", "config.yaml", "lines"),
    ),
    # hardware
    Case("slurm_time_unquoted", unquoted_time, "hardware.gen.time", ("quote it",)),
    bad("slurm_time_malformed", "hardware.gen.time", "6h", "D-H:M:S"),
    bad("ram_malformed", "hardware.gen.ram", "lots", '"60GB"'),
    bad("cpus_zero", "hardware.gen.cpus", 0, "minimum of 1"),
    # other keys
    bad("run_name_with_space", "run", "my run", "letters, digits"),
    bad("seed_negative", "seed", -1, "minimum of 0"),
    bad("stitch_unknown", "generation.stitch", "mean", "'symmetric'", "'average'"),
    bad(
        "two_scale_without_coarse_model",
        "generation.composition",
        "two_scale",
        "needs a coarse model",
        "declares none",
        "docs/composition.md",
    ),  # fmt: skip
    # dates (issue: no silent wrong results, 1)
    bad("date_same_instant_twice", "start_dates", ["2000-04-03 0h", "2000-04-03 00h"], "same"),
    bad("date_after_the_time_axis", "start_dates", ["2300-01-01 0h"], "outside the time axis"),
    bad("date_before_the_time_axis", "start_dates", ["1600-01-01 0h"], "'2262-04-11 23h'"),
    bad("trajectory_past_the_time_axis", "start_dates", ["2262-04-11 20h"], "ends past"),
    Case(
        "date_as_yaml_date",
        yaml_text("- 2000-04-03 0h", "- 2000-04-03"),
        "start_dates.0",
        ("YAML date", '"2000-04-03 0h"'),
    ),
    Case(
        "date_as_yaml_timestamp",
        yaml_text("- 2000-04-20 12h", "- 2000-04-20 12:00:00"),
        "start_dates.1",
        ("YAML timestamp", '"2000-04-20 12h"'),
    ),
    Case(
        "climatology_period_as_yaml_dates",
        yaml_text(
            "blanket_overlap: 4",
            "blanket_overlap: 4\nevaluate: {climatology_period: [1999-07-01, 2000-01-01]}",
        ),
        "evaluate.climatology_period.0",
        ('"1999-07-01"',),
    ),
    # paths (2)
    bad("output_dir_empty", "output_dir", "", "empty"),
    bad("output_dir_blank", "output_dir", "   ", "empty"),
    bad("output_dir_climbs_out", "output_dir", "out/../..", "'..'"),
    bad("output_dir_with_tilde", "output_dir", "~/results", "expanded"),
    bad("output_dir_with_a_variable", "output_dir", "$HOME/results", "expanded"),
    bad("output_dir_with_a_brace", "output_dir", "out{member}", "wildcard"),
    bad("output_dir_with_a_newline", "output_dir", "out\nx", "control character"),
    Case("output_dir_inside_the_dataset", inside_dataset, "output_dir", ("inside dataset",)),
    bad("output_dir_with_a_name_too_long", "output_dir", "out/" + "o" * 300, "allows 255 per name"),
    bad("output_dir_too_long", "output_dir", "/".join(["d" * 200] * 25), "as an absolute path"),
    bad("run_too_long", "run", "r" * 256, "allows 255 per name"),
    bad("model_path_with_a_name_too_long", "model_path", "m" * 300 + "/0", "allows 255 per name"),
    # keys given twice in the config file
    Case(
        "key_given_twice",
        yaml_text(
            "num_samples_per_date: 2\n", "num_samples_per_date: 2\nnum_samples_per_date: 3\n"
        ),
        "num_samples_per_date",
        ("given twice in", "config.yaml", "lines"),
    ),
    Case(
        "nested_key_given_twice",
        yaml_text("  num_steps: 3\n", "  num_steps: 3\n  num_steps: 4\n"),
        "diffusion.num_steps",
        ("given twice in", "config.yaml", "lines"),
    ),
    bad("run_dot_dot", "run", "..", "plain directory name"),
    bad("run_dot", "run", ".", "plain directory name"),
    bad("run_climbs_out", "run", "../x", "letters, digits"),
    bad("run_absolute", "run", "/tmp/x", "letters, digits"),
    bad("run_empty", "run", "", "letters, digits"),
    bad("model_path_empty", "model_path", "", "empty"),
    bad("model_path_blank", "model_path", "  ", "empty"),
    bad("dataset_empty", "dataset", "", "empty"),
    # integers given as fractions (3); integral floats (2.0) are accepted as the integer
    bad("samples_fraction", "num_samples_per_date", 2.5, "'integer'"),
    bad("overlap_fraction", "blanket_overlap", 4.5, "'integer'"),
    bad("steps_fraction", "diffusion.num_steps", 8.5, "'integer'"),
    bad("seed_fraction", "seed", 1.5, "'integer'"),
    bad("sizes_fraction", "trajectory_sizes", 72.5, "'integer'"),
    bad("gpus_fraction", "hardware.gen.gpus", 1.5, "'integer'"),
    bad("cpus_fraction", "hardware.gen.cpus", 2.5, "'integer'"),
    bad("batch_fraction", "generation.max_blankets_per_batch", 16.5, "'integer'"),
    bad("processes_fraction", "generation.processes", 1.5, "'integer'"),
    bad("states_per_chunk_fraction", "decode.states_per_chunk", 8.5, "'integer'"),
    sampler("order_fraction", "lms", {"order": 2.5}, "integer in [1, 10]", "2.5"),
    sampler("corrections_fraction", "pc", {"corrections": 1.5}, "integer >= 0"),
    # absurd sizes and counts
    bad("sizes_huge_range", "trajectory_sizes", "1-100000000", "<= 100000"),
    bad("sizes_huge_int", "trajectory_sizes", 10**9, "<= 100000"),
    bad("samples_huge", "num_samples_per_date", 10**9, "maximum of 100000"),
    Case(
        "too_many_generation_jobs",
        lambda config, models: config.update(trajectory_sizes="1-1000", num_samples_per_date=200),
        "trajectory_sizes",
        ("400000 generation jobs", "at most 100000"),
    ),
    bad("overlap_huge", "blanket_overlap", 10**12, "[0, 7]"),
    bad("steps_huge", "diffusion.num_steps", 10**6, "maximum of 10000"),
    bad("seed_huge", "seed", 2**64, "maximum of"),
    bad("cpus_huge", "hardware.gen.cpus", 10**6, "maximum of 1024"),
    bad("gpus_huge", "hardware.gen.gpus", 10**6, "maximum of 1024"),
    sampler("order_huge", "lms", {"order": 1000}, "[1, 10]"),
    sampler("eta_above_one", "ddim", {"eta": 1.5}, "[0.0, 1.0]"),
    sampler("eta_infinite", "ddim", {"eta": float("inf")}, "[0.0, 1.0]"),
    # choices
    bad("backend_unknown", "hardware.backend", "slurmm", "'local'", "'slurm'"),
    bad("model_target_capitalised", "model_target", "Best", "'best'", "'last'"),
    bad("precision_capitalised", "precision", "Float32", "'float32'"),
    bad("sampler_capitalised", "diffusion.sampler.type", "LMS", "'lms'"),
    bad("stitch_mean", "generation.stitch", "Average", "'average'"),
    # local means local (4)
    Case(
        "cpu_processes_with_one_gpu",
        lambda config, models: config.update(
            generation={"processes": 2}, hardware={"gen": {"gpus": 1}}
        ),
        "generation.processes",
        ("hardware.gen.gpus",),
    ),
    # the dataset against the decoder and the evaluation (7)
    asking("statistics", "dataset_without_geopotential", "dataset", "'geopotential'", "decoder"),
    asking("evaluate", "dataset_without_time", "dataset", "coordinate time"),
    asking("statistics", "dataset_with_two_levels", "dataset", "levels [500, 850]"),
    asking("statistics", "dataset_on_another_grid", "dataset", "8 x 32", "16 x 32"),
    asking("statistics", "/nowhere/era5.zarr", "dataset", "does not exist", name="no_dataset"),
    Case(
        "trajectory_runs_past_the_dataset",
        rendering("dataset", start_dates=["2000-05-03 20h"]),
        "start_dates",
        ("2000-05-03T20 (T = 12)",),
        targets=("evaluate",),
    ),
    # the dataset, when decoded outputs are requested
    Case(
        "dataset_lacks_a_variable",
        rendering("dataset_without_geopotential"),
        "render.fields",
        ("'geopotential'", "u_component_of_wind"),
        targets=("render",),
    ),
    Case(
        "start_date_outside_the_dataset",
        rendering("dataset", start_dates=["1990-01-01 0h"]),
        "start_dates",
        ("1990-01-01T00", "covers 2000-03-25T00"),
        targets=("render",),
    ),
    # paths through SLURM (2): what the job's command line cannot carry
    through_slurm("slurm_output_dir_with_a_dollar", "output_dir", "out $5", "'$'", SCRIPT),
    through_slurm("slurm_dataset_with_a_backquote", "dataset", "era5 `x`.zarr", "'`'", SCRIPT),
    through_slurm(
        "slurm_output_dir_with_a_single_quote",
        "output_dir",
        "out it's",
        "any printable character but ' and \\",
        script=True,
    ),
    through_slurm(
        "slurm_model_path_with_a_backslash",
        "model_path",
        "with_backslash",
        "any printable character but ' and \\",
        script=True,
    ),
]

# One case of every kind of refusal, by where it happens: real `snakemake` runs of these prove
# that a refusal there stops the run (and its dry run) before any job, with its one line.
WIRING_CASES = (
    "key_given_twice",  # the config file as written, before anything else
    "date_as_yaml_date",  # YAML mistakes, before the schema
    "samples_zero",  # the generation schema
    "samples_fraction",  # a fraction where the schema wants an integer
    "output_dir_with_a_name_too_long",  # paths against the file system's limits
    "slurm_time_unquoted",  # the plan: hardware
    "sizes_zero",  # the plan: trajectory sizes
    "overlap_equal_to_blanket_size",  # the plan, against the model's config
    "checkpoint_truncated",  # the plan: the model's weight files
    "cpu_processes_with_one_gpu",  # the plan: where the jobs run
    "states_per_chunk_fraction",  # the schema of the on-request outputs
    "dataset_lacks_a_variable",  # a request, while the DAG is built: render
    "evaluate_dataset_without_time",  # ... evaluate
    "no_dataset",  # ... statistics
    "slurm_output_dir_with_a_dollar",  # the SLURM executor's command line
    "slurm_output_dir_with_a_single_quote",  # ... passed as a script
)
# The product whose check the input function of each target rule calls (rules/inputs.smk).
TARGET_PRODUCTS = {"render": "render", "evaluate": "evaluation", "statistics": "statistics"}


def write_case_config(case: Case, models: Models, workdir: Path) -> dict:
    """The tiny config broken as `case` says, written to `workdir`/config.yaml (outputs under
    `workdir`/out); returns the config dict it started from."""
    config = tiny_config(models.good, output_dir=str(workdir / "out"))
    text = case.edit(config, models)
    if text is None:
        write_config(workdir, config)
    else:
        (workdir / "config.yaml").write_text(text)
    return config


def broken_models(root: Path, good: Path) -> Models:
    """Copies of the tiny model, each broken in one way; a decodable one; two datasets."""

    model_root = good.parents[7]  # <root>/autoencoders/ae/0/latents/dump/denoisers/denoiser/0

    def copy(name: str) -> Path:
        shutil.copytree(model_root, root / name)
        return root / name / good.relative_to(model_root)

    no_best = copy("no_best")
    (no_best / "best.safetensors").unlink()
    truncated_best = copy("truncated_best")
    weights = (truncated_best / "best.safetensors").read_bytes()
    (truncated_best / "best.safetensors").write_bytes(weights[: len(weights) // 2])
    lacks_blanket_size = copy("lacks_blanket_size")
    raw = yaml.safe_load((lacks_blanket_size / "config.yaml").read_text())
    del raw["train"]["blanket_size"]
    (lacks_blanket_size / "config.yaml").write_text(yaml.safe_dump(raw))
    truncated_config = copy("truncated_config")
    text = (truncated_config / "config.yaml").read_text()
    (truncated_config / "config.yaml").write_text(text[: len(text) // 2])
    config_key_twice = copy("config_key_twice")
    text = (config_key_twice / "config.yaml").read_text()
    assert "  blanket_size: 8\n" in text
    text = text.replace("  blanket_size: 8\n", "  blanket_size: 8\n  blanket_size: 4\n")
    (config_key_twice / "config.yaml").write_text(text)
    dataset = write_synthetic_dataset(root / "era5.zarr")  # 2000-03-25 to 2000-05-03
    without_geopotential = root / "era5_without_geopotential.zarr"
    without = xr.open_zarr(dataset).load().drop_encoding().drop_vars("geopotential")
    without.to_zarr(without_geopotential, zarr_format=2)
    without_time = root / "era5_without_time.zarr"
    full = xr.open_zarr(dataset).load().drop_encoding()
    full.drop_vars("time").to_zarr(without_time, zarr_format=2)
    two_levels = root / "era5_with_two_levels.zarr"
    xr.concat([full, full.assign_coords(level=[850])], "level").to_zarr(two_levels, zarr_format=2)
    another_grid = root / "era5_on_another_grid.zarr"
    full.isel(latitude=slice(0, 8)).to_zarr(another_grid, zarr_format=2)
    decodable = copy("decodable")
    latent_shape = yaml.safe_load((decodable / "config.yaml").read_text())["latent_shape"]
    autoencoder = random_autoencoder(xr.open_zarr(dataset))
    install_autoencoder(decodable, autoencoder, torch.zeros(latent_shape), torch.ones(latent_shape))
    return Models(
        good=good,
        weights_file=good / "best.safetensors",
        missing=root / "nowhere/autoencoders/ae/0/latents/dump/denoisers/denoiser/0",
        no_best=no_best,
        truncated_best=truncated_best,
        lacks_blanket_size=lacks_blanket_size,
        truncated_config=truncated_config,
        config_key_twice=config_key_twice,
        decodable=decodable,
        with_backslash=copy("with\\backslash"),
        dataset=dataset,
        dataset_without_geopotential=without_geopotential,
        dataset_without_time=without_time,
        dataset_with_two_levels=two_levels,
        dataset_on_another_grid=another_grid,
    )

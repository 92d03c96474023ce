"""End to end: `snakemake render evaluate` decodes, renders, scores and reports, on request only.

A tiny world: the random-weight test denoiser (latent (2, 4, 8), K = 8), a random demo
autoencoder decoding to 16 x 32 in its latent_dir/ae, and a synthetic dataset in the demo's
WeatherBench2 layout; T = 12, 2 start dates x 2 members.
"""

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from conftest import planned_jobs, run_snakemake, tiny_config, write_config
from decoding_fixture import install_autoencoder, random_autoencoder, write_synthetic_dataset

from skyquilt.demo.dataset import VARIABLES
from skyquilt.metrics import SCORE_COLUMNS, table_from_dataset
from skyquilt.models import write_random_model
from skyquilt.render import ffmpeg_available
from skyquilt.render_jobs import animate_member

SIZE_DIR = "results/prior/default/12h"
DATES = ("2000-04-03T00", "2000-04-20T12")
FIELD = "geopotential-500"
RENDER = {
    "fields": [{"variable": "geopotential", "level": 500}],
    "lead_hours": [0, 6, 11, 48],  # 48 h is beyond T = 12 and left out of the galleries
    "animation": {"frames_per_job": 6, "members": 1},
}


def make_world(root: Path) -> tuple[Path, Path]:
    """The model directory (with latent_dir/ae) and the dataset of a tiny world under `root`."""
    model_path = write_random_model(root / "models")
    dataset = write_synthetic_dataset(root / "era5.zarr")
    autoencoder = random_autoencoder(xr.open_zarr(dataset))
    install_autoencoder(model_path, autoencoder, torch.zeros(2, 4, 8), torch.ones(2, 4, 8))
    return model_path, dataset


def make_workdir(directory: Path, world: tuple[Path, Path], **overrides) -> Path:
    """A workdir whose config.yaml runs the tiny world (with `overrides`)."""
    model_path, dataset = world
    directory.mkdir(parents=True, exist_ok=True)
    config = tiny_config(model_path, dataset=str(dataset), render=RENDER) | overrides
    write_config(directory, config)
    return directory


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny world that no test changes."""
    return make_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def fresh(world, tmp_path_factory) -> Path:
    """A workdir where nothing has run (dry runs only)."""
    return make_workdir(tmp_path_factory.mktemp("fresh") / "work", world)


@pytest.fixture(scope="module")
def rendered(world, tmp_path_factory) -> Path:
    """A workdir after `snakemake --cores 2 render evaluate` and `--report report.html`."""
    workdir = make_workdir(tmp_path_factory.mktemp("rendered") / "work", world)
    run_snakemake(workdir, "--cores", "2", "render", "evaluate")
    run_snakemake(workdir, "--report", "report.html")
    return workdir


def expected_files() -> set[str]:
    decoded = {f"{SIZE_DIR}/decoded/{date}/{member}.zarr" for date in DATES for member in (0, 1)}
    galleries = {f"{SIZE_DIR}/render/gallery/{date}/{FIELD}.png" for date in DATES}
    suffixes = ("gif", "mp4") if ffmpeg_available() else ("gif",)
    animations = {
        f"{SIZE_DIR}/render/animation/{date}/0/{FIELD}.{suffix}"
        for date in DATES
        for suffix in suffixes
    }
    names = ("metrics.csv", "metrics.zarr", "spectra.csv", "steps.csv")
    names += ("scores.png", "spectra.png", "seams.png")
    evaluation = {f"{SIZE_DIR}/evaluation/{name}" for name in names}
    return decoded | galleries | animations | evaluation


def test_nothing_is_decoded_unless_asked(fresh):
    result = run_snakemake(fresh, "-n")
    assert planned_jobs(result.stdout) == {"aggregate": 1, "all": 1, "generate": 4}


def test_render_and_evaluate_plan_split_frames_and_one_evaluation(fresh):
    result = run_snakemake(fresh, "-n", "render", "evaluate")
    assert planned_jobs(result.stdout) == {
        "animation": 2,
        "decode": 4,
        "evaluate": 1,
        "evaluation": 1,
        "frames": 4,  # 12 states, 6 per job, one animated member per start date
        "gallery": 2,
        "generate": 4,
        "render": 1,
    }


def test_asking_for_one_decoded_member_decodes_only_it(fresh):
    result = run_snakemake(fresh, "-n", f"{SIZE_DIR}/decoded/{DATES[1]}/1.zarr")
    assert planned_jobs(result.stdout) == {"decode": 1, "generate": 1}


def test_render_and_evaluate_make_every_file(rendered):
    made = {
        str(path.relative_to(rendered))
        for directory in ("decoded", "render", "evaluation")
        for path in (rendered / SIZE_DIR / directory).glob("**/*")
        if path.suffix in (".png", ".gif", ".mp4", ".csv", ".zarr")
        and ".zarr/" not in str(path.relative_to(rendered))
    }
    assert made == expected_files()
    assert not (rendered / SIZE_DIR / "render/frames").exists()  # temporary, removed
    assert (rendered / "report.html").stat().st_size > 0


def test_decoded_members_are_physical_fields_in_weatherbench2_layout(rendered):
    decoded = xr.open_zarr(rendered / SIZE_DIR / f"decoded/{DATES[1]}/1.zarr")
    assert decoded["geopotential"].dims == (
        "time", "member", "prediction_timedelta", "level", "latitude", "longitude",
    )  # fmt: skip
    assert decoded.time.values[0] == np.datetime64(DATES[1], "ns")
    assert decoded.member.values.tolist() == [1]
    assert decoded.sizes["prediction_timedelta"] == 12
    assert decoded["geopotential"].attrs["units"] == VARIABLES["geopotential"]["units"]
    assert np.isfinite(decoded["geopotential"]).all()


def assert_real_image(image: np.ndarray, size: tuple[int, int]) -> None:
    """(height, width) as expected, and not blank: varied pixels, many colours."""
    assert image.shape[:2] == size
    rgb = image[..., :3].reshape(-1, 3)
    assert rgb.std() > 10
    assert len(np.unique(rgb, axis=0)) > 50


def test_galleries_are_real_images_of_the_expected_size(rendered):
    for date in DATES:
        image = iio.imread(rendered / SIZE_DIR / f"render/gallery/{date}/{FIELD}.png")
        # 3 lead columns (48 h is beyond T) x (truth + 2 members): 2.6 x 1.45 in per panel,
        # 1.2 x 1.0 in of margins, 100 dpi.
        assert_real_image(image, (round(100 * (3 * 1.45 + 1.0)), round(100 * (3 * 2.6 + 1.2))))


def test_animations_hold_every_state_as_a_real_frame(rendered):
    for date in DATES:
        gif = rendered / SIZE_DIR / f"render/animation/{date}/0/{FIELD}.gif"
        frames = iio.imread(gif, index=None)
        assert frames.shape[0] == 12
        for frame in frames:
            assert_real_image(frame, (352, 960))
        if ffmpeg_available():
            import imageio_ffmpeg

            video = imageio_ffmpeg.read_frames(str(gif.with_suffix(".mp4")))
            assert next(video)["size"] == (960, 352)
            assert sum(1 for _ in video) == 12


def test_an_animation_rendered_in_one_job_equals_the_split_one(rendered, world, tmp_path):
    """Without frames_per_job the animation job renders the frames itself, the same ones."""
    split = rendered / SIZE_DIR / f"render/animation/{DATES[0]}/0/{FIELD}.gif"
    decoded = str(rendered / SIZE_DIR / f"decoded/{DATES[0]}/0.zarr")
    gif = tmp_path / "one_job.gif"
    animate_member(decoded, str(world[1]), "geopotential", 500, 0.01, str(gif), None, 4.0)
    np.testing.assert_array_equal(iio.imread(gif, index=None), iio.imread(split, index=None))


def test_score_plots_are_real_images(rendered):
    for name in ("scores.png", "spectra.png", "seams.png"):
        image = iio.imread(rendered / SIZE_DIR / "evaluation" / name)
        assert image.shape[0] > 200 and image.shape[1] > 400
        assert_real_image(image, image.shape[:2])


def test_metrics_table_scores_model_and_baselines_for_every_variable(rendered):
    scores = pd.read_csv(rendered / SIZE_DIR / "evaluation/metrics.csv")
    assert list(scores.columns) == SCORE_COLUMNS
    assert set(scores["variable"]) == set(VARIABLES)
    leads = scores[scores["metric"] != "seam_ratio"]
    assert set(leads["lead_hours"]) == set(range(12))
    by_source = leads.groupby("source")["metric"].unique().map(set).to_dict()
    assert by_source == {
        "model": {"rmse", "spread", "spread_skill_ratio", "crps"},
        "persistence": {"rmse", "crps"},
        "climatology": {"rmse", "crps"},
    }
    assert np.isfinite(scores["value"]).all()
    persistence = leads[(leads["source"] == "persistence") & (leads["metric"] == "rmse")]
    assert (persistence[persistence["lead_hours"] == 0]["value"] == 0).all()
    seams = scores[scores["metric"] == "seam_ratio"]
    assert set(seams["source"]) == {"model", "truth"} and len(seams) == 6
    stored = table_from_dataset(
        xr.open_zarr(rendered / SIZE_DIR / "evaluation/metrics.zarr"), SCORE_COLUMNS
    )
    pd.testing.assert_frame_equal(stored, scores.astype({"level": "Int64"}), check_dtype=False)


def test_report_holds_galleries_score_plots_and_metrics_table(rendered):
    html = (rendered / "report.html").read_text()
    for name in (f"{FIELD}.png", "metrics.csv", "scores.png", "spectra.png", "seams.png"):
        assert name in html


def test_after_rendering_nothing_is_left_to_do(rendered):
    """Renders and evaluations are cached; `all` only adds the aggregate they did not need."""
    assert "Nothing to be done" in run_snakemake(rendered, "-n", "render", "evaluate").stdout
    assert planned_jobs(run_snakemake(rendered, "-n").stdout) == {"aggregate": 1, "all": 1}


def config_error(workdir: Path, *targets: str) -> str:
    result = run_snakemake(workdir, "-n", *targets, check=False)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "skyquilt config error" in line]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


def test_rendering_dates_without_ground_truth_fails_naming_them_and_the_range(world, tmp_path):
    workdir = make_workdir(tmp_path, world, start_dates=["2000-04-03 0h", "2000-05-03 18h"])
    # Generation alone needs no truth.
    assert planned_jobs(run_snakemake(workdir, "-n").stdout)["generate"] == 4
    line = config_error(workdir, "render")
    assert "2000-05-03T18 (T = 12)" in line and "2000-04-03T00" not in line
    assert "covers 2000-03-25T00 to 2000-05-03T23" in line


def test_a_missing_decoder_or_statistics_file_fails_naming_its_path(tmp_path):
    workdir = make_workdir(tmp_path / "work", make_world(tmp_path))
    latent_dir = tmp_path / "models/autoencoders/ae/0/latents/dump"
    (latent_dir / "stats.safetensors").unlink()
    # Generation does not decode.
    assert planned_jobs(run_snakemake(workdir, "-n").stdout)["generate"] == 4
    line = config_error(workdir, f"{SIZE_DIR}/decoded/{DATES[0]}/0.zarr")
    assert f"latent statistics file {latent_dir / 'stats.safetensors'} is missing" in line
    (latent_dir / "ae/weights.safetensors").unlink()
    line = config_error(workdir, "evaluate")
    assert f"decoder weights file {latent_dir / 'ae/weights.safetensors'} is missing" in line


def test_a_climatology_period_overlapping_the_evaluated_dates_fails(world, tmp_path):
    period = ["2000-03-25", "2000-04-03"]
    workdir = make_workdir(tmp_path, world, evaluate={"climatology_period": period})
    line = config_error(workdir, "evaluate")
    assert "evaluate.climatology_period" in line and "2000-04-03T00" in line


def test_rendering_without_fields_fails_naming_the_key(world, tmp_path):
    workdir = make_workdir(tmp_path, world, render={"lead_hours": [0]})
    assert "render.fields" in config_error(workdir, "render")

"""End to end on the tiny demo: `snakemake render evaluate fidelity` builds the demo, generates,
decodes, renders, scores and checks the composition's fidelity, and `snakemake --report` gathers
galleries, score plots and the metrics.

The default config with the tiny demo settings of the demo's own end-to-end test: 4 days of a
16 x 32 dataset, K = 4, O = 2, T = 8 from 2000-04-04 0h (held out), 2 members.
"""

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from skyquilt_testing.workflow import REPO, TINY_DEMO, planned_jobs, run_snakemake, write_config

from skyquilt.demo.dataset import VARIABLES
from skyquilt.diffusion.schedules import build_schedule
from skyquilt.io.video import ffmpeg_available
from skyquilt.jobs.render import animate_member
from skyquilt.scoring.climate import CLIMATE_COLUMNS, FIDELITY_COLUMNS, SUMMARY_METRICS
from skyquilt.scoring.gaussian import Rule, autocorrelation, composition_penalty
from skyquilt.scoring.metrics import SCORE_COLUMNS, table_from_dataset

SIZE_DIR = "results/prior/default/8h"
DATE = "2000-04-04T00"
DATASET = "resources/demo/era5_demo.zarr"
FIELD = "geopotential-500"
STATES = 8


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A fresh directory after `snakemake --cores 2 render evaluate fidelity` and `--report`."""
    workdir = tmp_path_factory.mktemp("rendered")
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config.update(
        demo=TINY_DEMO,
        trajectory_sizes=str(STATES),
        start_dates=["2000-04-04 0h"],
        blanket_overlap=2,
        num_samples_per_date=2,
        diffusion={"num_steps": 4, "sampler": {"type": "lms", "config": {}}},
        render={
            "fields": [{"variable": "geopotential", "level": 500}],
            "lead_hours": [0, 4, 7, 48],  # 48 h is beyond T and left out of the gallery
            "animation": {"frames_per_job": 4},  # two frames jobs per animation
        },
    )
    write_config(workdir, config)
    run_snakemake(workdir, "--cores", "2", "render", "evaluate", "fidelity")
    run_snakemake(workdir, "--report", "report.html")
    return workdir


def expected_files() -> set[str]:
    decoded = {f"{SIZE_DIR}/decoded/{DATE}/{member}.zarr" for member in (0, 1)}
    gallery = {f"{SIZE_DIR}/render/gallery/{DATE}/{FIELD}.png"}
    # imageio-ffmpeg, one of skyquilt's dependencies, ships its own ffmpeg.
    assert ffmpeg_available(), "no ffmpeg: the environment lacks imageio-ffmpeg's binary"
    suffixes = ("gif", "mp4")
    animations = {
        f"{SIZE_DIR}/render/animation/{DATE}/{member}/{FIELD}.{suffix}"
        for member in (0, 1)
        for suffix in suffixes
    }
    names = ("metrics.csv", "metrics.zarr", "spectra.csv", "steps.csv", "climate.csv")
    names += ("scores.png", "spectra.png", "seams.png", "rank_histogram.png", "climate.png")
    names += ("fidelity.csv", "fidelity.png")
    evaluation = {f"{SIZE_DIR}/evaluation/{name}" for name in names}
    return decoded | gallery | animations | evaluation


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
    decoded = xr.open_zarr(rendered / SIZE_DIR / f"decoded/{DATE}/1.zarr")
    truth = xr.open_zarr(rendered / DATASET)
    for name in VARIABLES:
        assert decoded[name].dims == (
            "time", "member", "prediction_timedelta", "level", "latitude", "longitude",
        )  # fmt: skip
        assert decoded[name].attrs["units"] == VARIABLES[name]["units"]
        assert np.isfinite(decoded[name]).all()
        # Physical units: the samples' mean is that of the truth, within its spread.
        assert abs(float(decoded[name].mean() - truth[name].mean())) < float(truth[name].std())
    assert decoded.time.values[0] == np.datetime64(DATE, "ns")
    assert decoded.member.values.tolist() == [1]
    assert decoded.sizes["prediction_timedelta"] == STATES
    assert np.array_equal(decoded.latitude, truth.latitude)


def assert_real_image(image: np.ndarray, size: tuple[int, int]) -> None:
    """(height, width) as expected, and not blank: varied pixels, many colours."""
    assert image.shape[:2] == size
    rgb = image[..., :3].reshape(-1, 3)
    assert rgb.std() > 10
    assert len(np.unique(rgb, axis=0)) > 50


def test_gallery_is_a_real_image_of_the_expected_size(rendered):
    image = iio.imread(rendered / SIZE_DIR / f"render/gallery/{DATE}/{FIELD}.png")
    # 3 lead columns (48 h is beyond T) x (truth + 2 members): 2.6 x 1.45 in per panel,
    # 1.2 x 1.0 in of margins, 100 dpi.
    assert_real_image(image, (round(100 * (3 * 1.45 + 1.0)), round(100 * (3 * 2.6 + 1.2))))


def test_animations_hold_every_state_as_a_real_frame(rendered):
    for member in (0, 1):
        gif = rendered / SIZE_DIR / f"render/animation/{DATE}/{member}/{FIELD}.gif"
        frames = iio.imread(gif, index=None)
        assert frames.shape[0] == STATES
        for frame in frames:
            assert_real_image(frame, (352, 960))
        video = imageio_ffmpeg.read_frames(str(gif.with_suffix(".mp4")))
        assert next(video)["size"] == (960, 352)
        assert sum(1 for _ in video) == STATES


def test_an_animation_rendered_in_one_job_equals_the_split_one(rendered, tmp_path):
    """Without frames_per_job the animation job renders the frames itself, the same ones."""
    split = rendered / SIZE_DIR / f"render/animation/{DATE}/0/{FIELD}.gif"
    decoded = str(rendered / SIZE_DIR / f"decoded/{DATE}/0.zarr")
    gif = tmp_path / "one_job.gif"
    animate_member(decoded, str(rendered / DATASET), "geopotential", 500, 0.01, str(gif), None, 4)
    np.testing.assert_array_equal(iio.imread(gif, index=None), iio.imread(split, index=None))


def test_score_plots_are_real_images(rendered):
    names = ("scores.png", "spectra.png", "seams.png", "rank_histogram.png", "climate.png")
    for name in (*names, "fidelity.png"):
        image = iio.imread(rendered / SIZE_DIR / "evaluation" / name)
        assert image.shape[0] > 200 and image.shape[1] > 400
        assert_real_image(image, image.shape[:2])


def test_metrics_table_scores_model_and_baselines_for_every_variable(rendered):
    scores = pd.read_csv(rendered / SIZE_DIR / "evaluation/metrics.csv")
    assert list(scores.columns) == SCORE_COLUMNS
    assert set(scores["variable"]) == set(VARIABLES)
    leads = scores[scores["lead_hours"].notna()]
    assert set(leads["lead_hours"]) == set(range(STATES))
    by_source = leads.groupby("source")["metric"].unique().map(set).to_dict()
    ensemble = {"rmse", "spread", "spread_skill_ratio", "crps", "energy_score"}
    ensemble |= {"rank_histogram_flatness", *(f"rank_histogram_bin_{k}" for k in range(3))}
    assert by_source == {
        "model": ensemble,
        "persistence": {"rmse", "crps", "energy_score"},
        "climatology": {"rmse", "crps", "energy_score"},
        "climatology_ensemble": ensemble,  # as many members (2), scored alike
    }
    bins = leads[leads["metric"].str.startswith("rank_histogram_bin_")]
    totals = bins.groupby(["source", "variable", "lead_hours"])["value"].sum()
    np.testing.assert_allclose(totals, 1.0)
    assert np.isfinite(scores["value"]).all()
    persistence = leads[(leads["source"] == "persistence") & (leads["metric"] == "rmse")]
    assert (persistence[persistence["lead_hours"] == 0]["value"] == 0).all()
    assert set(scores[scores["lead_hours"].isna()]["metric"]) == {"seam_ratio", *SUMMARY_METRICS}
    seams = scores[scores["metric"] == "seam_ratio"]
    assert set(seams["source"]) == {"model", "truth"} and len(seams) == 2 * len(VARIABLES)
    stored = table_from_dataset(
        xr.open_zarr(rendered / SIZE_DIR / "evaluation/metrics.zarr"), SCORE_COLUMNS
    )
    pd.testing.assert_frame_equal(stored, scores.astype({"level": "Int64"}), check_dtype=False)


def test_report_holds_the_gallery_score_plots_and_metrics_table(rendered):
    html = (rendered / "report.html").read_text()
    names = ("metrics.csv", "scores.png", "spectra.png", "seams.png", "rank_histogram.png")
    names += ("climate.csv", "climate.png", "fidelity.csv", "fidelity.png")
    for name in (f"{FIELD}.png", *names):
        assert name in html


def test_climate_diagnostics_rate_every_variable_and_sum_up_in_the_metrics(rendered):
    climate = pd.read_csv(rendered / SIZE_DIR / "evaluation/climate.csv")
    assert list(climate.columns) == CLIMATE_COLUMNS
    per_variable = climate.groupby("variable")["metric"].agg(set).to_dict()
    assert per_variable == {
        name: {"std_ratio", "hourly_change_ratio", "seam_ratio", "spectrum_ratio"}
        for name in VARIABLES
    }
    wavenumbers = climate[climate["metric"] == "spectrum_ratio"].groupby("variable").size()
    assert (wavenumbers == 32 // 2 + 1).all()  # every zonal wavenumber of 32 longitudes
    judged = climate[climate["judged"]]
    assert np.isfinite(judged["ratio"]).all() and (judged["ratio"] > 0).all()
    np.testing.assert_allclose(judged["ratio"], judged["model"] / judged["reference"])
    # The period compared with is the demo dataset's held-out one (its attributes).
    attrs = xr.open_zarr(rendered / SIZE_DIR / "evaluation/metrics.zarr").attrs
    assert attrs["climate_period"] == ["2000-04-04", "2000-04-04"]
    scores = pd.read_csv(rendered / SIZE_DIR / "evaluation/metrics.csv")
    summary = scores[scores["metric"].isin(SUMMARY_METRICS)].set_index(["variable", "metric"])
    assert len(summary) == len(VARIABLES) * len(SUMMARY_METRICS)
    for metric in ("std_ratio", "hourly_change_ratio"):
        rows = climate[climate["metric"] == metric].set_index("variable")["ratio"]
        for name in VARIABLES:
            assert summary.loc[(name, metric), "value"] == pytest.approx(rows[name])


def test_fidelity_compares_composed_trajectories_with_single_blankets(rendered):
    table = pd.read_csv(rendered / SIZE_DIR / "evaluation/fidelity.csv")
    assert list(table.columns) == FIDELITY_COLUMNS
    perfect = table["metric"].str.startswith("perfect_model_")
    fidelity = table[~perfect]
    assert len(fidelity) == 2 * len(VARIABLES)
    assert set(fidelity["metric"]) == {"std_ratio", "hourly_change_ratio"}
    check_perfect_model_rows(table[perfect], rendered)
    values = fidelity[["composed", "single", "ratio"]].to_numpy()
    assert np.isfinite(values).all() and (values > 0).all()
    np.testing.assert_allclose(fidelity["ratio"], fidelity["composed"] / fidelity["single"])
    # The composed column is the evaluation's own climate diagnostics of the members.
    climate = pd.read_csv(rendered / SIZE_DIR / "evaluation/climate.csv")
    composed = climate.set_index(["variable", "metric"])["ratio"]
    for row in fidelity.itertuples():
        assert row.composed == pytest.approx(composed[(row.variable, row.metric)])
    # T = 8, K = 4, O = 2: 3 blankets for each of the 2 members, sampled one by one.
    log = (rendered / "results/logs/default/fidelity/8h.log").read_text()
    assert "6 single blankets (K=4) at the blanket starts of 2 composed members" in log
    assert "composed / single" in log
    assert "perfect-model rows: the exact covariance of lms, 4 steps" in log  # the run's sampler


def check_perfect_model_rows(rows: pd.DataFrame, rendered) -> None:
    """What the run's composition costs a perfect model of each variable: the exact window
    denoiser of the held-out truth's autocorrelation, with the run's K = 4, O = 2, T = 8, 4
    steps and its two-scale composition (the tiny demo's coarse model: blocks of 2 states,
    windows of up to 4 blocks); the std and hourly change, and the work per step (no lag of
    24 hours or more fits in T = 8)."""
    assert len(rows) == 3 * len(VARIABLES)
    np.testing.assert_allclose(rows["ratio"], rows["composed"] / rows["single"])
    truth = xr.open_zarr(rendered / "resources/demo/era5_demo.zarr")
    series = truth["geopotential"].sel(time="2000-04-04", level=500).values
    schedule = build_schedule("rectified", 1e-3, 1e3)
    rule = Rule("two_scale", block=2, coarse_blanket=4, coarse_overlap=2)
    penalty = composition_penalty(autocorrelation(series, 8), 8, 4, 2, schedule, 4, rule=rule)
    geopotential = rows[rows["variable"] == "geopotential"].set_index("metric")["ratio"]
    assert geopotential["perfect_model_std_ratio"] == pytest.approx(penalty.std_ratio)
    change = geopotential["perfect_model_hourly_change_ratio"]
    assert change == pytest.approx(penalty.hourly_change_ratio)
    assert geopotential["perfect_model_work_per_step_ratio"] == pytest.approx(penalty.work)
    assert penalty.work > 1


def test_after_rendering_nothing_is_left_to_do(rendered):
    """Renders and evaluations are cached; `all` only adds the aggregate they did not need."""
    dry_run = run_snakemake(rendered, "-n", "render", "evaluate", "fidelity")
    assert "Nothing to be done" in dry_run.stdout
    assert planned_jobs(run_snakemake(rendered, "-n").stdout) == {"aggregate": 1, "all": 1}

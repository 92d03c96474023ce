"""Galleries, animations and score plots are real, non-blank images of the expected size."""

import sys
import types

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
import xarray as xr

from skyquilt.io.atomic import atomic_file
from skyquilt.io.video import ffmpeg_available
from skyquilt.plotting import animations, maps
from skyquilt.plotting import scores as score_plots
from skyquilt.scoring.metrics import score_table, seam_pairs, seam_table, spectrum_table, step_table

START = np.datetime64("2000-01-01T00", "ns")
HOUR = np.timedelta64(1, "h")
FORECAST_DIMS = ("time", "member", "prediction_timedelta", "level", "latitude", "longitude")


@pytest.fixture(scope="module")
def case() -> tuple[xr.Dataset, xr.Dataset]:
    """Hourly truth of 2 days (a travelling wave) and a 2-member, 6-state forecast from 06h."""
    latitude = np.linspace(80, -80, 9)
    longitude = np.arange(18) * 20.0
    hours = np.arange(48)
    wave = np.cos(np.deg2rad(latitude))[None, :, None] * np.sin(
        np.deg2rad(2 * longitude)[None, None, :] - hours[:, None, None] / 6
    )
    rng = np.random.default_rng(0)
    values = 54000 + 800 * np.stack([wave, 1.1 * wave], axis=1)
    truth = xr.Dataset(
        {
            "geopotential": (
                ("time", "level", "latitude", "longitude"),
                values,
                {"units": "m2 s-2"},
            ),
            "u_component_of_wind": (
                ("time", "latitude", "longitude"),
                10 * wave,
                {"units": "m s-1"},
            ),
        },
        coords={
            "time": START + hours * HOUR,
            "level": [500, 850],
            "latitude": latitude,
            "longitude": longitude,
        },
    )
    members = values[None, None, 6:12] + 200 * rng.normal(size=(1, 2, 6, 2, 9, 18))
    forecast = xr.Dataset(
        {
            "geopotential": (FORECAST_DIMS, members, {"units": "m2 s-2"}),
            "u_component_of_wind": (
                ("time", "member", "prediction_timedelta", "latitude", "longitude"),
                10 * wave[None, None, 6:12] + rng.normal(size=(1, 2, 6, 9, 18)),
                {"units": "m s-1"},
            ),
        },
        coords={
            "time": [START + 6 * HOUR],
            "member": [0, 1],
            "prediction_timedelta": np.arange(6) * HOUR,
            "level": [500, 850],
            "latitude": latitude,
            "longitude": longitude,
        },
    )
    return forecast, truth


def assert_real_image(image: np.ndarray, shape: tuple[int, int] | None = None) -> None:
    """A non-blank RGB(A) image: varying pixels and many colours."""
    if shape is not None:
        assert image.shape[:2] == shape
    assert image.std() > 0
    colours = np.unique(image[..., :3].reshape(-1, 3), axis=0)
    assert len(colours) > 20


def test_gallery_is_a_grid_of_truth_and_members(case, tmp_path):
    forecast, truth = case
    path = maps.gallery(forecast, truth, "geopotential", [0, 2, 5], tmp_path / "g.png", level=500)
    width, height = np.multiply(maps.GALLERY_PANEL_INCHES, (3, 3)) + maps.GALLERY_MARGIN_INCHES
    dpi = maps.GALLERY_DPI
    assert_real_image(iio.imread(path), (round(height * dpi), round(width * dpi)))


def test_gallery_of_a_variable_without_levels_and_chosen_members(case, tmp_path):
    forecast, truth = case
    path = maps.gallery(
        forecast, truth, "u_component_of_wind", [1], tmp_path / "u.png", members=[1]
    )
    assert_real_image(iio.imread(path))


def test_gallery_writes_nothing_when_it_fails(case, tmp_path):
    forecast, truth = case
    with pytest.raises(KeyError):
        maps.gallery(forecast, truth, "geopotential", [100], tmp_path / "g.png", level=500)
    assert list(tmp_path.iterdir()) == []


def test_colour_limits_are_the_outer_quantiles():
    field = xr.DataArray(np.arange(101.0))
    assert maps.colour_limits([field], quantile=0.1) == (10.0, 90.0)


def test_animation_is_a_gif_of_every_state_and_an_mp4(case, tmp_path):
    forecast, truth = case
    frames = animations.animation_frames(forecast, truth, "geopotential", 1, level=850)
    written = animations.write_animation(frames, tmp_path / "a.gif", tmp_path / "a.mp4", fps=2)
    gif = iio.imread(written[0], index=None)
    width, height = (
        np.multiply(animations.FRAME_SIZE_INCHES, animations.FRAME_DPI).round().astype(int)
    )
    assert gif.shape[:3] == (6, height, width)
    for frame in gif:
        assert_real_image(frame)
    # imageio-ffmpeg, one of skyquilt's dependencies, ships its own ffmpeg.
    assert ffmpeg_available(), "no ffmpeg: the environment lacks imageio-ffmpeg's binary"
    assert written[1] == tmp_path / "a.mp4"
    assert imageio_ffmpeg.count_frames_and_secs(str(written[1]))[0] == 6
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(p.name for p in written)


def test_animation_without_ffmpeg_is_a_gif_only(case, tmp_path, monkeypatch):
    forecast, truth = case
    monkeypatch.setattr(animations, "ffmpeg_available", lambda: False)
    frames = animations.animation_frames(
        forecast, truth, "geopotential", 0, level=500, indices=[0, 1]
    )
    written = animations.write_animation(frames, tmp_path / "a.gif", tmp_path / "a.mp4")
    assert written == [tmp_path / "a.gif"]
    assert not (tmp_path / "a.mp4").exists()


def test_ffmpeg_available_is_false_when_imageio_ffmpeg_finds_none(monkeypatch):
    def missing():
        raise RuntimeError("No ffmpeg exe could be found.")

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", missing)
    assert ffmpeg_available() is False


def test_frames_split_over_jobs_match_one_job(case, tmp_path):
    forecast, truth = case
    whole = list(animations.animation_frames(forecast, truth, "geopotential", 0, level=500))
    paths = [tmp_path / f"frame_{index:04d}.png" for index in range(6)]
    for part in ([0, 1, 2], [3, 4, 5]):
        frames = animations.animation_frames(
            forecast, truth, "geopotential", 0, level=500, indices=part
        )
        animations.save_frames(frames, [paths[index] for index in part])
    for frame, path in zip(whole, paths, strict=True):
        np.testing.assert_array_equal(iio.imread(path)[..., :3], frame)
    written = animations.write_animation(animations.load_frames(paths), tmp_path / "joined.gif")
    assert iio.imread(written[0], index=None).shape[0] == 6


def test_coastlines_are_optional():
    try:
        import cartopy  # noqa: F401
    except ImportError:
        assert maps.coastlines() == ()
    else:
        assert isinstance(maps.coastlines(), tuple)


def test_atomic_file_leaves_nothing_after_a_failure(tmp_path):
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "x.png") as temporary:
        temporary.write_bytes(b"partial")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_score_spectra_and_seam_plots_are_real_images(case, tmp_path):
    forecast, truth = case
    forecast = forecast[["geopotential"]].sel(level=[500])
    scores = score_table(forecast, truth)
    steps = step_table(forecast, truth)
    seams = seam_pairs(6, 4, 2)
    ratios = seam_table(steps, seams)
    units = {name: forecast[name].attrs["units"] for name in forecast.data_vars}
    for path in (
        score_plots.plot_scores(scores, tmp_path / "scores.png", units),
        score_plots.plot_spectra(spectrum_table(forecast, truth), tmp_path / "spectra.png", units),
        score_plots.plot_seams(steps, seams, ratios, tmp_path / "seams.png"),
        score_plots.plot_rank_histograms(scores, tmp_path / "rank_histogram.png"),
    ):
        assert_real_image(iio.imread(path))


def test_gallery_asks_for_a_level_of_a_variable_with_levels(case, tmp_path):
    forecast, truth = case
    with pytest.raises(ValueError, match="geopotential: give a level"):
        maps.gallery(forecast, truth, "geopotential", [0], tmp_path / "g.png")


def test_coastlines_from_offline_data_are_split_at_the_map_edge(case, tmp_path, monkeypatch):
    # A stand-in for cartopy with one coastline that crosses longitude 0.
    shapefile = tmp_path / "shapefiles" / "natural_earth" / "physical" / "ne_110m_coastline.shp"
    shapefile.parent.mkdir(parents=True)
    shapefile.touch()
    line = types.SimpleNamespace(coords=[(-20.0, 10.0), (-10.0, 5.0), (10.0, 0.0)])
    reader = types.SimpleNamespace(geometries=lambda: [line])
    shapereader = types.ModuleType("cartopy.io.shapereader")
    shapereader.Reader = lambda path: reader
    cartopy = types.ModuleType("cartopy")
    cartopy.config = {"data_dir": str(tmp_path), "pre_existing_data_dir": ""}
    cartopy.io = types.ModuleType("cartopy.io")
    cartopy.io.shapereader = shapereader
    monkeypatch.setitem(sys.modules, "cartopy", cartopy)
    monkeypatch.setitem(sys.modules, "cartopy.io", cartopy.io)
    monkeypatch.setitem(sys.modules, "cartopy.io.shapereader", shapereader)
    maps.coastlines.cache_clear()
    try:
        lines = maps.coastlines()
        assert [line[:, 0].tolist() for line in lines] == [[340.0, 350.0], [10.0]]
        forecast, truth = case
        path = maps.gallery(forecast, truth, "geopotential", [0], tmp_path / "g.png", level=500)
        assert_real_image(iio.imread(path))
    finally:
        maps.coastlines.cache_clear()

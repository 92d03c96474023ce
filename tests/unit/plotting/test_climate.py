"""The climate and fidelity plots read right: spectra as powers with the target band only where
the spectrum is judged, the truth's negligible power below the axis, and ratio panels scaled to
the ratios, not to a band's edge at 0."""

import imageio.v3 as iio
import numpy as np
import pandas as pd

from skyquilt.plotting import climate as climate_plots
from skyquilt.plotting.figures import new_figure
from skyquilt.scoring.climate import CLIMATE_COLUMNS, FIDELITY_COLUMNS

WAVENUMBERS = np.arange(17)


def climate_table() -> pd.DataFrame:
    """One variable whose truth holds power up to k = 10 and next to none beyond, where the
    model's power stays: the ratio there reaches 1e9, meaningless, and is not judged."""
    truth = np.where(WAVENUMBERS <= 10, 1e6 / (1.0 + WAVENUMBERS) ** 2, 1e-6)
    model = np.full(WAVENUMBERS.size, 1e3)
    judged = (WAVENUMBERS >= 1) & (truth >= 0.01 * truth[1:].max())
    spectrum = pd.DataFrame(
        {
            "variable": "geopotential",
            "level": 500.0,
            "metric": "spectrum_ratio",
            "wavenumber": WAVENUMBERS,
            "model": model,
            "reference": truth,
            "ratio": model / truth,
            "judged": judged,
        }
    )
    ratios = pd.DataFrame(
        {
            "variable": "geopotential",
            "level": 500.0,
            "metric": ["std_ratio", "hourly_change_ratio", "seam_ratio"],
            "wavenumber": np.nan,
            "model": [0.97, 1.1, 1.0],
            "reference": 1.0,
            "ratio": [0.97, 1.1, 1.0],
            "judged": True,
        }
    )
    return pd.concat([ratios, spectrum], ignore_index=True)[CLIMATE_COLUMNS]


def test_the_spectrum_panel_shows_both_powers_and_the_band_over_the_judged_wavenumbers():
    table = climate_table()
    figure, axes = new_figure(1, 1)
    climate_plots._spectrum_panel(axes[0, 0], table)
    ax = axes[0, 0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    spectrum = table[(table["metric"] == "spectrum_ratio") & (table["wavenumber"] >= 1)]
    np.testing.assert_array_equal(lines["truth"].get_ydata(), spectrum["reference"])
    np.testing.assert_array_equal(lines["model"].get_ydata(), spectrum["model"])
    assert max(line.get_ydata().max() for line in lines.values()) <= 1e6  # powers, not ratios
    (band,) = ax.collections
    band_x = np.concatenate([path.vertices[:, 0] for path in band.get_paths()])
    judged = spectrum.loc[spectrum["judged"], "wavenumber"]
    assert (band_x.min(), band_x.max()) == (judged.min(), judged.max()) == (1, 10)
    # The truth's negligible power (1e-6) lies below the axis; the model's lowest power, not.
    assert 1e-6 < ax.get_ylim()[0] <= 1e3 / 10


def test_ratio_panels_are_scaled_to_the_ratios_not_to_a_band_at_zero(tmp_path):
    fidelity = pd.DataFrame(
        {
            "variable": "geopotential",
            "level": 500.0,
            "metric": ["hourly_change_ratio", "std_ratio"],
            "composed": [1.0, 0.95],
            "single": [1.02, 0.96],
            "ratio": [0.98, 0.99],
        }
    )[FIDELITY_COLUMNS]
    figure, axes = new_figure(1, 1)
    climate_plots._ratio_panel(
        axes[0, 0], fidelity, ("hourly_change_ratio", "std_ratio"), climate_plots.FIDELITY_TARGETS
    )
    low, high = axes[0, 0].get_ylim()
    assert 0.8 < low < 0.95 and 1.15 < high < 1.3  # the band "at most 1.15" starts at 0
    for path in (
        climate_plots.plot_climate(climate_table(), tmp_path / "climate.png"),
        climate_plots.plot_fidelity(fidelity, tmp_path / "fidelity.png"),
    ):
        image = iio.imread(path)
        assert image.ndim == 3 and image.std() > 10  # a drawn image, not a blank one

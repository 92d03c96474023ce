"""A tiny decodable world under a directory whose name means something to a shell."""

from pathlib import Path

import torch
import xarray as xr

from skyquilt_testing.decoding import (
    install_autoencoder,
    random_autoencoder,
    write_synthetic_dataset,
)
from skyquilt_testing.models import write_random_model

# Space, quotes, $, &, ;, parentheses, #, !, *, ?, backtick: each means something to a shell.
ODD = 'odd dir it\'s "$5" & (x); #!*?`'
# The same without the single quote: Snakemake 9.27 quotes the `--wait-for-files` paths of a
# job it submits to SLURM with `\'` inside single quotes, which no shell reads back, so a path
# with a single quote cannot run through SLURM; everything else above can.
ODD_FOR_SLURM = 'odd dir "$5" & (x); #!*?`'
ODD_DATASET = "era 5 & data.zarr"


def odd_world(root: Path, name: str = ODD) -> tuple[Path, Path]:
    """The tiny random-weight model (latent (2, 4, 8), K = 8, with a random autoencoder in its
    latent_dir/ae) and the synthetic dataset, both under root / name."""
    base = root / name
    model_path = write_random_model(base / "models")
    dataset = write_synthetic_dataset(base / ODD_DATASET)
    autoencoder = random_autoencoder(xr.open_zarr(dataset))
    install_autoencoder(model_path, autoencoder, torch.zeros(2, 4, 8), torch.ones(2, 4, 8))
    return model_path, dataset

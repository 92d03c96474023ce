"""The fingerprints of a run's inputs when the workflow is parsed, for the rules' params.

Snakemake reruns a job when its params differ from those it recorded for the job's outputs
(its `params` rerun trigger), whatever the files' times. So the rules carry the content
fingerprints (skyquilt.io.fingerprints) of what their jobs read: generate the denoiser's (in
the run's settings, `model_fingerprint`), decode the decoder's and the dataset's grid, the
render rules, the evaluation and the composition fidelity the truth of the variables they
read. A change of content then reruns exactly the jobs that read it, and what follows them.

Inputs that the workflow builds itself (the demo's model and dataset) are outputs of its own
rules, which Snakemake tracks by time; their params carry None, not a fingerprint, since a
fingerprint known only from the second parse on would rerun every job once.

Each fingerprint is computed once per parse, and only when a rule asks for it (the truth only
when the DAG holds a render or an evaluation); reading is cached (see skyquilt.io.fingerprints).
"""

import functools
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from skyquilt.io.fingerprints import FingerprintError, dataset_record, files_record
from skyquilt.models.config import ModelDirectory
from skyquilt.planning.dataset_checks import decoder_outputs, open_dataset
from skyquilt.planning.errors import ConfigError
from skyquilt.planning.products import Field, Products

if TYPE_CHECKING:
    import xarray as xr


def _normalised(paths: Collection[str]) -> set[str]:
    return {os.path.normpath(path) for path in paths}


class PlannedInputs:
    """The fingerprints of the inputs of the on-request rules (decode, render, evaluate,
    fidelity), computed when first asked for.

    built: model and dataset paths that the workflow builds itself (their fingerprints are
    None).
    """

    def __init__(self, products: Products, built: Collection[str] = ()):
        self.products = products
        self.built = _normalised(built)
        self._truth: dict[tuple[str, ...], str | None] = {}

    def _is_built(self, path: str | None) -> bool:
        return path is None or os.path.normpath(path) in self.built

    @functools.cached_property
    def _dataset(self) -> "xr.Dataset":
        return open_dataset(self.products.dataset)

    @functools.cached_property
    def decoder_variables(self) -> list[str]:
        """The dataset variables the decoder produces (from its config)."""
        return decoder_outputs(self.products.plan.settings.model_path)[0]

    def _record(self, part: str, variables: Sequence[str]) -> str:
        path = self.products.dataset
        try:
            return dataset_record(path, self._dataset, variables, part)["fingerprint"]
        except FingerprintError as error:
            raise ConfigError(f"dataset: {error}") from None

    @functools.cached_property
    def decoding(self) -> dict[str, str | None]:
        """The params of a decode job: the fingerprints of the decoder (autoencoder config and
        weights, latent statistics) and of the dataset's grid; None for what the workflow
        builds."""
        model_path = self.products.plan.settings.model_path
        if self._is_built(model_path):
            return {"decoder": None, "grid": None}
        try:
            decoder = files_record(ModelDirectory(Path(model_path)).decoder_files().values())
        except FingerprintError as error:
            raise ConfigError(f"model_path: {error}") from None
        built_dataset = self._is_built(self.products.dataset)
        grid = None if built_dataset else self._record("grid", self.decoder_variables)
        return {"decoder": decoder["fingerprint"], "grid": grid}

    def truth(self, fields: Sequence[Field] | None = None) -> str | None:
        """The fingerprint of the truth of the variables of `fields` (of every variable the
        decoder produces when None); None when the workflow builds the dataset, or the model
        whose decoder would name the variables."""
        if self._is_built(self.products.dataset):
            return None
        if fields:
            variables = sorted({field.variable for field in fields})
        elif self._is_built(self.products.plan.settings.model_path):
            return None
        else:
            variables = self.decoder_variables
        key = tuple(variables)
        if key not in self._truth:
            self._truth[key] = self._record("truth", key)
        return self._truth[key]

"""The Backbone protocol: a plug-in architecture that meets it, named by import path in a model's
config, runs through planning and generation; a factory that builds no module is refused."""

import numpy as np
import pytest
import xarray as xr
from skyquilt_testing.plug_ins import NOT_A_MODULE, per_state_mixer, write_plug_in_model
from skyquilt_testing.workflow import tiny_config

from skyquilt.jobs.generate import run_generation
from skyquilt.models.blanket_net import BlanketNet
from skyquilt.models.registry import Backbone, build_backbone
from skyquilt.planning.plan import make_plan


def test_a_plug_in_that_meets_the_backbone_protocol_runs(tmp_path):
    plug_in = per_state_mixer((2, 4, 8), 8, width=4)
    assert isinstance(plug_in, Backbone) and not isinstance(plug_in, BlanketNet)
    model_path = write_plug_in_model(tmp_path / "model")
    plan = make_plan(tiny_config(model_path))  # consents to skyquilt_testing's code
    output = tmp_path / "0.zarr"
    assert run_generation(plan.request(12, "2000-04-20T12", 0), str(output), threads=1) == 0
    latent = xr.open_zarr(output)["latent"]
    assert latent.shape == (12, 2, 4, 8) and np.isfinite(latent.values).all()


def test_a_factory_that_builds_no_module_is_refused_naming_it():
    with pytest.raises(ValueError, match=f"backbone '{NOT_A_MODULE}' .*built a function, not a"):
        build_backbone(NOT_A_MODULE, (2, 4, 8), 8, {}, trust=True)

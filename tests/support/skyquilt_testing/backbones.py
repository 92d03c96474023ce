"""Plug-in backbones for fault tests: the built-in BlanketNet that fails, stops or slows on cue.

A test model names it in its config.yaml by import path, the way users plug in their own
architectures (skyquilt.models.registry):

    backbone:
      name: skyquilt_testing.backbones:faulty
      kwargs: {...}              # those of blanket_net

A run's config must consent to importing it (`CONSENT`: trust_model_code lists this module).
It is a BlanketNet with the same parameters, so the weights of a model written with the
built-in backbone load unchanged (`plug_in` rewrites only config.yaml), and without a cue it
computes exactly what BlanketNet computes.

Cues come from the job's environment, so one run can single out one member:

    SKYQUILT_TESTING_FAIL="<output>@<n>[,<output>@<n>...]"
        raise InjectedFailure on the n-th denoiser call (counted from 1);
    SKYQUILT_TESTING_PAUSE="<output>@<n>[,<output>@<n>...]"
        write one line "... paused at denoiser call <n> of <output> (pid <pid>)" to stderr
        (the job's log), then stop the process with SIGSTOP, so that a test finds it at
        exactly that point and sends SIGKILL (a scheduler killing the job) or SIGCONT;
    SKYQUILT_TESTING_SLOW="<output>@<seconds>[,<output>@<seconds>...]"
        sleep that many seconds (a decimal number) before every denoiser call: a member that
        takes as long as a test needs, e.g. longer than its SLURM time limit.

The backbone does not know which member it denoises: <output> is matched as a substring of
the job's `--output` argument (the shard path of scripts/generate.py, e.g.
"12h/shards/2000-04-20T12/1.zarr"). A process without an `--output` argument (a test that
calls run_generation itself) never gets a cue. Every process counts its own calls.
"""

import os
import signal
import sys
import time
from pathlib import Path

import yaml
from torch import Tensor

from skyquilt.io.atomic import write_yaml
from skyquilt.models.blanket_net import BlanketNet
from skyquilt.models.config import ModelDirectory

FAIL_VARIABLE = "SKYQUILT_TESTING_FAIL"
PAUSE_VARIABLE = "SKYQUILT_TESTING_PAUSE"
SLOW_VARIABLE = "SKYQUILT_TESTING_SLOW"
FAILURE_MESSAGE = "injected failure at denoiser call"
PAUSED_MESSAGE = "paused at denoiser call"
FAULTY = "skyquilt_testing.backbones:faulty"
# The config keys a run of a model with this backbone needs: consent to import this module.
CONSENT = {"trust_model_code": ["skyquilt_testing.backbones"]}


class InjectedFailure(RuntimeError):
    """The failure a test asked for with SKYQUILT_TESTING_FAIL."""


def job_output(argv: list[str] | None = None) -> str | None:
    """The value of the process's `--output` argument, None without one."""
    argv = sys.argv if argv is None else argv
    for index, argument in enumerate(argv):
        if argument == "--output" and index + 1 < len(argv):
            return argv[index + 1]
        if argument.startswith("--output="):
            return argument.partition("=")[2]
    return None


def cue(variable: str, output: str | None, kind: type = int) -> int | float | None:
    """The value (a denoiser call, or seconds with kind=float) that `variable` gives the job
    writing `output`, if any."""
    if output is None:
        return None
    for entry in filter(None, os.environ.get(variable, "").split(",")):
        text, separator, value = entry.rpartition("@")
        try:
            number = kind(value)
        except ValueError:
            number = None
        if not separator or number is None or number < 0:
            raise ValueError(f"{variable}: {entry!r} is not '<output>@<{kind.__name__}>'")
        if text and text in output:
            return number
    return None


class FaultyBlanketNet(BlanketNet):
    """BlanketNet that fails or stops itself at the denoiser call its cue names, or sleeps
    before every call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.output = job_output()
        self.fail_at = cue(FAIL_VARIABLE, self.output)
        self.pause_at = cue(PAUSE_VARIABLE, self.output)
        self.delay = cue(SLOW_VARIABLE, self.output, float)
        self.calls = 0

    def forward(self, x: Tensor, c_noise: Tensor, time_features: Tensor) -> Tensor:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if self.calls == self.fail_at:
            raise InjectedFailure(
                f"{FAIL_VARIABLE}: {FAILURE_MESSAGE} {self.calls} of {self.output}"
            )
        if self.calls == self.pause_at:
            print(
                f"{PAUSE_VARIABLE}: {PAUSED_MESSAGE} {self.calls} of {self.output} "
                f"(pid {os.getpid()})",
                file=sys.stderr,
                flush=True,
            )
            os.kill(os.getpid(), signal.SIGSTOP)
        return super().forward(x, c_noise, time_features)


def faulty(latent_shape: tuple[int, int, int], blanket_size: int, **kwargs) -> FaultyBlanketNet:
    """The factory a model's config.yaml names: `skyquilt_testing.backbones:faulty`."""
    return FaultyBlanketNet(latent_shape, blanket_size, **kwargs)


def plug_in(model_path: Path) -> Path:
    """Make the model at `model_path` (written with blanket_net) use the faulty backbone.

    Only its config.yaml changes: the weights fit as they are. Returns `model_path`.
    """
    config_file = ModelDirectory(Path(model_path)).config_file
    config = yaml.safe_load(config_file.read_text())
    if config["backbone"]["name"] != "blanket_net":
        raise ValueError(f"{config_file}: the faulty backbone wraps blanket_net only")
    config["backbone"]["name"] = FAULTY
    write_yaml(config, config_file)
    return Path(model_path)

"""Checkpoints of a member's sampler state, so that a killed generation job resumes.

A checkpoint holds everything the rest of the trajectory depends on: the sampler's state
(`skyquilt.diffusion.samplers.SamplerState`: the current tensor, the step index and the
sampler's own history), and torch's RNG state (CPU, and the device's when it is a GPU), from
which stochastic samplers draw. Resuming from it gives the shard an uninterrupted run gives,
bit for bit, on the same machine.

It also records a fingerprint of what the state depends on (`fingerprint`): the member's
request, the content of the model's config and weights files and the skyquilt, torch and
azula versions; and a checksum of its own contents (`payload_checksum`: every tensor's bytes,
dtype and shape, and every other value). A checkpoint whose fingerprint differs, whose
checksum does not match (a flipped bit), whose state is not finite, or that cannot be read is
discarded with one log line naming the file and why, never resumed: sampling starts over.
A state with NaN or Inf values is never written (`NonFiniteStateError`).

Files are written with torch.save (plain tensors, ints, lists and strings), atomically, and
read with torch.load(weights_only=True).
"""

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from skyquilt import __version__
from skyquilt.io.atomic import atomic_file
from skyquilt.io.fingerprints import files_record
from skyquilt.models.config import ModelDirectory
from skyquilt.sampling.request import NOT_PROVENANCE, MemberRequest
from skyquilt.sampling.stopping import SamplingStopped, StopRequest

log = logging.getLogger(__name__)

# 2: with a checksum of the contents.
FORMAT = 2


class NonFiniteStateError(RuntimeError):
    """The sampler's state has NaN or Inf values: no checkpoint is written from it."""


@dataclass(frozen=True)
class CheckpointPolicy:
    """When to write a checkpoint: every `every_steps` sampler steps and/or every
    `every_minutes` minutes of sampling, whichever comes first; None turns either off.

    Config key `generation.checkpoint: {every_steps, every_minutes}`; the default is every
    10 minutes and no step interval.
    """

    every_steps: int | None = None
    every_minutes: float | None = 10.0

    @property
    def enabled(self) -> bool:
        """Whether any interval is set."""
        return self.every_steps is not None or self.every_minutes is not None


def fingerprint(request: MemberRequest) -> str:
    """sha256 of everything a member's sampler state depends on.

    The request's JSON without the fields that never change values (NOT_PROVENANCE); the
    content fingerprint of the model's config.yaml and of the weights file it uses, and of its
    coarse model's when the member composes two_scale (skyquilt.io.fingerprints: read once,
    then cached by the files' stamps); the skyquilt, torch and azula versions, since another
    version may change the arithmetic.
    """
    values = dataclasses.asdict(request)
    for name in NOT_PROVENANCE:
        values["settings"].pop(name, None)
    settings = request.settings
    files = ModelDirectory(Path(settings.model_path)).denoiser_files(
        settings.model_target, settings.composition
    )
    parts = {
        "request": values,
        "model": files_record(files)["fingerprint"],
        "skyquilt": __version__,
        "torch": torch.__version__,
        "azula": importlib.metadata.version("azula"),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """torch's RNG state: the CPU's, and the device's when it is a GPU."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    """Inverse of `rng_state`."""
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _digest(value: object, digest: "hashlib._Hash") -> None:
    """Add `value` (tensors, dicts, lists and plain values) to `digest`, unambiguously."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"tensor {tensor.dtype} {list(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)}\n".encode())
        for key in sorted(value, key=str):
            digest.update(f"{key!r}\n".encode())
            _digest(value[key], digest)
    elif isinstance(value, list | tuple):
        digest.update(f"list {len(value)}\n".encode())
        for item in value:
            _digest(item, digest)
    else:
        digest.update(f"{type(value).__name__} {value!r}\n".encode())


def payload_checksum(payload: dict[str, Any]) -> str:
    """sha256 of a checkpoint's contents but its "checksum" entry."""
    digest = hashlib.sha256()
    _digest({key: value for key, value in payload.items() if key != "checksum"}, digest)
    return digest.hexdigest()


def _tensors(state: dict[str, Any]) -> list[torch.Tensor]:
    """The floating-point tensors of a sampler state: x and its history."""
    found = [state.get("x"), *state.get("history", ())]
    return [
        value for value in found if isinstance(value, torch.Tensor) and value.is_floating_point()
    ]


def finite(state: dict[str, Any]) -> bool:
    """Whether every floating-point tensor of a sampler state is finite."""
    return all(bool(torch.isfinite(tensor).all()) for tensor in _tensors(state))


def save_checkpoint(
    path: Path, stamp: str, state: dict[str, Any], steps: int, device: torch.device
) -> None:
    """Write the sampler `state` after step state["step"] of `steps`, atomically, with its
    checksum; NonFiniteStateError (and nothing written) when the state is not finite."""
    if not finite(state):
        raise NonFiniteStateError(
            f"the sampler state after step {state['step']} of {steps} has NaN/Inf values: no "
            f"checkpoint written to {path}, and no shard will be"
        )
    payload = {
        "format": FORMAT,
        "fingerprint": stamp,
        "steps": steps,
        "state": state,
        "rng": rng_state(device),
    }
    payload["checksum"] = payload_checksum(payload)
    with atomic_file(path) as temporary:
        torch.save(payload, temporary)


def read_checkpoint(
    path: Path, stamp: str, steps: int | None = None
) -> tuple[dict | None, str | None]:
    """The checkpoint at `path` if it can be resumed, else why not.

    Returns (payload, None) for a usable checkpoint, (None, reason) for one to discard, and
    (None, None) when there is none.
    """
    path = Path(path)
    if not path.is_file():
        return None, None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        state = payload["state"]
        step = int(state["step"])
        stored = (payload["format"], payload["fingerprint"], int(payload["steps"]))
        if not isinstance(state["x"], torch.Tensor) or "cpu" not in payload["rng"]:
            raise ValueError("incomplete")
    except Exception as error:  # noqa: BLE001 - any damage means: do not resume
        return None, f"damaged ({type(error).__name__}: {error})"
    if stored[0] != FORMAT:
        return None, f"format {stored[0]}, not {FORMAT}"
    if payload.get("checksum") != payload_checksum(payload):
        return None, "damaged (its contents do not match their checksum)"
    if not finite(state):
        return None, "its sampler state has NaN/Inf values"
    if stored[1] != stamp:
        return None, (
            "made for another request, model or software version (fingerprint "
            f"{stored[1][:12]}, expected {stamp[:12]})"
        )
    if (steps is not None and stored[2] != steps) or not 0 < step <= stored[2]:
        return None, f"step {step} of {stored[2]} does not fit a run of {steps} steps"
    return payload, None


def discard_checkpoint(path: Path, reason: str) -> None:
    """Remove a checkpoint that must not be resumed, saying why."""
    log.warning("discarding checkpoint %s: %s", path, reason)
    Path(path).unlink(missing_ok=True)


class Checkpointer:
    """Writes a member's checkpoints while it is sampled (rank 0 only), by `policy`, and stops
    sampling when `stop` (a `stopping.StopRequest`) is set.

    `after_step(state)` is called after every sampler step; it writes when `every_steps`
    steps or `every_minutes` minutes have passed since the start or the last checkpoint,
    never after the last step (the shard follows at once). When any rank was asked to stop,
    it writes the checkpoint whatever the policy, waits for every rank, and raises
    `stopping.SamplingStopped`.
    """

    def __init__(
        self,
        path: Path,
        policy: CheckpointPolicy,
        stamp: str | None,
        request: MemberRequest,
        device: torch.device,
        write: bool = True,
        stop: StopRequest | None = None,
        distributed: bool = False,
    ):
        self.path = Path(path)
        self.policy = policy
        self._print = stamp
        self.request = request
        self.steps = 0
        self.device = device
        self.write = write
        self.stop = stop
        self.distributed = distributed
        self.last_step: int | None = None
        self.last_time = time.monotonic()
        self.written = 0
        self.seconds = 0.0

    @property
    def fingerprint(self) -> str:
        """The member's fingerprint, computed at the first checkpoint (it reads the weights)."""
        if self._print is None:
            self._print = fingerprint(self.request)
        return self._print

    def start(self, step: int, steps: int | None = None) -> None:
        """Sampling (re)starts at `step` (of `steps`): intervals count from here."""
        self.last_step, self.last_time = step, time.monotonic()
        if steps is not None:
            self.steps = steps

    def due(self, step: int) -> bool:
        """Whether to write a checkpoint after `step` steps."""
        if not (self.write and self.policy.enabled) or step >= self.steps:
            return False
        every_steps, every_minutes = self.policy.every_steps, self.policy.every_minutes
        if every_steps is not None and step - (self.last_step or 0) >= every_steps:
            return True
        return every_minutes is not None and time.monotonic() - self.last_time >= 60 * every_minutes

    def after_step(self, state: dict[str, Any]) -> None:
        """Stop when asked to (see the class), else write the state when a checkpoint is due."""
        step = int(state["step"])
        if self.stop is not None and step < self.steps:
            if self.stop.agreed(self.device, self.distributed):
                self._stop(state, step)
        if self.due(step):
            self._save(state, step)

    def _save(self, state: dict[str, Any], step: int) -> None:
        began = time.perf_counter()
        save_checkpoint(self.path, self.fingerprint, state, self.steps, self.device)
        self.seconds += time.perf_counter() - began
        self.written += 1
        self.start(step)
        log.info("checkpoint at step %d of %d: %s", step, self.steps, self.path)

    def _stop(self, state: dict[str, Any], step: int) -> None:
        if self.write:
            self._save(state, step)
        if self.distributed:
            dist.barrier()  # rank 0's checkpoint is on disk before any rank ends
        raise SamplingStopped(self.stop.name, step, self.steps, self.path)

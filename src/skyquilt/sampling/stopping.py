"""Stopping a member's sampling early on a signal, so that a later job resumes it.

A scheduler warns a job before its time limit (SLURM's `sbatch --signal`), or asks it to end
(SIGTERM on preemption or `scancel`). `StopRequest.install` turns such signals into a flag;
the `Checkpointer` (`skyquilt.sampling.checkpoints`) reads it after every sampler step and,
once it is set, writes the member's checkpoint and raises `SamplingStopped`. The handler only
sets the flag, so neither a step's arithmetic nor the checkpoint's write is ever interrupted;
the job stops at the end of the step it is in, and always after at least one step, so every
job makes progress.

With several processes the ranks agree after every step (`StopRequest.agreed`, an all-reduce),
so they all stop after the same step even when the signal reached only some of them.
May import torch and the sampling layer's own modules.
"""

import logging
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


class SamplingStopped(Exception):
    """Sampling stopped on a signal after step `step` of `steps`, its state saved at `path`."""

    def __init__(self, signal_name: str, step: int, steps: int, path: Path):
        super().__init__(f"{signal_name}: stopped after step {step} of {steps}, checkpoint {path}")
        self.signal_name, self.step, self.steps, self.path = signal_name, step, steps, path


class StopRequest:
    """Whether this process was asked to stop sampling, and by which signal."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None

    @property
    def name(self) -> str:
        """The name of the stop signal, e.g. 'SIGURG'."""
        return self.signal.name if self.signal is not None else "no signal"

    def _handle(self, number: int, _frame: object) -> None:
        if self.signal is None:
            self.signal = signal.Signals(number)
            log.warning("received %s: stopping after the current sampler step", self.name)

    @contextmanager
    def install(self, signals: Sequence[signal.Signals]) -> Iterator["StopRequest"]:
        """Handle `signals` by setting the flag while the block runs, then restore the
        previous handlers."""
        previous = {number: signal.signal(number, self._handle) for number in signals}
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def agreed(self, device: torch.device, distributed: bool) -> bool:
        """Whether any rank was asked to stop; every rank must call it after the same step.

        The ranks share the signal too (the largest number received), so that each names it.
        """
        if distributed:
            number = torch.tensor([int(self.signal or 0)], device=device)
            dist.all_reduce(number, op=dist.ReduceOp.MAX)
            if number.item() and self.signal is None:
                self.signal = signal.Signals(int(number.item()))
        return self.signal is not None

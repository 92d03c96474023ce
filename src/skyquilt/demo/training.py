"""What the demo's training loops share: a budget of optimiser steps and wall time."""

import math
import time


class TrainingBudget:
    """At most `steps` optimiser steps and `max_minutes` of wall time, from construction."""

    def __init__(self, steps: int, max_minutes: float):
        self.steps = steps
        self.seconds = 60.0 * max_minutes
        self.start = time.monotonic()

    def fraction(self, step: int) -> float:
        """How much of the budget is used after `step` steps: in [0, 1]."""
        elapsed = (time.monotonic() - self.start) / self.seconds
        return min(max(step / self.steps, elapsed), 1.0)

    def spent(self, step: int) -> bool:
        """Whether the budget is used up after `step` steps (or by the clock)."""
        return self.fraction(step) >= 1.0

    def cosine(self, step: int) -> float:
        """Learning-rate factor 0.5 (1 + cos(pi * fraction)), from 1 down to 0."""
        return 0.5 * (1 + math.cos(math.pi * self.fraction(step)))

    def elapsed(self) -> float:
        """Seconds since the budget started."""
        return time.monotonic() - self.start

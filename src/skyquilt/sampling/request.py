"""What determines one ensemble member, as one frozen value passed from the plan to the job.

The workflow builds a `RunSettings` once when it is parsed (everything the members of a run
share) and hands it to every generation job as JSON; the job adds its wildcards to get its
`MemberRequest`. The request's `provenance()` is what a shard records and what the aggregate
checks, so no list of these keys exists anywhere else. Torch-free: the plan imports it.
"""

import dataclasses
import json
from dataclasses import dataclass, field

import numpy as np

from skyquilt.sampling.seeding import member_seed

# Provenance names a few fields as the shards have always recorded them.
PROVENANCE_NAMES = {"sampler_options": "sampler_config"}
# Fields that never change a member's values: not part of its provenance.
NOT_PROVENANCE = ("max_blankets_per_batch", "trust_model_code")
# Fields that a shard records by content, with the files they stand for (its attribute
# `inputs`, see skyquilt.io.fingerprints), and that readers check as such: not attributes.
FINGERPRINTS = ("model_fingerprint",)


@dataclass(frozen=True)
class RunSettings:
    """The settings every member of a run shares (everything that changes a member's values).

    sampler_options: the sampler's options with its defaults filled in.
    composition: how the blankets compose, one of `blankets.COMPOSITIONS` (the config's
        `generation.composition`, with auto resolved for the run's model).
    max_blankets_per_batch: the most blankets per denoiser call (memory), None for all.
    trust_model_code: consent to import a backbone that the model's config.yaml names by
        import path: true, or a tuple of module prefixes (config key `trust_model_code`).
        It never changes a member's values, so it is no part of the provenance.
    model_fingerprint: the fingerprint of the denoiser's config and weights when the workflow
        was parsed (skyquilt.io.fingerprints), so that a change of their content changes the
        settings and reruns every member; None for a model that the workflow builds itself.
    """

    model_path: str
    model_target: str
    sampler: str
    sampler_options: dict = field(hash=False)
    steps: int
    precision: str
    overlap: int
    stitch: str
    seed: int
    composition: str = "blankets"
    max_blankets_per_batch: int | None = None
    trust_model_code: bool | tuple[str, ...] = field(default=False, hash=False)
    model_fingerprint: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.trust_model_code, list):  # from JSON
            object.__setattr__(self, "trust_model_code", tuple(self.trust_model_code))

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): the same settings always give the same text."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RunSettings":
        """Inverse of `to_json`."""
        return cls(**json.loads(text))

    def provenance(self) -> dict:
        """The run's part of a shard's attributes, in field order, options as JSON text."""
        provenance = {}
        for item in dataclasses.fields(self):
            if item.name in NOT_PROVENANCE or item.name in FINGERPRINTS:
                continue
            value = getattr(self, item.name)
            if isinstance(value, dict):
                value = json.dumps(value, sort_keys=True)
            provenance[PROVENANCE_NAMES.get(item.name, item.name)] = value
        return provenance

    def member(
        self, trajectory_size: int | str, start_date: str, member: int | str
    ) -> "MemberRequest":
        """The request of one member of this run: T states from `start_date` ('YYYY-MM-DDTHH')."""
        return MemberRequest(self, int(trajectory_size), start_date, int(member))


@dataclass(frozen=True)
class MemberRequest:
    """One member: its run's settings, its trajectory size T, start date label and index."""

    settings: RunSettings
    trajectory_size: int
    start_date: str
    member: int

    @property
    def start_time(self) -> np.datetime64:
        """The start date as datetime64[ns]."""
        return np.datetime64(self.start_date, "ns")

    @property
    def seed(self) -> int:
        """The member's own seed, derived from (run seed, T, start date, member)."""
        return member_seed(self.settings.seed, self.trajectory_size, self.start_date, self.member)

    @property
    def name(self) -> str:
        """'<T>/<start date>/<member>', as in log lines and paths."""
        return f"{self.trajectory_size}/{self.start_date}/{self.member}"

    def to_json(self) -> str:
        """Canonical JSON of the whole request."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "MemberRequest":
        """Inverse of `to_json`."""
        values = json.loads(text)
        return cls(**{**values, "settings": RunSettings(**values["settings"])})

    def provenance(self) -> dict:
        """A shard's attributes that identify what was asked: the run's, then T, date, member."""
        identity = {
            item.name: getattr(self, item.name)
            for item in dataclasses.fields(self)
            if item.name != "settings"
        }
        return self.settings.provenance() | identity

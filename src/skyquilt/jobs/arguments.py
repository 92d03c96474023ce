"""What a rule hands its job, read back into the library's types, so that scripts/ call only
`skyquilt.jobs`.

Rules pass the run's settings as JSON (`RunSettings.to_json`: one string that every job of the
run shares, which Snakemake records and compares to decide reruns) and fields as the config's
mappings.
"""

from skyquilt.planning.products import Field, parse_fields
from skyquilt.sampling.request import RunSettings


def run_settings(text: str) -> RunSettings:
    """The run's settings from a rule's `settings` parameter (JSON)."""
    return RunSettings.from_json(text)


def fields(entries: list[dict] | None, key: str) -> list[Field] | None:
    """Fields [{variable, level}, ...] of config section `key`; None stays None (every field)."""
    return parse_fields(entries, key)

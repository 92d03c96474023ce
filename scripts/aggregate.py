"""Aggregate job: merge the member shards of one trajectory size (rule `aggregate`)."""

import contextlib
import json

from skyquilt.aggregation import run_aggregate

with open(snakemake.log[0], "w") as log, contextlib.redirect_stderr(log):  # noqa: F821
    run_aggregate(
        shards=list(snakemake.input),  # noqa: F821
        output=snakemake.output[0],  # noqa: F821
        expected=json.loads(snakemake.params.expected),  # noqa: F821
        start_dates=list(snakemake.params.start_dates),  # noqa: F821
        members=list(snakemake.params.members),  # noqa: F821
    )

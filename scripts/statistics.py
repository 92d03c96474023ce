"""Statistics job: ensemble statistics of one (size, start date) (rule `ensemble_statistics`)."""

import contextlib
import traceback

from skyquilt.jobs.statistics import run_statistics

with open(snakemake.log[0], "w") as log, contextlib.redirect_stderr(log):  # noqa: F821
    try:
        run_statistics(
            decoded=list(snakemake.input.decoded),  # noqa: F821
            output=snakemake.output[0],  # noqa: F821
            quantiles=list(snakemake.params.quantiles),  # noqa: F821
            block_mb=snakemake.params.block_mb,  # noqa: F821
        )
    except BaseException:
        traceback.print_exc()  # the log ends with why the job failed
        raise

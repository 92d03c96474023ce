"""Where the jobs run: backend local refuses an executor that submits jobs; a SLURM run (also
`-n` with the SLURM profile) has its paths checked, its cluster checked (the preflight) and its
queue summarised while it waits (skyquilt.planning.slurm). Included after rules/common.smk.
"""

import functools

from skyquilt.planning.slurm.executor import (
    check_cluster,
    check_executor,
    constant_resources,
    slurm_settings,
    status_polling,
)
from skyquilt.planning.slurm.job_paths import check_slurm_paths
from skyquilt.planning.slurm.queue import listen_for_run_id, start_queue_summaries

# The SLURM executor logs the run's id as it starts, before `onstart`: listen from here on.
SLURM_RUN = listen_for_run_id(logger) if workflow.is_main_process else None


@functools.cache
def check_where_jobs_run():
    """Fail with one line when backend local meets an executor that submits jobs (SLURM),
    when a path of a SLURM run would not reach its jobs intact, or when the SLURM cluster
    would make the run hang or fail late (the preflight; both also on `-n` with the SLURM
    profile); then, on a SLURM run, log the run's jobs by state every
    hardware.queue_summary_every seconds.

    The executor is known only once the DAG is built (a dry run stands in for it), so the
    aggregate's and the on-request rules' input functions call this, once, and so does
    `onstart` for runs of other targets (a member alone).
    """
    plugin = workflow.executor_plugin
    if not workflow.is_main_process or plugin is None:
        return
    hardware = config["hardware"]
    checked(check_executor, hardware, plugin.name)
    slurm = slurm_settings(workflow)
    if slurm is None:
        return  # jobs run here: no SLURM command is called
    checked(check_slurm_paths, config, slurm[0].pass_command_as_script)
    if hardware["preflight"]:
        polling, resources = status_polling(*slurm), constant_resources(workflow)
        logger.info(
            f"skyquilt: {checked(check_cluster, polling, hardware, PLAN.resources, resources)}"
        )
    if plugin.name == "slurm":
        start_queue_summaries(logger, SLURM_RUN, hardware["queue_summary_every"])


onstart:
    check_where_jobs_run()

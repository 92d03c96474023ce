"""The run's SLURM jobs by state, as the queue summaries print them, and the run id they learn
from the executor plugin's log line."""

import logging

from skyquilt.planning.slurm.queue import RunIdListener, summarise_states


def test_states_are_counted_with_the_reasons_jobs_pend():
    lines = "PENDING|Resources\nRUNNING|None\nPENDING|Priority\nCOMPLETED|None\nPENDING|Resources\n"
    assert summarise_states(lines) == (
        "3 PENDING (Resources: 2, Priority: 1), 1 RUNNING, 1 COMPLETED"
    )


def test_no_listed_job_says_why_squeue_may_not_list_it():
    assert summarise_states("") == (
        "none listed (finished jobs leave squeue after the cluster's MinJobAge)"
    )


def test_the_run_id_comes_from_the_plugin_s_log_line():
    logger = logging.getLogger("skyquilt-test-run-id")
    listener = RunIdListener()
    logger.addHandler(listener)
    logger.warning("Job 3 has been submitted with SLURM jobid 12 (log: x.log).")
    assert listener.run_id is None
    logger.warning("SLURM run ID: 5f0c2b7e-1d2c-4f39-9a0f-0e6f2a1b7c3d")
    assert listener.run_id == "5f0c2b7e-1d2c-4f39-9a0f-0e6f2a1b7c3d"

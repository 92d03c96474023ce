"""generation.checkpoint reaches the jobs, and changing it makes no finished member rerun."""

from skyquilt_testing.workflow import run_snakemake, tiny_config, write_config


def test_checkpoint_settings_rerun_nothing_and_leave_no_checkpoint(tiny_model, tmp_path):
    every_step = {"checkpoint": {"every_steps": 1, "every_minutes": None}}
    write_config(tmp_path, tiny_config(tiny_model, generation=every_step))
    done = run_snakemake(tmp_path, "--cores", "2", "-p")
    assert "--checkpoint-dir results/checkpoints/default --checkpoint-every-steps 1" in (
        done.stdout + done.stderr
    )
    log = (tmp_path / "results/logs/default/generate/12h/2000-04-03T00/0.log").read_text()
    assert "checkpoint at step 1 of 3" in log and "removed checkpoint" in log
    assert not list((tmp_path / "results/checkpoints").rglob("*.pt"))
    for checkpoint in ({"every_steps": None, "every_minutes": 1}, {}):
        write_config(tmp_path, tiny_config(tiny_model, generation={"checkpoint": checkpoint}))
        again = run_snakemake(tmp_path, "-n")
        assert "Nothing to be done" in again.stdout + again.stderr

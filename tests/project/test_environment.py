"""The conda rule environment (`snakemake --use-conda`) can run every job: it pins what
pyproject.toml pins, and its post-deploy step installs skyquilt itself."""

import os
import subprocess
import sysconfig
import tomllib
import venv

import yaml
from skyquilt_testing.workflow import REPO

ENVIRONMENT = REPO / "envs/skyquilt.yaml"
POST_DEPLOY = REPO / "envs/skyquilt.post-deploy.sh"


def test_conda_environment_has_the_same_pins_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    environment = yaml.safe_load(ENVIRONMENT.read_text())
    pip = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert sorted(pip) == sorted(project["dependencies"])
    python = next(item for item in environment["dependencies"] if str(item).startswith("python="))
    assert project["requires-python"] == f">={python.split('=')[1]}"


def test_every_rule_with_a_conda_environment_uses_the_one_with_the_post_deploy_step():
    rules = [*REPO.glob("rules/*.smk"), REPO / "Snakefile"]
    environments = {
        line.strip()
        for path in rules
        for previous, line in zip(
            path.read_text().splitlines(), path.read_text().splitlines()[1:], strict=False
        )
        if previous.strip() == "conda:"
    }
    assert environments == {'"../envs/skyquilt.yaml"'}
    # Snakemake runs `<env file stem>.post-deploy.sh` beside the environment file.
    assert POST_DEPLOY.with_name(ENVIRONMENT.stem + ".post-deploy.sh").is_file()


def test_the_workflow_tells_the_post_deploy_step_where_skyquilt_is():
    assert (
        "os.environ.update(SKYQUILT_SOURCE=workflow.basedir)"
        in (REPO / "rules/common.smk").read_text()
    )


def test_the_post_deploy_step_makes_skyquilt_importable_in_a_new_environment(tmp_path):
    """The step run as Snakemake runs it, in a new environment that has the third-party
    packages (this one's site-packages, seen through a .pth file, whose own .pth files, such
    as skyquilt's editable install, are not processed) but not skyquilt."""
    environment = tmp_path / "env"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    site_packages = next(environment.glob("lib/python*/site-packages"))
    (site_packages / "third_party.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    shell = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    shell["PATH"] = f"{environment / 'bin'}:{shell['PATH']}"
    check = [str(python), "-c", "import skyquilt.jobs.generate, sys; print(skyquilt.__file__)"]

    def imports() -> subprocess.CompletedProcess:
        return subprocess.run(check, capture_output=True, text=True, env=shell, cwd=tmp_path)

    assert "No module named 'skyquilt'" in imports().stderr
    deploy = subprocess.run(
        ["bash", str(POST_DEPLOY)],
        capture_output=True, text=True, env={**shell, "SKYQUILT_SOURCE": str(REPO)},
        cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert deploy.returncode == 0, deploy.stderr[-2000:]
    imported = imports()
    assert imported.returncode == 0, imported.stderr[-2000:]
    assert imported.stdout.strip() == str(REPO / "src/skyquilt/__init__.py")


def test_the_post_deploy_step_refuses_to_run_without_the_workflow_directory(tmp_path):
    clean = {key: value for key, value in os.environ.items() if key != "SKYQUILT_SOURCE"}
    result = subprocess.run(
        ["bash", str(POST_DEPLOY)], capture_output=True, text=True, env=clean, cwd=tmp_path
    )
    assert result.returncode != 0 and "SKYQUILT_SOURCE" in result.stderr

"""The conda environment spec pins exactly what pyproject.toml pins."""

import tomllib

import yaml
from skyquilt_testing.workflow import REPO


def test_conda_environment_has_the_same_pins_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    environment = yaml.safe_load((REPO / "envs/skyquilt.yaml").read_text())
    pip = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert sorted(pip) == sorted(project["dependencies"])
    python = next(item for item in environment["dependencies"] if str(item).startswith("python="))
    assert project["requires-python"] == f">={python.split('=')[1]}"

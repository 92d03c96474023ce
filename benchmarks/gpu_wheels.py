"""Wheels for `make bench-gpu` on a GPU machine that cannot reach a package registry.

    make bench-gpu-wheels    # python benchmarks/gpu_wheels.py --python-version 3.12

A GPU node of a cluster or a cloud often has Python and a CUDA build of torch but no way to
download packages. This script downloads, here, a wheel of every distribution the GPU
measurement needs besides those, at this environment's versions (the project's pins), for
the machine's Python version on Linux x86-64, into benchmarks/output/wheels.
benchmarks/gpu_machine.sh installs them there (--no-deps) into a .venv that also sees the
machine's own torch.

Taken: the requirements of skyquilt, followed to the end (markers evaluated for the
machine's Python), and setuptools (for the editable install), less
- torch, torchvision (which azula requires but skyquilt never imports) and everything they
  require: the machine's own builds match its CUDA driver;
- numpy: the machine's torch and compiled packages were built against its own;
- what only rendering, scoring, the demo's simulation and azula's model hub (downloads)
  import (SKIPPED), which the measurement does not run.
A distribution published only as source is built into a wheel here, which must come out
pure Python.
"""

import argparse
import shutil
import subprocess
import sys
from importlib import metadata

from common import OUTPUT
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

WHEELS = OUTPUT / "wheels"
PROVIDED = ("torch", "torchvision", "numpy")
SKIPPED = ("matplotlib", "imageio", "imageio-ffmpeg", "scoringrules", "xskillscore",
           "torch-harmonics", "gdown")  # fmt: skip
EXTRA = ("setuptools",)
# Linux x86-64 wheels: manylinux tags from the newest a current distribution accepts down.
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64", "linux_x86_64")  # fmt: skip


def requirements(name: str, environment: dict) -> list[str]:
    """The distributions `name` requires in `environment` (no extras), canonical names."""
    needed = []
    for line in metadata.requires(name) or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            needed.append(canonicalize_name(requirement.name))
    return needed


def closure(roots: tuple[str, ...], excluded: set[str], environment: dict) -> dict[str, str]:
    """Every distribution that `roots` require, transitively, but `excluded` and what only
    they require: {name: version installed here}."""
    found, pending = {}, [canonicalize_name(root) for root in roots]
    while pending:
        name = pending.pop()
        if name in found or name in excluded:
            continue
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise SystemExit(
                f"gpu_wheels: {name} is required for Python {environment['python_version']} "
                "but not installed here; install it (make install) and run again"
            ) from None
        pending += requirements(name, environment)
    return found


def provided_closure(environment: dict) -> set[str]:
    """PROVIDED and everything they require."""
    return set(closure(PROVIDED, set(), environment))


def download(pins: list[str], python_version: str) -> bool:
    """pip download the wheels of `pins` for the target; False if pip found none for one."""
    tags = [argument for platform in PLATFORMS for argument in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--only-binary=:all:", "--python-version", python_version,
               "--implementation", "cp", *tags, "--dest", str(WHEELS), *pins]  # fmt: skip
    return subprocess.run(command, check=False).returncode == 0


def build_pure(pin: str) -> None:
    """Build a wheel of `pin` from its source here; it must be pure Python (any platform)."""
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
               "--wheel-dir", str(WHEELS), pin]  # fmt: skip
    subprocess.run(command, check=True)
    name = canonicalize_name(pin.split("==")[0]).replace("-", "_")
    built = [path for path in WHEELS.glob("*.whl") if canonicalize_name(path.name.split("-")[0])
             .replace("-", "_") == name]  # fmt: skip
    if not built or not all(path.name.endswith("-none-any.whl") for path in built):
        raise SystemExit(f"gpu_wheels: {pin} has no wheel for the target and is not pure Python")


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--python-version", default="3.12", help="the GPU machine's Python")
    arguments = arguments.parse_args()
    major, minor = arguments.python_version.split(".")[:2]
    environment = {**default_environment(), "python_version": f"{major}.{minor}",
                   "python_full_version": f"{major}.{minor}.0", "extra": ""}  # fmt: skip
    excluded = provided_closure(environment) | {canonicalize_name(name) for name in SKIPPED}
    found = closure(("skyquilt",), excluded, environment)
    found.pop("skyquilt")  # installed from the repository itself
    found.update({canonicalize_name(name): metadata.version(name) for name in EXTRA})
    pins = sorted(f"{name}=={version}" for name, version in found.items())
    shutil.rmtree(WHEELS, ignore_errors=True)
    WHEELS.mkdir(parents=True)
    if not download(pins, arguments.python_version):
        print("gpu_wheels: one by one now, to build those published only as source (above)")
        for pin in pins:  # find the ones published only as source
            if not download([pin], arguments.python_version):
                build_pure(pin)
    size = sum(path.stat().st_size for path in WHEELS.glob("*.whl"))
    print(f"gpu_wheels: {len(pins)} wheels for Python {major}.{minor}, {size / 2**20:.1f} MiB "
          f"in {WHEELS}")  # fmt: skip


if __name__ == "__main__":
    main()

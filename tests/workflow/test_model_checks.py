"""Model directories are checked before any job runs, and no model code runs without consent.

Real dry runs (`snakemake -n`) on broken copies of the tiny model: the config's latent_shape
against the weights and the latent statistics, the backbone kwargs against the weights,
`.safetensors` and `.pt` weights (complete, truncated, mis-shaped), and a backbone named by
import path, whose module leaves a marker file when imported. The dry runs start together
in a thread pool; each case is its own test.
"""

import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import safetensors.torch
import torch
import yaml
from skyquilt_testing.workflow import run_snakemake, tiny_config, write_config

PREFIX = "skyquilt config error: "
MODULE = "sneaky_backbone"
# A plug-in backbone: the built-in one, in a module that leaves a marker when imported.
MODULE_SOURCE = """
import os
open(os.environ["SNEAKY_MARKER"], "a").close()
from skyquilt.models.blanket_net import BlanketNet as factory
"""


@dataclass(frozen=True)
class Case:
    """A model directory broken by `edit(model_path)`, the config's changes, and the result.

    ok: the dry run must succeed; else its one line starts with `key` and contains `says`.
    """

    name: str
    edit: Callable[[Path], None]
    ok: bool = False
    key: str = "model_path"
    says: tuple[str, ...] = ()
    config: dict | None = None


def edit_config(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(model_path: Path) -> None:
        raw = yaml.safe_load((model_path / "config.yaml").read_text())
        change(raw)
        (model_path / "config.yaml").write_text(yaml.safe_dump(raw))

    return edit


def kwarg(name: str, value) -> Callable[[Path], None]:
    return edit_config(lambda raw: raw["backbone"]["kwargs"].__setitem__(name, value))


def latent_shape(shape: list[int]) -> Callable[[Path], None]:
    return edit_config(lambda raw: raw.__setitem__("latent_shape", shape))


def plug_in(raw: dict) -> None:
    raw["backbone"]["name"] = f"{MODULE}:factory"


def as_pt(keep: float = 1.0, drop: str | None = None) -> Callable[[Path], None]:
    """best.safetensors replaced by best.pt (torch.save), cut to `keep` of its bytes,
    without the tensor `drop`."""

    def edit(model_path: Path) -> None:
        state = safetensors.torch.load_file(model_path / "best.safetensors")
        state.pop(drop, None)
        (model_path / "best.safetensors").unlink()
        torch.save(state, model_path / "best.pt")
        data = (model_path / "best.pt").read_bytes()
        (model_path / "best.pt").write_bytes(data[: int(len(data) * keep)])

    return edit


def statistics_shape(shape: tuple[int, ...]) -> Callable[[Path], None]:
    def edit(model_path: Path) -> None:
        stats = model_path.parents[2] / "stats.safetensors"
        safetensors.torch.save_file({"mean": torch.zeros(shape), "std": torch.ones(shape)}, stats)

    return edit


def nothing(model_path: Path) -> None:
    pass


CASES = [
    Case("intact_safetensors", nothing, ok=True),
    Case("intact_pt", as_pt(), ok=True),
    Case(
        "latent_channels_differ_from_the_weights",
        latent_shape([3, 4, 8]),
        says=("best.safetensors", "mis-shaped backbone.encode.weight (8, 2, 3, 3, 3) instead of"),
    ),
    Case(
        "latent_grid_differs_from_the_statistics",
        latent_shape([2, 4, 16]),
        says=("latent_shape [2, 4, 16]", "stats.safetensors", "[2, 4, 8]"),
    ),
    Case(
        "statistics_of_another_shape",
        statistics_shape((2, 8, 8)),
        says=("'mean'", "stats.safetensors", "[2, 8, 8]"),
    ),
    Case(
        "kwargs_more_blocks_than_the_weights",
        kwarg("blocks", 2),
        says=("missing backbone.blocks.1.modulation.weight",),
    ),
    Case(
        "kwargs_fewer_blocks_than_the_weights",
        kwarg("blocks", 0),
        says=("unexpected backbone.blocks.0.",),
    ),
    Case(
        "kwargs_wider_than_the_weights",
        kwarg("hidden_channels", 16),
        says=("mis-shaped backbone.time_embedding.weight (8, 4) instead of (16, 4)",),
    ),
    Case(
        "kwargs_unknown",
        kwarg("hidden", 16),
        says=("config.yaml", "'hidden'", "allowed: hidden_channels, blocks, embedding"),
    ),
    Case(
        "pt_truncated",
        as_pt(keep=0.6),
        key="model_target",
        says=("best.pt is truncated or corrupt",),
    ),
    Case(
        "pt_lacks_a_tensor",
        as_pt(drop="backbone.decode.bias"),
        says=("best.pt", "missing backbone.decode.bias"),
    ),
    Case(
        "plug_in_without_consent",
        edit_config(plug_in),
        key="trust_model_code",
        says=("false", f"'{MODULE}'", "trust_model_code: true"),
        config={"trust_model_code": None},
    ),
    Case(
        "plug_in_with_consent_for_other_modules",
        edit_config(plug_in),
        key="trust_model_code",
        says=('["skyquilt_testing"]', f"'{MODULE}'"),
    ),
    Case("plug_in_trusted", edit_config(plug_in), ok=True, config={"trust_model_code": True}),
    Case("plug_in_listed", edit_config(plug_in), ok=True, config={"trust_model_code": [MODULE]}),
]


def dry_run(case: Case, root: Path, tiny_model: Path) -> tuple[int, str, bool]:
    """(exit status, output, whether the module was imported) of `snakemake -n`."""
    model_root = tiny_model.parents[7]
    copy = root / case.name / "model"
    shutil.copytree(model_root, copy)
    model_path = copy / tiny_model.relative_to(model_root)
    case.edit(model_path)
    workdir = root / case.name / "run"
    workdir.mkdir()
    config = tiny_config(model_path, output_dir=str(workdir / "out"))
    for key, value in (case.config or {}).items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    write_config(workdir, config)
    marker = root / case.name / "imported"
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    result = run_snakemake(workdir, "-n", check=False, env={**env, "SNEAKY_MARKER": str(marker)})
    return result.returncode, result.stdout + result.stderr, marker.exists()


@pytest.fixture(scope="module")
def dry_runs(request, tmp_path_factory, tiny_model) -> dict:
    selected = {
        item.callspec.params["case"].name
        for item in request.session.items
        if hasattr(item, "callspec") and isinstance(item.callspec.params.get("case"), Case)
    }
    root = tmp_path_factory.mktemp("model_checks")
    (root / f"{MODULE}.py").write_text(MODULE_SOURCE)
    cases = [case for case in CASES if case.name in selected]
    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 1) + 1) as pool:
        results = pool.map(lambda case: dry_run(case, root, tiny_model), cases)
        return dict(zip((case.name for case in cases), results, strict=True))


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_model_directory_is_checked_before_any_job(case, dry_runs):
    returncode, output, imported = dry_runs[case.name]
    assert not imported, f"{case.name}: the dry run imported the model's code"
    if case.ok:
        assert returncode == 0, f"{case.name}: refused:\n{output}"
        assert PREFIX not in output
        return
    lines = [line for line in output.splitlines() if line.strip()]
    assert returncode != 0, f"{case.name}: accepted:\n{output}"
    assert len(lines) == 1, f"{case.name}: expected one line:\n{output}"
    assert lines[0].startswith(f"{PREFIX}{case.key}: "), lines[0]
    missing = [text for text in case.says if text not in lines[0]]
    assert not missing, f"{case.name}: does not say {missing}: {lines[0]}"

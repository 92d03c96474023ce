"""Atomic file writes: each file is written under a temporary name and renamed into place,
so a killed job never leaves a truncated file that looks finished. (Zarr stores use
`skyquilt.stores.atomic_directory`, YAML and module weights `skyquilt.models.directory`.)"""

import csv
import json
import os
import shutil
from pathlib import Path

import safetensors.torch
import torch


def write_json(data: dict, path: Path | str) -> None:
    """Write `data` as indented JSON to a temporary sibling, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(temporary, path)


def write_tensors(tensors: dict[str, torch.Tensor], path: Path | str) -> None:
    """Write named tensors as safetensors to a temporary sibling, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    safetensors.torch.save_file({name: t.contiguous() for name, t in tensors.items()}, temporary)
    os.replace(temporary, path)


def copy_file(source: Path | str, target: Path | str) -> None:
    """Copy a file to a temporary sibling of `target`, then rename it into place."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def write_csv(rows: list[dict], path: Path | str) -> None:
    """Write rows (dicts with the same keys) as CSV with a header, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)

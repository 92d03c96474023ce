"""Atomic file writes: each file is written under a temporary name and renamed into place,
so a killed job never leaves a truncated file that looks finished. (Zarr stores use
`skyquilt.stores.atomic_directory`, YAML and module weights `skyquilt.models.directory`.)"""

import csv
import json
import shutil
from pathlib import Path

import safetensors.torch
import torch

from skyquilt.stores import atomic_file


def write_json(data: dict, path: Path | str) -> None:
    """Write `data` as indented JSON."""
    with atomic_file(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2) + "\n")


def write_tensors(tensors: dict[str, torch.Tensor], path: Path | str) -> None:
    """Write named tensors as safetensors."""
    with atomic_file(path) as temporary:
        safetensors.torch.save_file(
            {name: t.contiguous() for name, t in tensors.items()}, temporary
        )


def copy_file(source: Path | str, target: Path | str) -> None:
    """Copy a file."""
    with atomic_file(target) as temporary:
        shutil.copyfile(source, temporary)


def write_csv(rows: list[dict], path: Path | str) -> None:
    """Write rows (dicts with the same keys) as CSV with a header."""
    with atomic_file(path) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

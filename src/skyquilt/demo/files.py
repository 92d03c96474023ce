"""Atomic JSON files (zarr stores use `skyquilt.stores.atomic_directory`, YAML and weights the
writers of `skyquilt.models.directory`)."""

import json
import os
from pathlib import Path


def write_json(data: dict, path: Path | str) -> None:
    """Write `data` as indented JSON to a temporary sibling, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(temporary, path)

"""Atomic writes: every file and store skyquilt writes goes through here.

An output is written under a temporary sibling name and renamed into place only when it is
complete, so a killed job never leaves anything that looks finished, and a good previous
output is never lost to a failed write. This is the lowest layer of the package: it imports
nothing from skyquilt and no torch.
"""

import csv
import glob
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml


def remove_leftovers(final: Path) -> None:
    """Delete the temporary stores that a writer of `final` killed with SIGKILL left behind.

    Safe because one job at a time writes a given output (Snakemake's lock). A moved-aside
    previous output is kept while `final` is missing: then it is the only good copy.
    """
    for stale in final.parent.glob(f".{glob.escape(final.name)}.*-*"):
        if ".tmp-" in stale.name or (".old-" in stale.name and final.exists()):
            shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `final`; on success it replaces `final`, else it is removed.

    An existing `final` is moved aside before the new one is renamed in and deleted only
    afterwards, so a good previous output is never lost to a failed write.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(final)
    temporary = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield temporary
        previous = None
        if final.exists():
            previous = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(final, previous)
        os.rename(temporary, final)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


@contextmanager
def atomic_file(path: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; it becomes `path` on success, else it is removed.

    It has the same suffix as `path`, so writers that infer the format from it still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(text: str, path: Path | str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_file(path) as temporary:
        temporary.write_text(text)


def write_json(data: dict, path: Path | str) -> None:
    """Write `data` as indented JSON."""
    write_text(json.dumps(data, indent=2) + "\n", path)


def write_yaml(data: dict, path: Path | str) -> None:
    """Write `data` as YAML, keys in the order given."""
    write_text(yaml.safe_dump(data, sort_keys=False), path)


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

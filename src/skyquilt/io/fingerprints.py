"""Content fingerprints of what a result is made from, cached so that they stay cheap.

A result depends on the content of its inputs, not on their modification times: weights
copied over with `rsync -a`, `cp -p` or `tar x` keep their old times but change every member.
A fingerprint is a sha256 of what is read: of a file, its bytes; of a directory (a zarr array),
the relative names and fingerprints of its files; of several parts, the fingerprints of the
parts in order (`combine`).

Reading a 2 GB checkpoint or a dataset of thousands of chunks at every `snakemake -n` would make
a dry run slow, so the fingerprint of each file is cached with the file's stamp: (device,
inode, size, modification time, status-change time), times in nanoseconds. A cached value is
used only while all five are unchanged, else the file is read again. Every write to a file sets
its status-change time (ctime) to the present, and no tool sets it back (`rsync -a`, `cp -p`,
`tar x` and `touch` set the modification time only); a file replaced by a rename, or a symbolic
link pointed elsewhere, is another inode. A file is read twice only when it changes while it
is read (then its stamp before and after differ).

The cache lives in `$XDG_CACHE_HOME/skyquilt/fingerprints` (by default
`~/.cache/skyquilt/fingerprints`), never beside the inputs, which may be read-only: one small
JSON file per fingerprinted directory (its real path), holding a checksum of its own entries.
A cache file that cannot be read or whose checksum does not match is ignored (and rewritten),
and one that cannot be written only costs speed.

Records: an output stores what it was made from as `{name: record}` (attribute `inputs`), a
record being `{"files": [...], "fingerprint": ...}` or, for a dataset,
`{"dataset": path, "part": "grid" | "truth", "variables": [...], "fingerprint": ...}`, so that
`stale_inputs` recomputes the fingerprint of the same inputs later, and `mixed_inputs` finds
members that were made from different ones. Torch-free; xarray is imported only by the
dataset fingerprints.
"""

import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from skyquilt.io.atomic import write_text

if TYPE_CHECKING:
    import xarray as xr

log = logging.getLogger(__name__)

INPUTS = "inputs"
# How many characters of a fingerprint a message shows.
SHOWN = 12
# Members a message names per group before it says "and N more".
LISTED = 3
# Attempts at reading a file that changes while it is read.
READS = 3
# The dataset's coordinates that decoding reads (the grid and its levels).
GRID_COORDINATES = ("latitude", "longitude", "level")

Stamp = list[int]


class FingerprintError(ValueError):
    """An input that cannot be fingerprinted; the message names the file."""


def cache_directory() -> Path:
    """Where fingerprints are cached: $XDG_CACHE_HOME/skyquilt/fingerprints."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "skyquilt" / "fingerprints"


def file_stamp(path: str) -> Stamp:
    """(device, inode, size, mtime_ns, ctime_ns) of a regular file, following links."""
    try:
        status = os.stat(path)
    except OSError as error:
        raise FingerprintError(f"{path} cannot be read ({error.strerror})") from None
    if not stat.S_ISREG(status.st_mode):
        raise FingerprintError(f"{path} is not a regular file")
    return [
        status.st_dev,
        status.st_ino,
        status.st_size,
        status.st_mtime_ns,
        status.st_ctime_ns,
    ]


def _entries_checksum(entries: Mapping) -> str:
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()


class _DirectoryCache:
    """The cached fingerprints of the files below one directory, by relative name."""

    def __init__(self, directory: str):
        self.directory = os.path.realpath(directory)
        name = hashlib.sha256(self.directory.encode()).hexdigest()[:32]
        self.path = cache_directory() / f"{name}.json"
        self.entries = self._read()
        self.updated: dict[str, list] = {}

    def _read(self) -> dict[str, list]:
        try:
            data = json.loads(self.path.read_text())
            if data["directory"] == self.directory and data["checksum"] == _entries_checksum(
                data["entries"]
            ):
                return data["entries"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return {}

    def fingerprint(self, name: str) -> str:
        """The sha256 of the file `name`, read only when its stamp is not the cached one."""
        path = os.path.join(self.directory, name)
        stamp = file_stamp(path)
        cached = self.entries.get(name)
        if cached is not None and cached[:-1] == stamp:
            return cached[-1]
        for _ in range(READS):
            with open(path, "rb") as stream:
                digest = hashlib.file_digest(stream, "sha256").hexdigest()
            before, stamp = stamp, file_stamp(path)
            if stamp == before:
                self.updated[name] = [*stamp, digest]
                return digest
        raise FingerprintError(f"{path} changed while it was read ({READS} times)")

    def save(self, keep: Iterable[str] | None = None) -> None:
        """Write the new entries, merged with what another process may have written since;
        with `keep`, entries of other names (files that are gone) are dropped."""
        kept = None if keep is None else set(keep)
        if not self.updated and (kept is None or kept >= set(self.entries)):
            return
        entries = {**self._read(), **self.updated}
        if kept is not None:
            entries = {name: value for name, value in entries.items() if name in kept}
        text = json.dumps(
            {"directory": self.directory, "entries": entries,
             "checksum": _entries_checksum(entries)}
        )  # fmt: skip
        try:
            write_text(text, self.path)
        except OSError as error:
            log.warning("fingerprint cache %s cannot be written (%s)", self.path, error.strerror)


def file_fingerprint(path: str | Path) -> str:
    """sha256 of a file's bytes (cached, see the module)."""
    path = os.path.realpath(path)
    cache = _DirectoryCache(os.path.dirname(path))
    digest = cache.fingerprint(os.path.basename(path))
    cache.save()
    return digest


def _relative_files(directory: str) -> list[str]:
    """Every file below `directory` (following links), as sorted '/'-separated names."""
    found = []
    for root, _, files in os.walk(directory, followlinks=True):
        relative = os.path.relpath(root, directory)
        for name in files:
            found.append(name if relative == "." else f"{relative}/{name}".replace(os.sep, "/"))
    return sorted(found)


def tree_fingerprint(path: str | Path) -> str:
    """The fingerprint of a file, or of a directory: its files' names and fingerprints."""
    if not os.path.isdir(path):
        return file_fingerprint(path)
    cache = _DirectoryCache(str(path))
    names = _relative_files(cache.directory)
    lines = [f"{name}\0{cache.fingerprint(name)}\n" for name in names]
    cache.save(keep=names)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def combine(parts: Iterable[str]) -> str:
    """One fingerprint of several, in order."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def files_record(files: Sequence[str | Path]) -> dict:
    """The record of inputs read as whole files (a model's config and weights)."""
    paths = [str(path) for path in files]
    return {"files": paths, "fingerprint": combine(file_fingerprint(path) for path in paths)}


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, default=str).encode()


def _hash_variable(digest: "hashlib._Hash", dataset: "xr.Dataset", name: str, values: bool) -> None:
    variable = dataset[name]
    digest.update(_canonical([name, list(variable.dims), variable.attrs, str(variable.dtype)]))
    if values:
        digest.update(np.ascontiguousarray(variable.values).tobytes())


def grid_fingerprint(dataset: "xr.Dataset", variables: Sequence[str]) -> str:
    """What decoding reads from a dataset: the grid coordinates (latitude, longitude, level)
    with their values and attributes, and the axes and attributes (units, names) of
    `variables`; not their values."""
    digest = hashlib.sha256()
    for name in GRID_COORDINATES:
        if name in dataset.variables:
            _hash_variable(digest, dataset, name, values=True)
    for name in sorted(variables):
        if name in dataset.variables:
            _hash_variable(digest, dataset, name, values=False)
    return digest.hexdigest()


def truth_fingerprint(path: str | Path, dataset: "xr.Dataset", variables: Sequence[str]) -> str:
    """What scoring and rendering read from a dataset: its grid (`grid_fingerprint`), time
    axis and attributes, and the files of every variable of `variables` (all its chunks,
    cached); the whole store where a variable is not a directory of its own."""
    digest = hashlib.sha256(grid_fingerprint(dataset, variables).encode())
    digest.update(_canonical(dataset.attrs))
    if "time" in dataset.variables:
        _hash_variable(digest, dataset, "time", values=True)
    for name in sorted(variables):
        array = Path(path) / name
        target = array if array.is_dir() else Path(path)
        digest.update(f"{name}\0{tree_fingerprint(target)}\n".encode())
    return digest.hexdigest()


def dataset_record(
    path: str | Path, dataset: "xr.Dataset", variables: Sequence[str], part: str
) -> dict:
    """The record of what is read from a dataset: `part` "grid" (decoding) or "truth"."""
    variables = sorted(set(variables))
    if part == "grid":
        fingerprint = grid_fingerprint(dataset, variables)
    else:
        fingerprint = truth_fingerprint(path, dataset, variables)
    return {"dataset": str(path), "part": part, "variables": variables, "fingerprint": fingerprint}


def current_fingerprint(record: Mapping) -> str:
    """The fingerprint that the inputs of `record` have now (FingerprintError when they
    cannot be read)."""
    if "files" in record:
        return files_record(record["files"])["fingerprint"]
    import xarray as xr

    try:
        dataset = xr.open_zarr(record["dataset"])
    except Exception as error:  # zarr and xarray raise many types for unreadable stores
        raise FingerprintError(f"{record['dataset']} cannot be opened ({error})") from None
    return dataset_record(record["dataset"], dataset, record["variables"], record["part"])[
        "fingerprint"
    ]


def describe(name: str, record: Mapping) -> str:
    """'denoiser (<files>)' or 'dataset <path> (truth of <variables>)'."""
    if "files" in record:
        return f"{name} ({', '.join(record['files'])})"
    return f"{name} {record['dataset']} ({record['part']} of {', '.join(record['variables'])})"


def stale_inputs(inputs: Mapping[str, Mapping], memo: dict | None = None) -> list[str]:
    """A line per input of `inputs` (an output's record) whose content has changed since.

    memo: fingerprints already computed, shared between calls (by record, sans fingerprint).
    """
    memo = {} if memo is None else memo
    lines = []
    for name, record in inputs.items():
        key = json.dumps({**record, "fingerprint": None}, sort_keys=True)
        if key not in memo:
            try:
                memo[key] = current_fingerprint(record)
            except FingerprintError as error:
                memo[key] = f"unreadable: {error}"
        now = memo[key]
        if now != record["fingerprint"]:
            shown = now if now.startswith("unreadable") else f"now {now[:SHOWN]}"
            lines.append(
                f"{describe(name, record)} changed since it was made "
                f"(fingerprint {record['fingerprint'][:SHOWN]} then, {shown})"
            )
    return lines


def _listed(names: Sequence[str]) -> str:
    more = len(names) - LISTED
    return ", ".join(names[:LISTED]) + (f" and {more} more" if more > 0 else "")


def mixed_inputs(members: Mapping[str, Mapping[str, Mapping]]) -> str | None:
    """One line naming members made from different inputs, with the fingerprints; None when
    they all share them.

    members: member name (e.g. its path) -> its record of inputs; a member without a record
    counts as made from unknown inputs.
    """
    groups: dict[tuple, list[str]] = {}
    for member, inputs in members.items():
        key = tuple(sorted((name, record["fingerprint"]) for name, record in inputs.items()))
        groups.setdefault(key, []).append(member)
    if len(groups) < 2:
        return None
    names = sorted({name for key in groups for name, _ in key})
    differing = [name for name in names if len({dict(key).get(name) for key in groups}) > 1]

    def fingerprints(key: tuple) -> str:
        values = dict(key)
        shown = [f"{name} {values[name][:SHOWN]}" if name in values else f"no {name}"
                 for name in differing]  # fmt: skip
        return ", ".join(shown) if values else "no fingerprints recorded"

    parts = [f"{_listed(group)} ({fingerprints(key)})" for key, group in groups.items()]
    return f"members made from different inputs: {'; '.join(parts)}"

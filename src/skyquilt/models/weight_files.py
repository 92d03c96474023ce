"""What a model directory's weight files hold, read cheaply and without torch or model code.

Used when the workflow is parsed (so it must stay fast for big models) and by the loaders:

- `tensor_shapes`: name -> shape of every tensor of a checkpoint, from its header only. A
  `.safetensors` header must parse and its tensors must cover the file exactly; a `.pt` file
  must be a complete torch zip archive whose `data.pkl` holds a plain state dict (read with
  a restricted unpickler that knows only tensors, storages and ordered dicts, so nothing in
  it can run) and whose every storage record is present and long enough. A truncated file
  of either kind fails, naming the file.
- `mismatch`: missing, unexpected and mis-shaped tensors, named in one line.
"""

import json
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from skyquilt.models.config import ModelError

Shape = tuple[int, ...]
# How many names a message lists of each kind before it says "and N more".
LISTED = 3


def reason_of(error: BaseException) -> str:
    """The first line of an error's message, or its type when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _safetensors_shapes(weights_file: Path) -> dict[str, Shape]:
    """Shapes from a safetensors header; the data must end exactly where the file ends."""
    with weights_file.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ValueError("no header")
        (length,) = struct.unpack("<Q", prefix)
        size = weights_file.stat().st_size
        if length > size - 8:
            raise ValueError(f"header of {length} bytes in a file of {size} bytes")
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    end = max((int(info["data_offsets"][1]) for info in header.values()), default=0)
    if 8 + length + end != size:
        raise ValueError(f"tensors end at byte {8 + length + end} but the file has {size} bytes")
    return {name: tuple(int(n) for n in info["shape"]) for name, info in header.items()}


@dataclass(frozen=True)
class _Storage:
    """A storage record of a torch zip archive: its key and its length in bytes."""

    key: str
    nbytes: int


@dataclass(frozen=True)
class _TensorInfo:
    storage: _Storage
    shape: Shape


class _StorageType:
    """Stands in for torch.FloatStorage and friends: only the element size matters."""

    def __init__(self, itemsize: int):
        self.itemsize = itemsize


STORAGE_ITEMSIZE = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
    "BoolStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16,
    "UntypedStorage": 1,
}  # fmt: skip


def _rebuild_tensor(storage: _Storage, offset: int, size: Sequence[int], *args) -> _TensorInfo:
    return _TensorInfo(storage, tuple(int(n) for n in size))


def _rebuild_parameter(data: _TensorInfo, *args) -> _TensorInfo:
    return data


class _StateDictUnpickler(pickle.Unpickler):
    """Reads a torch state dict's `data.pkl` into shapes; refuses every other global."""

    GLOBALS: dict[tuple[str, str], object] = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def find_class(self, module: str, name: str) -> object:
        """Only ordered dicts, tensors and storage types; never an import."""
        if (module, name) in self.GLOBALS:
            return self.GLOBALS[(module, name)]
        if module in ("torch", "torch.storage") and name in STORAGE_ITEMSIZE:
            return _StorageType(STORAGE_ITEMSIZE[name])
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a plain state dict")

    def persistent_load(self, pid: object) -> _Storage:
        """('storage', type, key, location, numel) -> the storage's key and byte length."""
        if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unknown persistent record {pid!r}")
        _, storage_type, key, _location, numel = pid
        itemsize = storage_type.itemsize if isinstance(storage_type, _StorageType) else 1
        return _Storage(str(key), int(numel) * itemsize)


def _torch_zip_shapes(weights_file: Path) -> dict[str, Shape]:
    """Shapes from a torch zip archive's data.pkl; every storage record must be complete."""
    if not zipfile.is_zipfile(weights_file):
        raise ValueError("not a torch zip archive (its end is missing: truncated?)")
    with zipfile.ZipFile(weights_file) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError("no data.pkl in the archive")
        prefix = pickles[0][: -len("data.pkl")]
        state = _StateDictUnpickler(archive.open(pickles[0])).load()
        sizes = {info.filename: info.file_size for info in archive.infolist()}
    if not isinstance(state, dict):
        raise ValueError(f"it holds a {type(state).__name__}, not a state dict")
    shapes = {}
    for name, tensor in state.items():
        if not isinstance(tensor, _TensorInfo):
            raise ValueError(f"entry {name!r} is not a tensor")
        record = f"{prefix}data/{tensor.storage.key}"
        if sizes.get(record, -1) < tensor.storage.nbytes:
            raise ValueError(f"the data of tensor {name!r} ({record}) is missing or short")
        shapes[str(name)] = tensor.shape
    return shapes


def tensor_shapes(weights_file: Path | str) -> dict[str, Shape]:
    """Name -> shape of every tensor of a checkpoint, without reading the tensors.

    Raises ModelError naming the file when it is missing, truncated or corrupt.
    """
    weights_file = Path(weights_file)
    allowed = "a complete safetensors file or torch state dict (torch.save, zip format)"
    if not weights_file.is_file():
        raise ModelError(f"checkpoint {weights_file} does not exist")
    try:
        if weights_file.suffix == ".safetensors":
            return _safetensors_shapes(weights_file)
        return _torch_zip_shapes(weights_file)
    except Exception as error:  # json, struct, zipfile and pickle raise their own types
        raise ModelError(
            f"checkpoint {weights_file} is truncated or corrupt ({reason_of(error)}); "
            f"expected {allowed}"
        ) from error


def check_checkpoint_file(weights_file: Path | str) -> None:
    """Raise ModelError naming the file unless the checkpoint's header is complete."""
    tensor_shapes(weights_file)


def _listed(names: Sequence[str]) -> str:
    more = len(names) - LISTED
    return ", ".join(names[:LISTED]) + (f" and {more} more" if more > 0 else "")


def mismatch(expected: dict[str, Shape], found: dict[str, Shape]) -> str | None:
    """One line naming the missing, unexpected and mis-shaped tensors; None when they fit."""
    missing = [name for name in expected if name not in found]
    unexpected = [name for name in found if name not in expected]
    misshaped = [
        f"{name} {tuple(found[name])} instead of {tuple(shape)}"
        for name, shape in expected.items()
        if name in found and tuple(found[name]) != tuple(shape)
    ]
    parts = [
        f"{kind} {_listed(names)}"
        for kind, names in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("mis-shaped", misshaped),
        )
        if names
    ]
    return "; ".join(parts) or None

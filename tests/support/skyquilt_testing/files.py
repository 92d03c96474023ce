"""What users and their tools do to files: content changed with the old times kept (`rsync -a`,
`cp -p`, `tar x`), and one flipped bit in the data of a torch checkpoint."""

import os
import struct
import zipfile
from pathlib import Path


def keep_times(path: Path, before: os.stat_result) -> None:
    """Give `path` the access and modification times of `before` back."""
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def rewrite_keeping_times(path: Path, data: bytes) -> None:
    """New content with the old modification time, as `rsync -a` or `cp -p` leave it."""
    before = Path(path).stat()
    Path(path).write_bytes(data)
    keep_times(path, before)


def flip_last_bit_keeping_times(path: Path) -> None:
    """Retrained weights, in effect: the last byte changed, the old times kept."""
    data = Path(path).read_bytes()
    rewrite_keeping_times(path, data[:-1] + bytes([data[-1] ^ 1]))


def flip_a_bit_of_the_largest_tensor(path: Path) -> None:
    """Flip one bit in the middle of the largest tensor's bytes inside a torch.save archive
    (the file still loads: only a checksum of the contents sees it)."""
    with zipfile.ZipFile(path) as archive:
        largest = max(
            (info for info in archive.infolist() if "/data/" in info.filename),
            key=lambda info: info.file_size,
        )
    data = bytearray(Path(path).read_bytes())
    header = largest.header_offset
    name_length, extra_length = struct.unpack("<HH", data[header + 26 : header + 30])
    start = header + 30 + name_length + extra_length
    data[start + largest.file_size // 2] ^= 0x01
    Path(path).write_bytes(bytes(data))

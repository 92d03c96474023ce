"""release_large_buffers: freed large buffers go back to the OS, not to a growing heap.

Each check runs in a fresh interpreter, since the allocator's settings are process-wide.
glibc's mallinfo2().hblkhd counts the bytes held in buffers mapped on their own.
"""

import subprocess
import sys

PROGRAM = """
import ctypes, sys
import numpy as np
from skyquilt.jobs.memory import release_large_buffers

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "fixed":
    assert release_large_buffers()
mapped = []
for _ in range(3):
    buffer = np.ones(4 << 20, dtype=np.uint8)  # 4 MiB, allocated and freed in turn
    mapped.append(libc.mallinfo2().hblkhd >= 4 << 20)
    del buffer
print(mapped)
"""


def mapped_on_their_own(mode: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_large_buffers_stay_mapped_on_their_own_after_the_first_is_freed():
    assert mapped_on_their_own("fixed") == "[True, True, True]"


def test_without_it_glibc_moves_them_to_the_heap():
    """The control: glibc's default raises its threshold past the first freed buffer."""
    assert mapped_on_their_own("default") == "[True, False, False]"

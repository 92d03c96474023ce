"""Keep a streaming job's resident memory flat: large buffers go back to the OS when freed.

glibc serves an allocation above its mmap threshold with a mapping of its own, which free()
unmaps. The threshold starts at 128 KiB but rises to the size of every such buffer freed (up
to 32 MiB), so once a job has freed one member's 16 MB buffers, the next ones come from the
heap and the per-thread arenas, which keep their memory after free(). An aggregate job's peak
grew that way from 245 MB at 4 members to 368 MB at 64; with the threshold fixed it stays at
200 MB and runs no slower (BENCHMARKS.md, question 4). Decoding does not use it: there every
block's large activations would be mapped afresh, and a member decoded a third slower.
"""

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
THRESHOLD = 1 << 20


def release_large_buffers(threshold: int = THRESHOLD) -> bool:
    """Serve allocations of `threshold` bytes or more with their own mappings from now on.

    Returns False where the C library is not glibc (nothing to tune there).
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))

"""Keep the server's resident memory close to what it uses (glibc malloc tuning).

Request bodies arrive in blocks of up to a few hundred KiB and are batched into 1 MiB writes;
hashing and digesting use 4 MiB buffers. glibc serves allocations that large with ``mmap``,
but after the first ``free`` of one it raises its threshold and serves the next ones from the
heap, and each thread that allocates gets an arena of its own: freed memory then stays in the
process. A fixed threshold (no dynamic raise) returns big buffers to the system when they are
freed, and two arenas bound the per-thread growth. Measured in bench/README.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

#: Allocations of at least this size get their own mapping, returned to the system on free.
MMAP_THRESHOLD = 256 * 1024
ARENA_MAX = 2
_M_MMAP_THRESHOLD = -3  # glibc malloc.h
_M_ARENA_MAX = -8


def limit_heap_growth() -> bool:
    """Tune this process's malloc and that of the processes it starts; False if not glibc."""
    # Child processes (decoder workers, uvicorn workers) read these when they start.
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
    os.environ.setdefault("MALLOC_ARENA_MAX", str(ARENA_MAX))
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_ARENA_MAX, ARENA_MAX)
    )

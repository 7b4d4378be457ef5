"""Process-wide resource settings the daemon makes once, at start, before any client can connect.

Both answer an attack from outside with a property of the process rather than a
check per request: enough file descriptors that idle connections cannot starve
the daemon's own files, and freed buffers handed back to the system so that one
burst of huge messages does not leave the daemon's memory high for good.
"""

from __future__ import annotations

import ctypes
import resource
from typing import Any

# glibc's mallopt parameter, and the size from which it serves an allocation with
# its own mmap (glibc's initial default, 128 KiB).
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024


def raise_fd_limit(logger: Any) -> None:
    """Raise the soft limit of open files to the hard one, and log both.

    Each client connection costs a descriptor: the usual soft limit of 1024 would
    let a thousand idle connections starve the daemon of files.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = soft
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            raised = hard
        except (ValueError, OSError) as exc:
            logger.warning("fd_limit_not_raised", soft=soft, hard=hard, error=str(exc))
    logger.info("fd_limit", soft_before=soft, soft=raised, hard=hard)


def return_large_buffers(logger: Any) -> bool:
    """Have glibc's malloc give every large freed buffer back to the system at once.

    ZeroMQ holds a multipart message whole before the gateway sees its first frame
    (it bounds frames, not messages), and a reply to a slow reader waits in its
    queue: both are large buffers, freed later. glibc raises its mmap threshold to
    the largest such buffer freed (up to 32 MiB), after which buffers of that size
    come from the heap and stay in the process when freed: measured here, 300
    frames of 1 MB left the daemon 250 MB larger for good. A fixed threshold keeps
    them mmapped, so freeing one unmaps it. Small allocations, the daemon's usual
    ones, are not affected. ``False`` (and a debug line) where the C library is
    not glibc.
    """
    try:
        # The symbols already loaded, the C library's among them: no search for its file
        # (importing ctypes.util and its find_library cost 15 ms of a start here).
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        logger.debug("malloc_not_tuned", reason="no mallopt in the C library")
        return False
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) != 1:
        logger.debug("malloc_not_tuned", reason="mallopt refused M_MMAP_THRESHOLD")
        return False
    return True


__all__ = ["MMAP_THRESHOLD_BYTES", "raise_fd_limit", "return_large_buffers"]

"""A self-pipe an I/O thread polls beside its sockets, which any thread may ring.

The dispatcher's futures resolve in actors' and pools' threads; their completion
rings it, so the transport's I/O thread (the ZeroMQ gateway's, the HTTP server's)
wakes at once and replies: nothing polls on a timer.
"""

from __future__ import annotations

import contextlib
import os
import threading


class Wakeup:
    """A self-pipe the I/O thread polls; any thread may ring it.

    Rings are coalesced: one byte is written until the I/O thread has drained the pipe.
    """

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._lock = threading.Lock()
        self._pending = False
        self._closed = False

    def ring(self) -> None:
        if self._pending:
            return
        with self._lock:
            if self._closed or self._pending:
                return
            self._pending = True
            # A full pipe needs no more bytes: the I/O thread is woken anyway.
            with contextlib.suppress(BlockingIOError):
                os.write(self._write_fd, b"\0")

    def drain(self) -> None:
        # Read, then clear the flag, never the reverse: a ring between a clear and a
        # read would leave the flag set with its byte consumed, and every later ring
        # would be skipped. The queue is processed after this, so nothing is missed.
        with contextlib.suppress(BlockingIOError):
            while os.read(self.read_fd, 4096):
                pass
        self._pending = False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            os.close(self._write_fd)
            os.close(self.read_fd)


__all__ = ["Wakeup"]

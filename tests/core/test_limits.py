"""The process-wide limits the daemon sets at start, each checked in a process of its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# Frees 300 buffers of 1 MiB with smaller, long-lived ones between them (as a burst of
# large frames among the daemon's own objects) and prints how much RSS stayed.
_BURST = textwrap.dedent(
    """
    import sys
    import psutil
    import structlog
    from nua.daemon import limits

    if sys.argv[1] == "tuned":
        assert limits.return_large_buffers(structlog.get_logger())
    process = psutil.Process()
    before = process.memory_info().rss
    first = bytearray(1 << 20)
    del first  # glibc's own threshold now rises to 1 MiB
    large, kept = [], []
    for _ in range(300):
        buffer = bytearray(1 << 20)
        buffer[::4096] = b"x" * len(buffer[::4096])
        large.append(buffer)
        kept.append(bytearray(64 * 1024))
    del large
    print((process.memory_info().rss - before) // 2**20)
    """
)


def retained_mib(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", _BURST, mode], capture_output=True, text=True, timeout=60, check=True
    )
    return int(result.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_large_freed_buffers_go_back_to_the_system() -> None:
    # The kept 64 KiB buffers (about 19 MiB) stay; the 300 MiB freed must not.
    assert retained_mib("tuned") < 50
    # The comparison that makes the test mean something: untuned, glibc keeps them.
    assert retained_mib("plain") > 200

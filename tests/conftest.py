"""Logging for the whole suite, configured as the daemon configures it.

Left unconfigured, structlog renders every exception with ``rich`` when it is
installed (the test extras install it): about 100 ms a traceback, spent by each
crash of the supervisor tests (a thousand in one of them). The daemon always
configures its logging first (:func:`nua.log.configure`), so the suite does too.
"""

from __future__ import annotations

import pytest

from nua import log


@pytest.fixture(autouse=True, scope="session")
def _daemon_logging() -> None:
    log.configure("info")

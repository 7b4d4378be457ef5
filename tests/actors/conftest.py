"""Fixtures of the actor-level tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from actorkit import WAIT_S, Tree


@pytest.fixture
def tree() -> Iterator[Tree]:
    """A supervisor under test (started by the test), stopped at the end if still alive."""
    made = Tree()
    yield made
    if made.ref is not None and made.ref.is_alive():
        made.ref.stop(timeout=WAIT_S)

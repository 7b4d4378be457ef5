"""Fixtures of the actor-level tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from actorkit import WAIT_S, Tree
from servicekit import Harness, harness


@pytest.fixture
def tree() -> Iterator[Tree]:
    """A supervisor under test (started by the test), stopped at the end if still alive."""
    made = Tree()
    yield made
    if made.ref is not None and made.ref.is_alive():
        made.ref.stop(timeout=WAIT_S)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Harness]:
    """Service actors under test (see ``servicekit``), every one stopped at the end."""
    with harness(tmp_path) as made:
        yield made

"""Fixtures of the HTTP tests: a real tree with its HTTP server on a free loopback port."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from http_helpers import HttpTree, make_settings, start_tree  # noqa: E402 - needs the path above


@pytest.fixture
def tree_factory(tmp_path: Path) -> Iterator[Callable[..., HttpTree]]:
    """Start a tree with extra ``NUA_*`` settings; every tree is stopped at the end."""
    trees: list[HttpTree] = []

    def start(clock: Callable[[], float] | None = None, **env: str) -> HttpTree:
        tree = start_tree(make_settings(tmp_path, **env), clock)
        trees.append(tree)
        return tree

    yield start
    for tree in trees:
        tree.stop()


@pytest.fixture
def tree(tree_factory: Callable[..., HttpTree]) -> HttpTree:
    return tree_factory()

"""Fixtures of the HTTP tests: a real tree with its HTTP server on a free loopback port."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# These helpers, and the daemon's and the RPC tests' (settings, waiting, the test plugin).
sys.path[:0] = [str(HERE), str(HERE.parent / "daemon"), str(HERE.parent / "rpc")]

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

"""Fixtures of the RPC tests: settings in a temporary directory, a real tree, clients."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nua.rpc.client import Client

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the test plugins and helpers

from rpc_helpers import Raw, Tree, make_settings, start_tree  # noqa: E402 - needs the path above


@pytest.fixture
def tree_factory(tmp_path: Path) -> Iterator[Callable[..., Tree]]:
    """Start a tree with extra ``NUA_*`` settings; every tree is stopped at the end."""
    trees: list[Tree] = []

    def start(**env: str) -> Tree:
        tree = start_tree(make_settings(tmp_path, **env))
        trees.append(tree)
        return tree

    yield start
    for tree in trees:
        tree.root.stop(timeout=30)


@pytest.fixture
def tree(tree_factory: Callable[..., Tree]) -> Tree:
    return tree_factory()


@pytest.fixture
def client(tree: Tree) -> Iterator[Client]:
    with tree.client() as c:
        yield c


@pytest.fixture
def raw(tree: Tree) -> Iterator[Raw]:
    r = Raw(tree.endpoint)
    yield r
    r.close()


@pytest.fixture(autouse=True)
def _open_gates() -> Iterator[None]:
    """No gated call outlives its test."""
    import rpc_test_plugin  # noqa: PLC0415

    yield
    for event in list(rpc_test_plugin.GATES.values()):
        event.set()
    rpc_test_plugin.GATES.clear()
    rpc_test_plugin.ENTERED.clear()
    rpc_test_plugin.FINISHED.clear()
    rpc_test_plugin.OUTCOMES.clear()

"""The actor tree of a status report as text: one renderer for both CLIs.

``nua sys_status`` and ``nua-orchestrator status`` show the same tree (the
``tree`` of ``sys_status``: ``id``, ``state``, ``restarts``, ``last_error`` and
``children`` per actor, nested supervisors included) in the same words. A leaf,
so that the daemon's CLI need not import the RPC client's to print it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

INDENT = "  "


def tree_lines(node: Mapping[str, Any], depth: int = 0) -> list[str]:
    """One line per actor, indented by ``depth`` then by its depth in the tree."""
    line = f"{INDENT * depth}{node.get('id')}: {node.get('state')}, restarts {node.get('restarts')}"
    if node.get("last_error"):
        line += f", last error: {node['last_error']}"
    lines = [line]
    for child in node.get("children") or ():
        lines.extend(tree_lines(child, depth + 1))
    return lines


__all__ = ["tree_lines"]

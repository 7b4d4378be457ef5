"""A status report as text, its actor tree included: one renderer for both CLIs.

``nua status`` and ``nua-orchestrator status`` show the same lines (:func:`report_lines`:
a summary, pid, uptime as ``1h 2m 3s``, endpoint, database, log file, then the
tree) and the same tree (the
``tree`` of ``sys_status``: ``id``, ``state``, ``restarts``, ``last_error`` and
``children`` per actor, nested supervisors included) in the same words. A
service's actor also carries its process's figures (``detail``: state, pid,
uptime, restarts, last exit, CPU, RSS, group size), shown on its line. A leaf,
so that the daemon's CLI need not import the RPC client's to print it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

INDENT = "  "


def tree_lines(node: Mapping[str, Any], depth: int = 0) -> list[str]:
    """One line per actor, indented by ``depth`` then by its depth in the tree."""
    line = f"{INDENT * depth}{node.get('id')}: {node.get('state')}, restarts {node.get('restarts')}"
    detail = node.get("detail")
    if isinstance(detail, Mapping):
        line = f"{INDENT * depth}{node.get('id')}: {service_summary(detail)}"
    if node.get("last_error"):
        line += f", last error: {node['last_error']}"
    lines = [line]
    for child in node.get("children") or ():
        lines.extend(tree_lines(child, depth + 1))
    return lines


# The facts a report shows under its summary, in this order, each with its label.
REPORT_LABELS = (
    ("pid", "pid"),
    ("uptime_s", "uptime"),
    ("endpoint", "endpoint"),
    ("http", "console"),
    ("db_url", "database"),
    ("log_file", "log file"),
    ("methods", "rpc methods"),
)


def report_lines(report: Mapping[str, Any], prog: str) -> list[str]:
    """A status report (``nua-orchestrator status``'s, or ``sys_status`` with a ``message``) as lines.

    ``log_file`` ``None`` means the daemon logs to its console (a foreground run).
    """
    lines = [f"{prog}: {report.get('message')}"]
    # How the daemon was reached, when that is not simply through these settings.
    notes = (("record_warning", "warning:"), ("disagreement", "note:"))
    lines.extend(f"  {label:<13}{report[key]}" for key, label in notes if report.get(key))
    if report.get("running"):
        for key, label in REPORT_LABELS:
            value = report.get(key)
            if key == "uptime_s" and isinstance(value, int | float):
                value = duration(value)
            if key == "log_file" and value is None and "log_file" in report:
                value = "none: it logs to its console (a foreground run)"
            if value is not None:
                lines.append(f"  {label + ':':<13}{value}")
    lines.extend(
        f"  {'degraded:':<13}{item.get('component')}: {item.get('reason')} (since {item.get('since')})"
        for item in report.get("degraded") or ()
    )
    tree = report.get("tree")
    if isinstance(tree, Mapping):
        lines.append("  actors:")
        lines.extend(tree_lines(tree, depth=2))
    return lines


def service_summary(status: Mapping[str, Any]) -> str:
    """A service's state and figures on one line, as ``status`` and ``nua service status`` show them."""
    parts = [str(status.get("state"))]
    if status.get("pid") is not None:
        parts.append(f"pid {status['pid']}")
        parts.append(f"up {duration(float(status.get('uptime_s') or 0))}")
    parts.append(f"restarts {status.get('restarts')}")
    if status.get("cpu_percent") is not None:
        parts.append(f"cpu {status['cpu_percent']:.1f}%")
    if status.get("rss_bytes") is not None:
        parts.append(f"rss {status['rss_bytes'] / 1048576:.1f} MiB")
    if status.get("pid") is not None:
        parts.append(f"group {status.get('group_size')}")
    last = status.get("last_exit")
    if isinstance(last, Mapping):
        how = (
            f"signal {last['signal']}"
            if "signal" in last
            else f"code {last['code']}"
            if "code" in last
            else str(last.get("error"))
        )
        parts.append(f"last exit {how} at {last.get('at')}")
    return ", ".join(parts)


def duration(seconds: float) -> str:
    """``seconds`` as ``1d 2h 3m 4s``, largest unit first, zero units left out (``0s`` for none)."""
    whole = int(seconds)
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    shown = []
    for suffix, size in units:
        count, whole = divmod(whole, size)
        if count:
            shown.append(f"{count}{suffix}")
    return " ".join(shown) or "0s"


__all__ = ["REPORT_LABELS", "duration", "report_lines", "service_summary", "tree_lines"]

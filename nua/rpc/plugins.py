"""Filling a gateway's registry: the built-in method groups, then the plugins.

Plugins are the modules named in ``[rpc] plugins`` and the installed packages
exposing the entry point group ``nua.rpc``; a plugin that fails to load is logged
and skipped. This module, not the registry, knows the built-in groups, so that
the registry stays a leaf every method module may import.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from typing import Any

import structlog

from nua.rpc.method_group import MethodGroup
from nua.rpc.methods import BUILTIN_GROUPS
from nua.rpc.registry import Registry
from nua.rpc.services import Services

ENTRY_POINT_GROUP = "nua.rpc"


def groups_in(obj: Any) -> list[type[MethodGroup]]:
    """The method groups a plugin offers: a group class, a list of them, or a module's own."""
    if isinstance(obj, type) and issubclass(obj, MethodGroup):
        return [obj]
    if isinstance(obj, list | tuple):
        return [g for item in obj for g in groups_in(item)]
    if isinstance(obj, types.ModuleType):
        return [
            value
            for value in vars(obj).values()
            if isinstance(value, type)
            and issubclass(value, MethodGroup)
            and value is not MethodGroup
            and value.__module__ == obj.__name__
        ]
    msg = f"{obj!r} is neither a MethodGroup subclass nor a module holding some"
    raise TypeError(msg)


def add_groups(registry: Registry, groups: Iterable[type[MethodGroup]], services: Services) -> list[str]:
    """Instantiate and add each enabled group; return the names added."""
    added: list[str] = []
    for cls in groups:
        if cls.enabled(services):
            added += registry.add_group(cls(services))
    return added


def _plugin_sources(plugins: Sequence[str], use_entry_points: bool) -> list[tuple[str, Callable[[], Any]]]:
    sources: list[tuple[str, Callable[[], Any]]] = [
        (name, lambda name=name: importlib.import_module(name))  # type: ignore[misc]
        for name in plugins
    ]
    if use_entry_points:
        found = metadata.entry_points(group=ENTRY_POINT_GROUP)
        sources += [(f"entry point {ep.name} ({ep.value})", ep.load) for ep in found]
    return sources


def load_plugins(
    registry: Registry,
    services: Services,
    plugins: Sequence[str],
    *,
    use_entry_points: bool = True,
    log: structlog.stdlib.BoundLogger | None = None,
) -> dict[str, str]:
    """Load each plugin into ``registry``; a broken one is logged and skipped.

    Returns ``{plugin: error}`` for those skipped. A plugin is all or nothing: if
    one of its groups fails, none of its methods stay registered.
    """
    logger = log or structlog.stdlib.get_logger("nua.rpc.plugins")
    failed: dict[str, str] = {}
    for source, load in _plugin_sources(plugins, use_entry_points):
        before = set(registry.names())
        try:
            added = add_groups(registry, groups_in(load()), services)
        except Exception as exc:  # noqa: BLE001 - any failure of a plugin is that plugin's, never the daemon's
            registry.remove(set(registry.names()) - before)
            failed[source] = f"{type(exc).__name__}: {exc}"
            logger.error("rpc_plugin_skipped", plugin=source, error=failed[source])
            continue
        logger.info("rpc_plugin_loaded", plugin=source, methods=added)
    return failed


def build(
    services: Services, *, use_entry_points: bool = True, log: structlog.stdlib.BoundLogger | None = None
) -> Registry:
    """The registry of a gateway: the built-in groups, then the plugins."""
    registry = services.registry
    add_groups(registry, BUILTIN_GROUPS, services)
    load_plugins(registry, services, services.settings.rpc.plugins, use_entry_points=use_entry_points, log=log)
    return registry


__all__ = ["ENTRY_POINT_GROUP", "add_groups", "build", "groups_in", "load_plugins"]

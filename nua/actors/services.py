"""The ``services`` supervisor: one :class:`~nua.actors.service.Service` child per service.

Its children are in dependency order (each after the services it ``depends_on``),
so it starts them in that order and, at a stop, stops them in the reverse order:
a service stops before those it depends on. Services added, replaced or removed
while it runs (``service_add``/``update``/``remove``) keep that order: an addition
may depend only on services that exist, and a service others depend on cannot be
removed. Each child is registered in the daemon's directory as ``service:NAME``,
where RPC methods reach it.

A service's actor does not crash when its process does (it restarts the process
itself), so this supervisor's intensity only counts bugs in nua.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pykka

from nua.actors.directory import Directory
from nua.actors.service import REAP_WAIT_S, Service, ServiceHost, ServiceStatus
from nua.actors.supervised import ChildContext
from nua.actors.supervisor import (
    ChildSpec,
    DeleteChild,
    Intensity,
    Restart,
    StartChild,
    Strategy,
    Supervisor,
    TerminateChild,
)
from nua.service_settings import ServiceConfig, start_order

SERVICES = "services"
PREFIX = "service:"
# How long the tree waits for one service's figures.
DETAIL_TIMEOUT_S = 1.0


def directory_name(service: str) -> str:
    """The name service ``service``'s actor is registered under in the daemon's directory."""
    return PREFIX + service


def budget_s(config: ServiceConfig) -> float:
    """The longest a service's actor may take to start or stop: its process's stop, twice (group, then strays)."""
    return 2 * config.stop_timeout_s + REAP_WAIT_S + 1.0


def child_spec(config: ServiceConfig, host: ServiceHost) -> ChildSpec:
    budget = budget_s(config)

    def start(context: ChildContext) -> pykka.ActorRef[Any]:
        return Service.start(context, config, host)

    return ChildSpec(config.name, start=start, restart=Restart.PERMANENT, shutdown_s=budget, start_timeout_s=budget)


class ServiceConflictError(ValueError):
    """A change that would break the services' dependencies (or name one that does not exist)."""


@dataclass(frozen=True)
class AddService:
    """Add and start (if ``autostart``) a service; answered with its name."""

    config: ServiceConfig


@dataclass(frozen=True)
class ReplaceService:
    """Stop a service and start it again with a new declaration."""

    config: ServiceConfig


@dataclass(frozen=True)
class RemoveService:
    """Stop a service and forget it."""

    name: str


@dataclass(frozen=True)
class ServiceConfigs:
    """The declarations, in dependency order."""


class ServicesSupervisor(Supervisor):
    """Supervises the services; see the module's doc."""

    def __init__(
        self,
        context: ChildContext,
        configs: Sequence[ServiceConfig],
        host: ServiceHost,
        *,
        directory: Directory,
        intensity: Intensity,
    ) -> None:
        ordered, problems = start_order(configs, "services")
        if problems:
            raise ServiceConflictError("; ".join(problems))
        super().__init__(
            context,
            [child_spec(config, host) for config in ordered],
            strategy=Strategy.ONE_FOR_ONE,
            intensity=intensity,
            directory=directory,
            name_prefix=PREFIX,
        )
        self.host = host
        self.configs = {config.name: config for config in ordered}

    def on_receive(self, message: Any) -> Any:
        match message:
            case AddService(config):
                self._check(config, adding=True)
                self.configs[config.name] = config
                self._start(config)
                return config.name
            case ReplaceService(config):
                self._check(config, adding=False)
                self._drop(config.name)
                self.configs[config.name] = config
                self._start(config)
                return config.name
            case RemoveService(name):
                if name not in self.configs:
                    raise ServiceConflictError(f"no service {name!r}")
                users = sorted(other.name for other in self.configs.values() if name in other.depends_on)
                if users:
                    raise ServiceConflictError(f"service {name!r} is needed by {', '.join(users)}: remove those first")
                self._drop(name)
                del self.configs[name]
                return name
            case ServiceConfigs():
                return tuple(self.configs.values())
            case _:
                return super().on_receive(message)

    def _check(self, config: ServiceConfig, *, adding: bool) -> None:
        if adding and config.name in self.configs:
            raise ServiceConflictError(f"service {config.name!r} exists: update it instead")
        if not adding and config.name not in self.configs:
            raise ServiceConflictError(f"no service {config.name!r}")
        _, problems = start_order([*(c for n, c in self.configs.items() if n != config.name), config], "services")
        if problems:
            raise ServiceConflictError("; ".join(p.removeprefix("services: ") for p in problems))

    def _drop(self, name: str) -> None:
        super().on_receive(TerminateChild(name))
        super().on_receive(DeleteChild(name))

    def _start(self, config: ServiceConfig) -> None:
        super().on_receive(StartChild(child_spec(config, self.host)))
        ordered, _ = start_order(self.configs.values(), "services")
        self.arrange([c.name for c in ordered])

    def child_detail(self, ref: pykka.ActorRef[Any], spec: ChildSpec) -> Mapping[str, Any] | None:  # noqa: ARG002
        try:
            return cast("dict[str, Any]", ref.ask(ServiceStatus(), timeout=DETAIL_TIMEOUT_S))
        except pykka.Timeout:
            return {"state": "busy", "error": f"no answer within {DETAIL_TIMEOUT_S} s"}
        except pykka.ActorDeadError:
            return None

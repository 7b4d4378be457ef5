"""The ``services`` supervisor: one :class:`~nua.actors.service.Service` child per service.

Its children are in dependency order (each after the services it ``depends_on``),
so it starts them in that order and, at a stop, stops them in the reverse order:
a service stops before those it depends on, and services that do not depend on
each other stop together (:meth:`ServicesSupervisor.stop_waves`). Services added,
replaced or removed while it runs (``service_add``/``update``/``remove``) keep
that order: an addition may depend only on services that exist, and a service
others depend on cannot be removed. Each child is registered in the daemon's
directory as ``service:NAME``, where RPC methods reach it.

Two sources declare services: the settings file, read at load, and the database,
which holds those added at run time (``service_add``). The file's come first; the
database's are read (from the DB writer) when this supervisor starts, and started
after them (they may depend on the file's, not the other way round). A name the
file declares is the file's: a stored service of the same name is skipped with a
warning, and RPC refuses to add, change or remove it (edit the file instead), as
supervisord's config file is the only source of its programs and a systemd unit in
``/etc`` shadows one of the same name elsewhere.

A service's actor does not crash when its process does (it restarts the process
itself), so this supervisor's intensity only counts bugs in nua.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pykka

from nua.actors.call import call
from nua.actors.directory import DB_WRITER, Directory
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
from nua.model.commands import ListServices
from nua.service_settings import ServiceConfig, parse_service, start_order

SERVICES = "services"
PREFIX = "service:"
# How long the tree waits for one service's figures.
DETAIL_TIMEOUT_S = 1.0
# How long the start waits for the list of stored services.
STORED_TIMEOUT_S = 10.0
FILE = "file"
DATABASE = "database"


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


class UnknownServiceError(LookupError):
    """A request named a service that is not declared."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no service {name!r}")
        self.name = name


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
class ReopenServiceLogs:
    """Reopen every service's log file (after an external logrotate moved them)."""


@dataclass(frozen=True)
class ServiceConfigs:
    """The declarations, in dependency order, each with its source (:data:`FILE` or :data:`DATABASE`)."""


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
        load_stored: bool = True,
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
            events=host.events,
        )
        self.host = host
        self.configs = {config.name: config for config in ordered}
        self.from_file = frozenset(self.configs)
        self.load_stored = load_stored

    def setup(self) -> None:
        super().setup()
        if not self.load_stored:
            return
        for config in self._stored():
            try:
                self._check(config, adding=True)
            except ServiceConflictError as exc:
                self.log.error("stored_service_skipped", service=config.name, reason=str(exc))
                continue
            self.configs[config.name] = config
            self._start(config)

    def _stored(self) -> list[ServiceConfig]:
        """The services stored in the database, checked again, in dependency order; none if it cannot be read."""
        # Asked of the writer, which has its connection open: the reader connects at its first read.
        writer = self.directory.lookup(DB_WRITER)
        try:
            if writer is None:
                raise LookupError(DB_WRITER)  # noqa: TRY301 - one way out for every failure
            rows = call(writer, ListServices()).result(STORED_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - the file's services run all the same
            self.log.error("stored_services_unreadable", error=repr(exc))
            return []
        found = []
        for row in rows:
            if row["name"] in self.from_file:
                self.log.warning("stored_service_shadowed", service=row["name"], reason="the settings file declares it")
                continue
            config, problems = parse_service(row["name"], row["config"], "database")
            if config is None:
                self.log.error("stored_service_invalid", service=row["name"], problems=problems)
                continue
            found.append(config)
        ordered, problems = start_order([*self.configs.values(), *found], "database")
        for problem in problems:
            self.log.error("stored_service_invalid", problem=problem)
        return [config for config in ordered if config.name not in self.configs and config in found]

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
                    raise UnknownServiceError(name)
                if name in self.from_file:
                    raise ServiceConflictError(f"service {name!r} is declared in the settings file: change it there")
                users = sorted(other.name for other in self.configs.values() if name in other.depends_on)
                if users:
                    raise ServiceConflictError(f"service {name!r} is needed by {', '.join(users)}: remove those first")
                self._drop(name)
                del self.configs[name]
                return name
            case ReopenServiceLogs():
                self.host.loop.reopen_logs()
                return True
            case ServiceConfigs():
                return tuple((c, FILE if c.name in self.from_file else DATABASE) for c in self.configs.values())
            case _:
                return super().on_receive(message)

    def _check(self, config: ServiceConfig, *, adding: bool) -> None:
        if config.name in self.from_file:
            raise ServiceConflictError(f"service {config.name!r} is declared in the settings file: change it there")
        if adding and config.name in self.configs:
            raise ServiceConflictError(f"service {config.name!r} exists: update it instead")
        if not adding and config.name not in self.configs:
            raise UnknownServiceError(config.name)
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

    def stop_waves(self, ids: Sequence[str]) -> list[list[str]]:
        """Each wave: the services that none of those still running depends on, stopped together.

        A service stops before those it ``depends_on``, as before, but services
        that do not depend on each other are signalled together and awaited
        together (supervisord stops a priority group at once): 50 independent
        services stop in the time of the slowest, not in the sum of their times.
        """
        remaining = list(ids)
        waves: list[list[str]] = []
        while remaining:
            needed = {
                dependency
                for name in remaining
                if (config := self.configs.get(name)) is not None
                for dependency in config.depends_on
            }
            wave = [name for name in reversed(remaining) if name not in needed] or [remaining[-1]]
            waves.append(wave)
            remaining = [name for name in remaining if name not in wave]
        return waves

    def child_detail(self, ref: pykka.ActorRef[Any], spec: ChildSpec) -> Mapping[str, Any] | None:  # noqa: ARG002
        try:
            return cast("dict[str, Any]", ref.ask(ServiceStatus(), timeout=DETAIL_TIMEOUT_S))
        except pykka.Timeout:
            return {"state": "busy", "error": f"no answer within {DETAIL_TIMEOUT_S} s"}
        except pykka.ActorDeadError:
            return None

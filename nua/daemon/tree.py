"""The daemon's actor tree, declared as data.

One root supervisor, registered in the :class:`Directory` as ``"root"``, with its
children in start order: the sentinel first (it must be watching the pid file
before anything serves), then the DB writer (the gateway forwards to it;
it creates or upgrades the schema), the DB reader (reads on a connection of their
own, see :mod:`nua.actors.db_reader`), the services (the OS processes the daemon
supervises, see :mod:`nua.actors.services`; after the database, which holds those
added at run time), cron (the scheduled jobs, :mod:`nua.actors.cron`: its command
jobs run under the services' process loop), then the gateway (when it has bound its
endpoint, the daemon serves) and, with ``[http] port`` set, the HTTP server last (it
shares the gateway's key cache). They
stop in the reverse order: the gateway stops taking calls before the DB writer
commits or fails what it holds. ``one_for_one``: the children do not depend on
each other's state, each reaches the others by name through the directory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pykka

from nua.actors.cron import CRON, Cron, CronHost
from nua.actors.db_reader import DbReader
from nua.actors.db_writer import DbWriter
from nua.actors.directory import DB_READER, DB_WRITER, GATEWAY, HTTP, ROOT, SENTINEL, Directory
from nua.actors.events import EventHub
from nua.actors.health import Health
from nua.actors.sentinel import Sentinel, ShutdownListener
from nua.actors.service import ServiceHost
from nua.actors.services import SERVICES, ServicesSupervisor, budget_s
from nua.actors.supervised import ChildContext, ExitListener
from nua.actors.supervisor import ChildSpec, Intensity, Restart, Strategy, Supervisor
from nua.rpc import plugins
from nua.rpc.bound import BoundEndpoint
from nua.rpc.gateway import Gateway
from nua.rpc.job_calls import JobCalls
from nua.rpc.services import Services
from nua.rpc.token_cache import TokenCache
from nua.settings import Settings

# Opening the database (and creating or upgrading its schema) may take longer
# than an actor's usual start.
DB_WRITER_START_TIMEOUT_S = 30.0
# Added to the services' stop budget, for the services added at run time.
SERVICES_MARGIN_S = 60.0


def child_specs(
    settings: Settings,
    directory: Directory,
    request_shutdown: ShutdownListener,
    health: Health,
    service_host: ServiceHost,
    *,
    events: EventHub,
    bound: BoundEndpoint | None = None,
) -> list[ChildSpec]:
    """The root's children, in start order (no gateway with ``[server] start_zmq_server = false``, no HTTP server
    unless ``[http] port`` is set).

    ``bound`` goes from each gateway incarnation to the next (a socket the daemon bound, the port, the keys).
    """
    shutdown_s = settings.supervisor.shutdown_timeout_s

    def spec(child_id: str, start: Callable[[ChildContext], pykka.ActorRef[Any]], **extra: Any) -> ChildSpec:
        return ChildSpec(child_id, start=start, restart=Restart.PERMANENT, shutdown_s=shutdown_s, **extra)

    specs = [
        spec(SENTINEL, lambda ctx: Sentinel.start(ctx, settings, request_shutdown)),
        spec(
            DB_WRITER,
            lambda ctx: DbWriter.start(ctx, settings, health, events=events),
            start_timeout_s=DB_WRITER_START_TIMEOUT_S,
        ),
        spec(DB_READER, lambda ctx: DbReader.start(ctx, settings, health)),
    ]
    intensity = Intensity(settings.supervisor.max_restarts, settings.supervisor.max_seconds)
    # Every service's stop, in turn, and enough for those added at run time to stop too.
    services_s = sum(budget_s(config) for config in settings.services) + shutdown_s + SERVICES_MARGIN_S
    specs.append(
        ChildSpec(
            SERVICES,
            start=lambda ctx: ServicesSupervisor.start(
                ctx, settings.services, service_host, directory=directory, intensity=intensity
            ),
            restart=Restart.PERMANENT,
            shutdown_s=services_s,
            start_timeout_s=services_s,
        )
    )
    # One token cache for every incarnation of both transports (key_token and key_remove change it).
    tokens = TokenCache()
    # A restarted gateway binds the port the first one got, and serves with its key cache.
    gateway = bound = (bound or BoundEndpoint()) if settings.server.start_zmq_server else bound
    cron_host = CronHost(
        service_host.loop,
        service_host.timers,
        settings.jobs_log_dir,
        actions=job_calls(settings, directory, health, events, tokens=tokens, gateway=gateway),
        publish=events.publish,
        keep_days=settings.cron.keep_days,
        health=health,
    )
    specs.append(spec(CRON, lambda ctx: Cron.start(ctx, cron_host, settings.jobs, directory=directory)))
    if gateway is not None and settings.server.start_zmq_server:
        specs.append(
            spec(
                GATEWAY,
                lambda ctx: Gateway.start(
                    ctx, settings, directory, health, gateway, events=events, timers=service_host.timers, tokens=tokens
                ),
            )
        )
    if settings.http.enabled:
        # Imported only when it runs: h11 and the server's modules are 0.8 MiB of an idle daemon.
        from nua.http.server import HttpServer, HttpShared  # noqa: PLC0415

        shared = HttpShared(tokens=tokens, gateway=bound)
        specs.append(
            spec(
                HTTP,
                lambda ctx: HttpServer.start(
                    ctx, settings, directory, health, shared, events=events, timers=service_host.timers
                ),
            )
        )
    return specs


def job_calls(
    settings: Settings,
    directory: Directory,
    health: Health,
    events: EventHub,
    *,
    tokens: TokenCache,
    gateway: BoundEndpoint | None,
) -> JobCalls:
    """How the cron jobs' ``call`` actions run: on a registry filled as the gateway fills its own.

    With the gateway's key cache (``gateway.keys``, loaded by the gateway's incarnations) and the token cache of
    both transports: each run takes its key's current role there, and a job's ``key_remove`` reaches both at once.
    Without a key store (``[zmq] auth = "none"``, or no ZeroMQ gateway) each job keeps the role stored with it.
    """
    services = Services(settings, directory, health=health, events=events, tokens=tokens)
    plugins.build(services)
    keys = None
    if gateway is not None and settings.zmq.curve and settings.server.start_zmq_server:
        keys = lambda: gateway.keys  # noqa: E731 - read at each run: the gateway sets it once it has loaded
    return JobCalls(services.registry, services, keys=keys)


def start(
    settings: Settings,
    directory: Directory,
    *,
    request_shutdown: ShutdownListener,
    on_exit: ExitListener,
    health: Health,
    service_host: ServiceHost,
    events: EventHub,
    bound: BoundEndpoint | None = None,
) -> tuple[pykka.ActorRef[Any], list[ChildSpec]]:
    """Start the root supervisor; it starts its children in its own thread.

    Returns at once: an ``ask`` of :class:`~nua.actors.messages.Ping` to the root
    answers only once every child is running (or fails, if one could not start).
    """
    specs = child_specs(settings, directory, request_shutdown, health, service_host, events=events, bound=bound)
    root = Supervisor.start(
        ChildContext(ROOT, 1, on_exit),
        specs,
        strategy=Strategy.ONE_FOR_ONE,
        intensity=Intensity(settings.supervisor.max_restarts, settings.supervisor.max_seconds),
        directory=directory,
        events=events,
    )
    directory.register(ROOT, root)
    return root, specs


def start_budget_s(specs: list[ChildSpec]) -> float:
    """How long the whole tree may take to start: each child's timeout, in turn."""
    return sum(spec.start_timeout_s for spec in specs) + 1.0


def stop_budget_s(specs: list[ChildSpec]) -> float:
    """How long the whole tree may take to stop: each child's shutdown timeout, in turn."""
    return sum(spec.shutdown_s for spec in specs) + 1.0

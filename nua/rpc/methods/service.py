"""``service_``: the OS processes the daemon supervises (see :mod:`nua.actors.services`).

``service_add``/``update``/``remove`` change the running ``services`` supervisor and
the database together: the supervisor first (it checks the dependencies and
starts the service), then the row; a reply means both are done and durable, and
a failed write undoes the change to the supervisor. Services of the settings file
are the file's: these three refuse them (-32002, conflict). ``start``, ``stop``,
``restart`` and ``signal`` act on the running service only (``autostart``
decides the next daemon start). ``stop`` and ``restart`` answer once the process
has stopped, which may take the service's ``stop_timeout_s``: a client's timeout
should allow for it.
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import Future
from pathlib import Path
from typing import Any, cast

from nua.actors.service import (
    NotRunningError,
    RestartService,
    ServiceStatus,
    SignalService,
    StartService,
    StopService,
)
from nua.actors.service_log import follow, tail
from nua.actors.services import (
    SERVICES,
    AddService,
    RemoveService,
    ReopenServiceLogs,
    ReplaceService,
    ServiceConfigs,
    ServiceConflictError,
    UnknownServiceError,
    directory_name,
)
from nua.model.commands import DeleteService, PutService
from nua.rpc.errors import ConflictError, InvalidParamsError, NotFoundError, UnavailableError
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public
from nua.rpc.services import DB_WRITER
from nua.service_settings import NAME_PATTERN, ServiceConfig, parse_service
from nua.settings import shown_table

# How long a multi-step method waits for each step (the supervisor starts or stops a service in it).
STEP_TIMEOUT_S = 60.0
MAX_LOG_LINES = 10_000
# The most a service_logs reply carries: a reply must fit in [rpc] max_reply_bytes.
MAX_LOG_BYTES = 256 * 1024


class ServiceMethods(MethodGroup):
    """Declare, control and read the services."""

    prefix = "service_"

    # -- declarations ---------------------------------------------------------------------

    @public(offload=True, role="operator", changes=True)
    def add(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        """Add a service (``config``: the keys of a ``[services.NAME]`` table) and start it if ``autostart``.

        Kept in the database: it comes back after a restart. Returns ``service_get``'s answer.
        """
        made = self._checked(name, config)
        self._change(AddService(made), PutService(name, made.as_table(), create=True), RemoveService(name))
        return self.get(name)

    @public(offload=True, role="operator", changes=True)
    def update(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        """Replace a service's declaration (added by ``service_add``): it is stopped and started anew."""
        made = self._checked(name, config)
        old = self._config(name)[0]
        self._change(ReplaceService(made), PutService(name, made.as_table(), create=False), ReplaceService(old))
        return self.get(name)

    @public(offload=True, role="operator", changes=True)
    def remove(self, name: str) -> int:
        """Stop a service added by ``service_add`` and forget it; returns 1."""
        old = self._config(name)[0]
        self._change(RemoveService(name), DeleteService(name), AddService(old))
        return 1

    # -- control ------------------------------------------------------------------------------

    @public(role="operator", changes=True)
    def start(self, name: str) -> Future[Any]:
        """Start a service that is not running (a FATAL one too: its failed starts are reset); its status."""
        return self._ask(name, StartService())

    @public(role="operator", changes=True)
    def stop(self, name: str) -> Future[Any]:
        """Stop a service's processes (``stop_signal``, then SIGKILL after ``stop_timeout_s``); its status."""
        return self._ask(name, StopService())

    @public(role="operator", changes=True)
    def restart(self, name: str) -> Future[Any]:
        """Stop, then start; its status."""
        return self._ask(name, RestartService())

    @public(role="operator", changes=True)
    def signal(self, name: str, signal_name: str) -> Future[Any]:
        """Send a signal (``HUP``, ``SIGUSR1``, ...) to the service's process group; its status."""
        candidate = signal_name.upper() if signal_name.upper().startswith("SIG") else f"SIG{signal_name.upper()}"
        if candidate not in signal.Signals.__members__:
            raise InvalidParamsError(f"signal_name: no signal {signal_name!r}", {"param": "signal_name"})
        return self._ask(name, SignalService(int(signal.Signals[candidate])))

    @public(offload=True, role="operator", changes=True)
    def reopen_logs(self) -> bool:
        """Reopen every service's log file (after an external logrotate); as SIGUSR2 to the daemon."""
        self._step(self.services.ask(SERVICES, ReopenServiceLogs()))
        return True

    # -- reading --------------------------------------------------------------------------------

    @public(offload=True, role="reader")
    def list(self) -> list[dict[str, Any]]:
        """Every service, in dependency order: its status (``service_get`` without ``config``)."""
        listed = []
        for config, source in self._configs():
            listed.append({**self._status(config.name), "source": source})
        return listed

    @public(offload=True, role="reader")
    def get(self, name: str) -> dict[str, Any]:
        """A service's status (state, pid, uptime_s, restarts, failed_starts, last_exit, cpu_percent,
        rss_bytes, group_size), its ``source`` (``file`` or ``database``) and its ``config``."""
        config, source = self._config(name)
        # Its env values may be secrets (API_TOKEN): a reader sees the names only.
        return {**self._status(name), "source": source, "config": shown_table(config.as_table())}

    @public(offload=True, role="operator")  # a service's output may hold what only operators should read
    def logs(self, name: str, lines: int = 100, cursor: dict[str, Any] | None = None) -> dict[str, Any]:
        """The last ``lines`` lines of the service's output, or what follows ``cursor``.

        Returns ``{"lines": [...], "cursor": {...}}``: pass the cursor back to get only
        what was written since (``nua service logs -f``), across rotations.
        """
        config, _ = self._config(name)
        if not 0 <= lines <= MAX_LOG_LINES:
            raise InvalidParamsError(f"lines: must be from 0 to {MAX_LOG_LINES}", {"param": "lines"})
        path = Path(self.services.settings.services_log_dir) / f"{name}.log"
        if cursor is None:
            return {"lines": tail(path, lines, config.log_backups, MAX_LOG_BYTES), "cursor": follow(path, None)[1]}
        try:
            text, after = follow(path, cursor, MAX_LOG_BYTES)
        except ValueError as exc:
            raise InvalidParamsError(f"cursor: {exc}", {"param": "cursor"}) from None
        return {"lines": text, "cursor": after}

    # -- helpers --------------------------------------------------------------------------------

    def _change(self, running: Any, stored: Any, undo: Any) -> None:
        """Change the running services, then the database; when the write fails, undo the change and raise."""
        self._step(self.services.ask(SERVICES, running))
        try:
            self._step(self.services.ask(DB_WRITER, stored))
        except Exception:
            self._step(self.services.ask(SERVICES, undo))
            raise

    def _checked(self, name: str, config: dict[str, Any]) -> ServiceConfig:
        made, problems = parse_service(name, config, "config", euid=os.geteuid())
        if made is None:
            raise InvalidParamsError("; ".join(problems), {"param": "config", "problems": problems})
        return made

    def _configs(self) -> tuple[tuple[ServiceConfig, str], ...]:
        return cast("tuple[tuple[ServiceConfig, str], ...]", self._step(self.services.ask(SERVICES, ServiceConfigs())))

    def _config(self, name: str) -> tuple[ServiceConfig, str]:
        for config, source in self._configs():
            if config.name == name:
                return config, source
        raise NotFoundError(f"no service {name!r}", {"name": name})

    def _status(self, name: str) -> dict[str, Any]:
        return cast("dict[str, Any]", self._step(self._ask(name, ServiceStatus())))

    def _ask(self, name: str, message: Any) -> Future[Any]:
        if not NAME_PATTERN.fullmatch(name) or self.services.directory.lookup(directory_name(name)) is None:
            raise NotFoundError(f"no service {name!r} (or it is restarting: retry)", {"name": name})
        return translated(self.services.ask(directory_name(name), message))

    def _step(self, future: Future[Any]) -> Any:
        try:
            return translated(future).result(STEP_TIMEOUT_S)
        except TimeoutError:
            raise UnavailableError(f"no answer within {STEP_TIMEOUT_S} s; retry") from None


def translated(future: Future[Any]) -> Future[Any]:
    """``future``, with the services' own errors turned into RPC errors (a conflict, a missing name)."""
    result: Future[Any] = Future()

    def done(source: Future[Any]) -> None:
        error = source.exception()
        if error is None:
            result.set_result(source.result())
        elif isinstance(error, UnknownServiceError):
            result.set_exception(NotFoundError(str(error), {"name": error.name}))
        elif isinstance(error, ServiceConflictError | NotRunningError):
            result.set_exception(ConflictError(str(error)))
        else:
            result.set_exception(error)

    future.add_done_callback(done)
    return result

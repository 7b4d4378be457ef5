"""``cron_``: scheduled jobs (see :mod:`nua.actors.cron`) and their run history.

The database holds the jobs: ``cron_add``/``update``/``remove``/``pause``/``resume``
write there first (audited, as every change), then tell the ``cron`` actor to read
the job again; a reply means the change is durable, and a cron actor that is
restarting reads it at its start. A job added here runs its ``call`` with the role
the key that added it has at each run (:mod:`nua.rpc.job_calls`), so a key may
only add a call it could make itself (and the method and its params are checked
against the registry now, not at the first fire), and only a key that could make
the call itself may ``run_now`` it. Jobs of the settings file are the file's: ``update`` and ``remove`` refuse
them (-32002); ``pause`` and ``resume`` act on them until the next daemon start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from nua.actors.cron import CRON, JobBusyError, JobsNotLoadedError, ReloadJob, RunNow, UnknownJobError
from nua.actors.cron_plan import next_fire
from nua.job_settings import CallAction, JobConfig, parse_job
from nua.model import commands as cmd
from nua.model.errors import ModelError
from nua.roles import role_named
from nua.rpc import auditing
from nua.rpc.access import Caller, denial
from nua.rpc.errors import ConflictError, ForbiddenError, InvalidParamsError, NotFoundError, RpcError, UnavailableError
from nua.rpc.job_shown import shown_config
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public
from nua.rpc.services import DB_READER, DB_WRITER
from nua.service_settings import NAME_PATTERN

STEP_TIMEOUT_S = 30.0


class CronMethods(MethodGroup):
    """Declare, control and read the scheduled jobs."""

    prefix = "cron_"

    # -- declarations -------------------------------------------------------------------------

    @public(offload=True, role="operator", changes=True)
    def add(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        """Add a job (``config``: the keys of a ``[jobs.NAME]`` table but ``role``); returns ``cron_get``'s answer.

        Its ``call`` runs with the role of the key adding it: the method must exist,
        take the params, and be one this key may call.
        """
        return self._put(name, config, create=True)

    @public(offload=True, role="operator", changes=True)
    def update(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        """Replace a job's declaration (one added by ``cron_add``); its next fire is computed anew from now."""
        return self._put(name, config, create=False)

    @public(offload=True, role="operator", changes=True)
    def remove(self, name: str) -> int:
        """Forget a job added by ``cron_add``, with its run history; returns 1."""
        self._step(self.services.ask(DB_WRITER, cmd.DeleteJob(_name(name))))
        self._tell_cron(ReloadJob(name))
        return 1

    @public(offload=True, role="operator", changes=True)
    def pause(self, name: str) -> dict[str, Any]:
        """Stop firing a job until ``cron_resume`` (a file's job: until then or the next daemon start)."""
        self._step(self.services.ask(DB_WRITER, cmd.SetJobPaused(_name(name), paused=True, next_fire_at=None)))
        self._tell_cron(ReloadJob(name))
        return self.get(name)

    @public(offload=True, role="operator", changes=True)
    def resume(self, name: str) -> dict[str, Any]:
        """Fire a paused job again, from its first fire after now (the fires of the pause are not run)."""
        job = self._job(name)
        config = self._config(job)
        resumed = cmd.SetJobPaused(name, paused=False, next_fire_at=next_fire(config, datetime.now(UTC)))
        self._step(self.services.ask(DB_WRITER, resumed))
        self._tell_cron(ReloadJob(name))
        return self.get(name)

    @public(offload=True, role="operator", changes=True)
    def run_now(self, name: str) -> dict[str, Any]:
        """Run a job once now, besides its schedule; returns ``{"run": id}`` (see ``cron_history``).

        A job's ``call`` is run now only for a key that may call its method itself (as ``cron_add`` asks):
        an operator cannot have an admin's job run an admin method and read its result.
        """
        job = self._job(name)
        self._check_call(self._config(job), _caller_role(), refuse=ForbiddenError)
        try:
            run_id = self._step(self.services.ask(CRON, RunNow(name)))
        except UnknownJobError:
            raise NotFoundError(f"no job {name!r}", {"name": name}) from None
        except JobBusyError as exc:
            raise ConflictError(str(exc), {"name": name}) from None
        except JobsNotLoadedError as exc:
            raise UnavailableError(str(exc), {"name": name}) from None
        return {"run": run_id}

    # -- reading ------------------------------------------------------------------------------------

    @public(offload=True, role="reader")
    def list(self, limit: int | None = None, after: str | None = None) -> dict[str, Any]:
        """One page of jobs by name: ``{"items": [...], "next": name or null}``.

        Each: ``name``, ``config``, ``source`` (``file`` or ``database``), ``owner``,
        ``owner_role``, ``paused``, ``next_fire_at``, ``last_status``, ``last_run_at``.
        """
        command = cmd.ListJobs(limit=self._limit(limit), after=after)
        page = cast("dict[str, Any]", self._step(self.services.ask(DB_READER, command)))
        return {**page, "items": [self._shown(job) for job in page["items"]]}

    @public(offload=True, role="reader")
    def get(self, name: str) -> dict[str, Any]:
        """One job (as ``cron_list`` shows each) and its next five fires (``upcoming``)."""
        job = self._job(name)
        config = self._config(job)
        upcoming = []
        if job["next_fire_at"] is not None:
            first = datetime.fromisoformat(job["next_fire_at"])
            upcoming = [first, *config.schedule.fires(first, 4)]
        return {**self._shown(job), "upcoming": [fire.isoformat() for fire in upcoming]}

    @public(offload=True, role="reader")
    def history(self, name: str, limit: int | None = None, after: int | None = None) -> dict[str, Any]:
        """One page of a job's runs, newest first: ``{"items": [...], "next": id or null}``.

        Each: ``id``, ``scheduled_at`` (null for a manual run), ``started_at``,
        ``ended_at``, ``status`` (``running``, ``ok``, ``failed``, ``missed``,
        ``skipped``, ``interrupted``, ``timed_out``), ``detail`` (the result, the
        error or the end of the output), ``exit_code``, ``duration_s``, ``claimed_by``.
        """
        if after is not None and (isinstance(after, bool) or not isinstance(after, int)):
            raise InvalidParamsError("after: must be the id `next` gave", {"param": "after"})
        command = cmd.ListRuns(_name(name), limit=self._limit(limit), after=after)
        return cast("dict[str, Any]", self._step(self.services.ask(DB_READER, command)))

    # -- helpers ------------------------------------------------------------------------------------

    def _put(self, name: str, config: dict[str, Any], *, create: bool) -> dict[str, Any]:
        if "role" in config:
            raise InvalidParamsError(
                "config: role is for the settings file; a job added by RPC runs with the role of your key",
                {"param": "config"},
            )
        made, problems = parse_job(name, config, "config", euid=os.geteuid())
        if made is None:
            raise InvalidParamsError("; ".join(problems), {"param": "config", "problems": problems})
        entry = auditing.current()
        who, role = (entry.who, entry.role) if entry is not None else ("(internal)", "admin")
        self._check_call(made, role, refuse=InvalidParamsError)
        first = None if made.paused else next_fire(made, datetime.now(UTC))
        table = made.as_table()
        del table["role"]
        command = cmd.PutJob(name, table, who, role, first, create=create)
        try:
            self._step(self.services.ask(DB_WRITER, command))
        except ConflictError as exc:
            raise self._conflict(name, create=create) from exc
        self._tell_cron(ReloadJob(name))
        return self.get(name)

    def _conflict(self, name: str, *, create: bool) -> ConflictError:
        job = self._job(name)
        if job["source"] == "file":
            return ConflictError(f"job {name!r} is declared in the settings file: change it there", {"name": name})
        if create:
            return ConflictError(f"job {name!r} exists: update it instead", {"name": name})
        return ConflictError(f"job {name!r} changed meanwhile; retry", {"name": name})

    def _check_call(self, made: JobConfig, role: str, *, refuse: type[RpcError]) -> None:
        """Refuse (``refuse``: the error for a role too low) a job whose call ``role`` could not make itself."""
        action = made.action
        if not isinstance(action, CallAction):
            return
        method = self.services.registry.get(action.method)
        if method is None:
            raise InvalidParamsError(f"config: call names no method {action.method!r}", {"param": "config"})
        caller_role = role_named(role)
        if caller_role is None or denial(method, Caller("", caller_role)) is not None:
            needed = method.role.label if method.role is not None else "(none: no one may call it)"
            if refuse is InvalidParamsError:
                msg = f"config: {action.method} needs the {needed} role and the job would run with {role}"
                raise refuse(msg, {"param": "config"})
            msg = f"job {made.name!r} calls {action.method}, which needs the {needed} role; your key has {role}"
            raise refuse(msg, {"job": made.name, "role_needed": needed, "role": role})
        args, kwargs = ([], action.params) if isinstance(action.params, dict) else (action.params, {})
        try:
            method.check(args, kwargs)
        except InvalidParamsError as exc:
            raise InvalidParamsError(f"config: params: {exc.message}", {"param": "config"}) from None

    def audited_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """A call's params as its audit record shows them: a job's ``config`` masked as replies show it.

        (The call's params are redacted by name after; a job's call params are nested
        in ``config``, where no name says they are secret.)
        """
        config = params.get("config")
        if not isinstance(config, Mapping):
            return params
        return {**params, "config": shown_config(config, self.services.registry)}

    def _shown(self, job: dict[str, Any]) -> dict[str, Any]:
        """A stored job as a reply shows it: its config's secrets masked (see :mod:`nua.rpc.job_shown`)."""
        return {**job, "config": shown_config(job["config"], self.services.registry)}

    def _job(self, name: str) -> dict[str, Any]:
        return cast("dict[str, Any]", self._step(self.services.ask(DB_READER, cmd.GetJob(_name(name)))))

    def _config(self, job: dict[str, Any]) -> JobConfig:
        made, problems = parse_job(job["name"], job["config"], "stored job", euid=os.geteuid())
        if made is None:
            raise ConflictError(f"job {job['name']!r} is stored damaged: {'; '.join(problems)}", {"name": job["name"]})
        return made

    def _tell_cron(self, message: Any) -> None:
        """Have the cron actor read the job again; if it is restarting, it reads every job at its start."""
        try:
            self._step(self.services.ask(CRON, message))
        except UnavailableError:
            return

    def _limit(self, limit: int | None) -> int:
        rpc = self.services.settings.rpc
        if limit is None:
            return rpc.page_size
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= rpc.max_page_size:
            raise InvalidParamsError(f"limit: must be from 1 to {rpc.max_page_size}", {"param": "limit"})
        return limit

    @staticmethod
    def _step(future: Any) -> Any:
        try:
            return future.result(STEP_TIMEOUT_S)
        except TimeoutError:
            raise UnavailableError(f"no answer within {STEP_TIMEOUT_S} s; retry") from None
        except ModelError as exc:
            if exc.kind == "not_found":
                raise NotFoundError(exc.message, exc.data or None) from None
            if exc.kind == "conflict":
                raise ConflictError(exc.message, exc.data or None) from None
            raise


def _caller_role() -> str:
    """The role of the key making the current call (``admin`` for the daemon's own, unaudited, calls)."""
    entry = auditing.current()
    return entry.role if entry is not None else "admin"


def _name(name: str) -> str:
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise NotFoundError(f"no job {name!r}", {"name": name if isinstance(name, str) else None})
    return name


__all__ = ["CronMethods"]

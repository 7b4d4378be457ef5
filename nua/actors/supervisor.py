"""An Erlang/OTP-style supervisor on pykka.

Children are declared as data (:class:`ChildSpec`) in a list that fixes their start
order. The supervisor starts them one by one, confirming each is running before the
next; watches for their exits (every :class:`SupervisedActor` reports its own);
restarts them according to their restart type and the supervisor's strategy; and
gives up when restarts come faster than its :class:`Intensity` allows, stopping
every child in reverse order and failing itself so that its own supervisor (or, at
the root, the daemon) hears of it. Every wait on a child is bounded by a timeout.

Children may also be added and removed while it runs, as OTP's ``start_child``,
``terminate_child``, ``restart_child`` and ``delete_child`` do: by asking it
:class:`StartChild`, :class:`TerminateChild`, :class:`RestartChild` and
:class:`DeleteChild` (or through the functions of the same names), so that any
thread may use them; the supervisor's own thread does the work between two
exits, never during one. A child added later goes to the end of the list: it
stops before the children that were there first, and the strategies treat it by
its place in the list, as they do the children given at start.

With an :class:`~nua.actors.events.EventHub`, each change is published:
``actor.started`` (a child started, not by a restart), ``actor.exited`` (a child
ended without being asked: ``error`` says why, ``None`` when it stopped by
itself), ``actor.restarted`` (exactly one per child a restart brought back, each
member of a ``one_for_all`` or ``rest_for_one`` group included) and
``actor.stopped`` (terminated on request).

One difference from OTP: a temporary child's spec is kept once it has ended
(shown ``stopped`` or ``failed`` with its last error) until :class:`DeleteChild`,
so that the tree still says what happened to it.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import itertools
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, cast

import pykka

from nua.actors.directory import Directory
from nua.actors.events import EventHub
from nua.actors.messages import ChildInfo, Exited, Ping, WhichChildren
from nua.actors.supervised import ChildContext, SupervisedActor, describe


class Restart(enum.StrEnum):
    """When a child that ended is started again (OTP's restart types)."""

    PERMANENT = "permanent"  # always
    TRANSIENT = "transient"  # only if it failed
    TEMPORARY = "temporary"  # never


class Strategy(enum.StrEnum):
    """Which children are restarted along with the one that ended."""

    ONE_FOR_ONE = "one_for_one"  # only that child
    ONE_FOR_ALL = "one_for_all"  # every child
    REST_FOR_ONE = "rest_for_one"  # that child and those started after it


@dataclass(frozen=True)
class ChildSpec:
    """How to start one child and what to do when it ends."""

    id: str
    start: Callable[[ChildContext], pykka.ActorRef[Any]]
    restart: Restart = Restart.PERMANENT
    shutdown_s: float = 5.0
    start_timeout_s: float = 5.0


@dataclass(frozen=True)
class Intensity:
    """More than ``max_restarts`` restarts within ``max_seconds`` ends the supervisor."""

    max_restarts: int = 3
    max_seconds: float = 5.0


class StartFailedError(RuntimeError):
    """A child did not come up; the children started before it have been stopped."""

    def __init__(self, child_id: str, reason: str) -> None:
        super().__init__(f"child {child_id!r} failed to start: {reason}")
        self.child_id = child_id
        self.reason = reason


class EscalationError(RuntimeError):
    """Restart intensity was exceeded; the supervisor stopped its children and fails."""


class UnknownChildError(LookupError):
    """A request named a child id this supervisor does not have."""

    def __init__(self, child_id: str) -> None:
        super().__init__(f"no child {child_id!r}")
        self.child_id = child_id


class DuplicateChildError(ValueError):
    """:class:`StartChild` with an id the supervisor already has (running or not)."""

    def __init__(self, child_id: str, state: str) -> None:
        super().__init__(f"child {child_id!r} already exists ({state}): terminate and delete it first")
        self.child_id = child_id
        self.state = state


class ChildRunningError(RuntimeError):
    """:class:`RestartChild` or :class:`DeleteChild` of a child that is running: terminate it first."""

    def __init__(self, child_id: str) -> None:
        super().__init__(f"child {child_id!r} is running: terminate it first")
        self.child_id = child_id


# -- requests (asks) --------------------------------------------------------------------------
# Here rather than in ``messages``: a StartChild carries a ChildSpec, defined above,
# and ``messages`` must not import the supervisor (which imports ``messages``).


@dataclass(frozen=True)
class StartChild:
    """Add ``spec`` at the end of the children and start it; answered with its :class:`ChildInfo`.

    Fails with :class:`DuplicateChildError` if the id is taken, or :class:`StartFailedError`
    if the child does not come up, in which case the spec is not kept (as in OTP).
    """

    spec: ChildSpec


@dataclass(frozen=True)
class TerminateChild:
    """Stop a child and keep its spec (state ``stopped``); it is not restarted until :class:`RestartChild`.

    Answered with its :class:`ChildInfo`; terminating a child that is not running is not an error.
    """

    child_id: str


@dataclass(frozen=True)
class RestartChild:
    """Start again a child that is not running (terminated, or ended and not restarted).

    Answered with its :class:`ChildInfo`; :class:`ChildRunningError` if it runs, :class:`StartFailedError`
    if it does not come up (the spec stays, ``failed``).
    """

    child_id: str


@dataclass(frozen=True)
class DeleteChild:
    """Forget the spec of a child that is not running; :class:`ChildRunningError` if it runs."""

    child_id: str


@dataclass(frozen=True)
class _ChildExited:
    """An :class:`Exited`, tagged with the key of the :class:`_Child` it was started as.

    The key tells the exit of a deleted child from that of a new child under the same id
    and generation number.
    """

    key: int
    exited: Exited


@dataclass(eq=False)
class _Child:
    spec: ChildSpec
    # Unique within the supervisor, for the whole life of this entry (see _ChildExited).
    key: int
    ref: pykka.ActorRef[Any] | None = None
    generation: int = 0
    state: str = "stopped"
    restarts: int = 0
    started_at: str | None = None
    last_error: str | None = None
    # Ended and not to be restarted (a temporary child, or a transient one that stopped normally).
    down: bool = False


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Supervisor(SupervisedActor):
    """Starts, watches and restarts its children; a valid child of another supervisor."""

    def __init__(
        self,
        context: ChildContext,
        children: Sequence[ChildSpec],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: Intensity | None = None,
        directory: Directory | None = None,
        name_prefix: str = "",
        events: EventHub | None = None,
    ) -> None:
        super().__init__(context)
        self.events = events
        # Children are registered in the directory as name_prefix + id.
        self.name_prefix = name_prefix
        ids = [spec.id for spec in children]
        if len(set(ids)) != len(ids):
            msg = f"child ids must be unique, got {ids}"
            raise ValueError(msg)
        self._keys = itertools.count(1)
        self._children = [_Child(spec, next(self._keys)) for spec in children]
        self._by_id = {child.spec.id: child for child in self._children}
        self.strategy = strategy
        self.intensity = intensity or Intensity()
        self.directory = directory or Directory()
        self._restart_times: deque[float] = deque()
        # Written by children's threads, read by ours after their ActorDeadError.
        self._exit_errors: dict[tuple[int, int], str | None] = {}

    # -- lifecycle --------------------------------------------------------------

    def setup(self) -> None:
        self.log.info("supervisor_starting", children=[c.spec.id for c in self._children], strategy=self.strategy)
        self._start_in_order(self._children)

    def cleanup(self, error: BaseException | None) -> None:
        self._stop_in_reverse(self._children)
        if error is None:
            self.log.info("supervisor_stopped")

    def on_receive(self, message: Any) -> Any:
        match message:
            case _ChildExited(key, exited):
                self._child_exited(key, exited)
                return None
            case WhichChildren():
                return self.which_children()
            case StartChild() | TerminateChild() | RestartChild() | DeleteChild():
                return self._dynamic(message)
            case _:
                return super().on_receive(message)

    # -- introspection ------------------------------------------------------------

    def which_children(self) -> tuple[ChildInfo, ...]:
        """Each child's id, state, restart count, start time and last error, nested supervisors included."""
        return tuple(self._info(child) for child in self._children)

    def _info(self, child: _Child) -> ChildInfo:
        grandchildren: tuple[ChildInfo, ...] = ()
        if child.ref is not None and issubclass(child.ref.actor_class, Supervisor):
            with contextlib.suppress(pykka.Timeout, pykka.ActorDeadError):  # shown without its children
                grandchildren = child.ref.ask(WhichChildren(), block=True, timeout=child.spec.start_timeout_s)
        return ChildInfo(
            id=child.spec.id,
            state=child.state,
            restarts=child.restarts,
            started_at=child.started_at,
            last_error=child.last_error,
            children=grandchildren,
            detail=self.child_detail(child.ref, child.spec) if child.ref is not None else None,
        )

    def child_detail(self, ref: pykka.ActorRef[Any], spec: ChildSpec) -> Mapping[str, Any] | None:  # noqa: ARG002
        """What the tree shows of a running child beyond its state; none here, subclasses may say more."""
        return None

    # -- dynamic children ------------------------------------------------------------------

    def arrange(self, order: Sequence[str]) -> None:
        """Put the children in ``order`` (ids; others keep their place after them): the start and stop order."""
        rank = {child_id: index for index, child_id in enumerate(order)}
        self._children.sort(key=lambda child: rank.get(child.spec.id, len(rank)))

    def _dynamic(self, request: StartChild | TerminateChild | RestartChild | DeleteChild) -> ChildInfo | None:
        match request:
            case StartChild(spec):
                return self._start_dynamic(spec)
            case TerminateChild(child_id):
                return self._terminate(self._child(child_id))
            case RestartChild(child_id):
                return self._restart_terminated(self._child(child_id))
            case DeleteChild(child_id):
                self._delete(self._child(child_id))
                return None

    def _child(self, child_id: str) -> _Child:
        child = self._by_id.get(child_id)
        if child is None:
            raise UnknownChildError(child_id)
        return child

    def _start_dynamic(self, spec: object) -> ChildInfo:
        if not isinstance(spec, ChildSpec):
            msg = f"StartChild needs a ChildSpec, got {type(spec).__name__}"
            raise TypeError(msg)
        existing = self._by_id.get(spec.id)
        if existing is not None:
            raise DuplicateChildError(spec.id, existing.state)
        child = _Child(spec, next(self._keys))
        self._children.append(child)
        self._by_id[spec.id] = child
        try:
            self._start_child(child)
        except StartFailedError:
            self._forget(child)
            raise
        return self._info(child)

    def _terminate(self, child: _Child) -> ChildInfo:
        child.down = True  # whatever happens next, the strategies leave it alone
        self._stop_child(child)
        self.log.info("child_terminated", child=child.spec.id)
        self._publish("actor.stopped", child)
        return self._info(child)

    def _restart_terminated(self, child: _Child) -> ChildInfo:
        if child.ref is not None:
            raise ChildRunningError(child.spec.id)
        try:
            self._start_child(child)
        except StartFailedError:
            child.down = True  # still not running: not one for the strategies to restart
            raise
        return self._info(child)

    def _delete(self, child: _Child) -> None:
        if child.ref is not None:
            raise ChildRunningError(child.spec.id)
        self._forget(child)
        self.log.info("child_deleted", child=child.spec.id)

    def _forget(self, child: _Child) -> None:
        self._children.remove(child)
        del self._by_id[child.spec.id]

    # -- starting and stopping ----------------------------------------------------------

    def _listener(self, key: int, exited: Exited) -> None:
        # Runs in the child's thread.
        self._exit_errors[(key, exited.generation)] = exited.error
        with contextlib.suppress(pykka.ActorDeadError):  # we are stopping and stopped it ourselves
            self.actor_ref.tell(_ChildExited(key, exited))

    def _publish(self, kind: str, child: _Child, **facts: Any) -> None:
        """Publish ``kind`` about ``child`` on the event stream, if there is one."""
        if self.events is not None:
            self.events.publish(
                kind,
                actor=self.name_prefix + child.spec.id,
                supervisor=self.context.child_id,
                generation=child.generation,
                **facts,
            )

    def _start_in_order(self, children: Sequence[_Child], *, restarting: bool = False) -> None:
        """Start ``children`` in order; on a failure stop those this call started and raise.

        ``restarting``: a restart, whose event :meth:`_restart` publishes once it succeeded.
        """
        started: list[_Child] = []
        for child in children:
            try:
                self._start_child(child, announce=not restarting)
            except StartFailedError:
                self._stop_in_reverse(started)
                raise
            started.append(child)

    def _start_child(self, child: _Child, *, announce: bool = True) -> None:
        spec = child.spec
        child.generation += 1
        child.state = "starting"
        context = ChildContext(spec.id, child.generation, functools.partial(self._listener, child.key))
        try:
            ref = spec.start(context)
        except Exception as exc:  # noqa: BLE001 - whatever the start function raised is the reason
            self._start_failed(child, describe(exc) or "start function failed")
        try:
            ref.ask(Ping(), timeout=spec.start_timeout_s)
        except pykka.ActorDeadError:
            reason = self._exit_errors.pop((child.key, child.generation), None) or "stopped while starting"
            self._start_failed(child, reason)
        except pykka.Timeout:
            ref.stop(block=False)
            self._start_failed(child, f"not running within {spec.start_timeout_s} s")
        child.down = False
        child.ref = ref
        child.state = "running"
        child.started_at = _now_iso()
        self.directory.register(self.name_prefix + spec.id, ref)
        self.log.info("child_started", child=spec.id, generation=child.generation)
        if announce:
            self._publish("actor.started", child)

    def _start_failed(self, child: _Child, reason: str) -> NoReturn:
        child.state = "failed"
        child.last_error = reason
        self.log.error("child_start_failed", child=child.spec.id, reason=reason)
        raise StartFailedError(child.spec.id, reason)

    def stop_waves(self, ids: Sequence[str]) -> list[list[str]]:
        """The children ``ids`` (in start order) in the waves they stop in: each wave after the one before.

        The children of one wave are told to stop together and awaited together.
        Here one child a wave, in reverse start order, as OTP stops them: a later
        child may depend on any earlier one. A subclass that knows the real
        dependencies may stop the independent ones together.
        """
        return [[child_id] for child_id in reversed(ids)]

    def _stop_in_reverse(self, children: Sequence[_Child]) -> None:
        by_id = {child.spec.id: child for child in children}
        for wave in self.stop_waves([child.spec.id for child in children]):
            stopping = [(by_id[child_id], self._begin_stop(by_id[child_id])) for child_id in wave]
            for child, stopped in stopping:
                self._await_stop(child, stopped)

    def _stop_child(self, child: _Child) -> None:
        self._await_stop(child, self._begin_stop(child))

    def _begin_stop(self, child: _Child) -> tuple[pykka.Future[Any], float] | None:
        """Tell ``child`` to stop; what :meth:`_await_stop` waits on (its stop and its deadline)."""
        ref, child.ref = child.ref, None
        if ref is None:
            return None
        child.state = "stopping"
        self.directory.unregister(self.name_prefix + child.spec.id, ref)
        return ref.stop(block=False), time.monotonic() + child.spec.shutdown_s

    def _await_stop(self, child: _Child, stopping: tuple[pykka.Future[Any], float] | None) -> None:
        if stopping is None:
            return
        stopped, deadline = stopping
        try:
            stopped.get(timeout=max(deadline - time.monotonic(), 0.0))
        except pykka.Timeout:
            # Threads cannot be killed: log it, forget it, let the process exit anyway.
            self.log.error("child_abandoned", child=child.spec.id, timeout_s=child.spec.shutdown_s)
        child.state = "stopped"
        self._exit_errors.pop((child.key, child.generation), None)

    # -- exits and restarts -------------------------------------------------------------

    def _child_exited(self, key: int, exited: Exited) -> None:
        child = self._by_id.get(exited.child_id)
        self._exit_errors.pop((key, exited.generation), None)
        if child is None or child.key != key or exited.generation != child.generation or child.state != "running":
            return  # an incarnation we replaced, stopped or deleted ourselves
        if child.ref is not None:
            self.directory.unregister(self.name_prefix + child.spec.id, child.ref)
        child.ref = None
        child.state = "failed" if exited.error else "stopped"
        if exited.error:
            child.last_error = exited.error
        self.log.warning("child_exited", child=child.spec.id, error=exited.error)
        self._publish("actor.exited", child, error=exited.error)
        restart = child.spec.restart
        if restart is Restart.TEMPORARY or (restart is Restart.TRANSIENT and exited.error is None):
            child.down = True
            return
        self._restart(child, exited.error or "stopped")

    def _restart(self, child: _Child, reason: str) -> None:
        while True:
            self._count_restart(child, reason)
            group = self._restart_group(child)
            for other in reversed(group):
                if other is not child:
                    self._stop_child(other)
            try:
                self._start_in_order(group, restarting=True)
            except StartFailedError as exc:
                child, reason = self._by_id[exc.child_id], exc.reason
                continue
            for member in group:
                member.restarts += 1
                why = reason if member is child else f"restarted with {child.spec.id} ({self.strategy})"
                self._publish("actor.restarted", member, reason=why, restarts=member.restarts)
            return

    def _restart_group(self, child: _Child) -> list[_Child]:
        """The crashed child plus those the strategy restarts with it, in start order."""
        if self.strategy is Strategy.ONE_FOR_ONE:
            return [child]
        index = self._children.index(child) if self.strategy is Strategy.REST_FOR_ONE else 0
        return [c for c in self._children[index:] if not c.down]

    def _count_restart(self, child: _Child, reason: str) -> None:
        now = time.monotonic()
        self._restart_times.append(now)
        while self._restart_times and now - self._restart_times[0] > self.intensity.max_seconds:
            self._restart_times.popleft()
        if len(self._restart_times) <= self.intensity.max_restarts:
            return
        self.log.error(
            "restart_intensity_reached",
            child=child.spec.id,
            reason=reason,
            max_restarts=self.intensity.max_restarts,
            max_seconds=self.intensity.max_seconds,
        )
        self._stop_in_reverse(self._children)
        msg = (
            f"more than {self.intensity.max_restarts} restarts in {self.intensity.max_seconds} s;"
            f" last: {child.spec.id}: {reason}"
        )
        raise EscalationError(msg)


# -- for callers in other threads ---------------------------------------------------------------

# How long the functions below wait for the supervisor's answer unless told otherwise:
# it answers after it has handled what was queued before (a restart, another start).
ASK_TIMEOUT_S = 30.0


def start_child(supervisor: pykka.ActorRef[Any], spec: ChildSpec, *, timeout: float = ASK_TIMEOUT_S) -> ChildInfo:
    """Ask ``supervisor`` to add and start ``spec`` (see :class:`StartChild`)."""
    return cast("ChildInfo", supervisor.ask(StartChild(spec), timeout=timeout))


def terminate_child(supervisor: pykka.ActorRef[Any], child_id: str, *, timeout: float = ASK_TIMEOUT_S) -> ChildInfo:
    """Ask ``supervisor`` to stop ``child_id`` and keep its spec (see :class:`TerminateChild`)."""
    return cast("ChildInfo", supervisor.ask(TerminateChild(child_id), timeout=timeout))


def restart_child(supervisor: pykka.ActorRef[Any], child_id: str, *, timeout: float = ASK_TIMEOUT_S) -> ChildInfo:
    """Ask ``supervisor`` to start ``child_id`` again (see :class:`RestartChild`)."""
    return cast("ChildInfo", supervisor.ask(RestartChild(child_id), timeout=timeout))


def delete_child(supervisor: pykka.ActorRef[Any], child_id: str, *, timeout: float = ASK_TIMEOUT_S) -> None:
    """Ask ``supervisor`` to forget the spec of ``child_id``, which must not be running (see :class:`DeleteChild`)."""
    supervisor.ask(DeleteChild(child_id), timeout=timeout)


def which_children(supervisor: pykka.ActorRef[Any], *, timeout: float = ASK_TIMEOUT_S) -> tuple[ChildInfo, ...]:
    """Ask ``supervisor`` for its children, nested supervisors' children included."""
    return cast("tuple[ChildInfo, ...]", supervisor.ask(WhichChildren(), timeout=timeout))

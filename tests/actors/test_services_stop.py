"""The services supervisor's stop: dependants before what they depend on, independent services together."""

from __future__ import annotations

import time

from servicekit import WAIT_S, Harness, config

from nua.actors.directory import Directory
from nua.actors.messages import Exited
from nua.actors.services import ServicesSupervisor
from nua.actors.supervised import ChildContext
from nua.actors.supervisor import Intensity

# Ignores SIGTERM (kept across exec), says so, then sleeps: each stop waits its stop_timeout_s, then SIGKILLs.
STUBBORN = "trap '' TERM; echo ready; exec sleep 300"


def test_independent_services_stop_together_and_a_dependant_before_its_dependency(services: Harness) -> None:
    declared = [
        config(name, STUBBORN, shell=True, start_s=0, stop_timeout_s=0.5, depends_on=needs)  # noqa: S604
        for name, needs in (("a", []), ("b", []), ("c", []), ("web", ["a"]))
    ]
    exits: list[Exited] = []
    ref = ServicesSupervisor.start(
        ChildContext("services", 1, exits.append),
        declared,
        services.host,
        directory=Directory(),
        intensity=Intensity(),
        load_stored=False,
    )
    for name in ("a", "b", "c", "web"):
        services.journal.wait_for("RUNNING", service=name)
        log = services.log_path(name)
        deadline = time.monotonic() + WAIT_S
        while not (log.exists() and "ready" in log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.01)  # the shell says when it ignores SIGTERM; its output has no event for a test
    ref.stop(timeout=WAIT_S * 2)
    order = [(name, state) for name, state in services.journal.changes if state in {"STOPPING", "STOPPED"}]
    first_stopped = order.index(next(change for change in order if change[1] == "STOPPED"))
    # web, c and b are told together: each is stopping before the first of them has stopped.
    assert {name for name, state in order[:first_stopped]} == {"web", "b", "c"}
    # a, which web depends on, only once web has stopped.
    assert order.index(("web", "STOPPED")) < order.index(("a", "STOPPING"))
    assert order[-2:] == [("a", "STOPPING"), ("a", "STOPPED")]
    assert [exited.error for exited in exits] == [None]  # a clean stop

"""``GET /events`` (issue 14 point 3): Server-Sent Events fed by the event hub, resumed with Last-Event-ID."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from http_helpers import EventReader, HttpTree

from nua.http.event_stream import resume_point


def test_events_arrive_as_they_are_published(tree: HttpTree) -> None:
    reader = EventReader(tree, {"Authorization": f"Bearer {tree.token('rita', role='reader')}"})
    try:
        assert reader.status == 200
        assert reader.headers["content-type"].startswith("text/event-stream")
        tree.events.publish("service.state", name="web", state="RUNNING")
        message = reader.message()
        event = json.loads(message["data"])
        assert message["id"] == f"{tree.events.boot}:{event['seq']}"
        assert event["kind"] == "service.state"
        assert event["facts"] == {"name": "web", "state": "RUNNING"}
    finally:
        reader.close()


def test_last_event_id_resumes_after_the_last_event_seen(tree: HttpTree) -> None:
    token = tree.token("rita", role="reader")
    first = tree.events.publish("actor.restarted", child="gateway")
    tree.events.publish("actor.restarted", child="db_writer")
    reader = EventReader(tree, {"Authorization": f"Bearer {token}", "Last-Event-ID": f"{tree.events.boot}:{first.seq}"})
    try:
        assert json.loads(reader.message()["data"])["facts"] == {"child": "db_writer"}
    finally:
        reader.close()


def test_an_id_of_another_daemon_life_starts_from_the_first_event_held(tree: HttpTree) -> None:
    token = tree.token("rita", role="reader")
    tree.events.publish("actor.restarted", child="gateway")
    reader = EventReader(tree, {"Authorization": f"Bearer {token}", "Last-Event-ID": "some-other-boot:5"})
    try:
        assert json.loads(reader.message()["data"])["seq"] == 1
    finally:
        reader.close()


def test_the_stream_needs_a_token_or_a_session(tree: HttpTree) -> None:
    reader = EventReader(tree, {})
    try:
        assert reader.status == 401
    finally:
        reader.close()


def test_a_stream_ends_when_its_token_expires(tree_factory: Callable[..., HttpTree]) -> None:
    now = [time.time()]  # the token's expiry is set by the daemon's own clock
    tree = tree_factory(clock=lambda: now[0])
    token = tree.token("rita", ttl_s=30)
    reader = EventReader(tree, {"Authorization": f"Bearer {token}"})
    try:
        assert reader.status == 200
        now[0] = tree.shared.tokens.check(token, 0).expires_at  # type: ignore[union-attr]
        tree.events.publish("daemon.degraded", component="db_writer")  # wakes the server, which sees the time
        try:
            while True:
                reader.message()
        except EOFError:
            pass
    finally:
        reader.close()


def test_resume_point_reads_only_its_own_boot() -> None:
    assert resume_point("b1:7", "b1") == 7
    assert resume_point("b0:7", "b1") == 0
    assert resume_point(None, "b1") == 0
    assert resume_point("b1:x", "b1") == 0
    assert resume_point("b1:" + "9" * 40, "b1") == 0

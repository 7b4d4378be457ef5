"""``GET /events`` (issue 14 point 3): Server-Sent Events fed by the event hub, resumed with Last-Event-ID."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from http_helpers import RPC_HEADERS, EventReader, HttpTree

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


def _events_until_the_end(reader: EventReader) -> list[str]:
    """The kinds of the events the stream still sends, until it ends (EOFError; a socket timeout fails)."""
    kinds = []
    try:
        while True:
            kinds.append(json.loads(reader.message()["data"])["kind"])
    except EOFError:
        return kinds


def _login(tree: HttpTree, token: str) -> str:
    """The session cookie of a console login with ``token``."""
    reply = tree.request("POST", "/login", {"token": token}, RPC_HEADERS)
    assert reply.status == 200, reply.body
    return reply.headers["set-cookie"].split(";", 1)[0]


def test_a_stream_ends_when_its_key_is_removed(tree: HttpTree) -> None:
    reader = EventReader(tree, {"Authorization": f"Bearer {tree.token('rita', role='reader')}"})
    try:
        assert reader.status == 200
        with tree.zmq() as client:
            client.call("key_remove", "rita")
        # Nothing else is published: the token cache's change alone wakes the server, which ends the stream.
        assert set(_events_until_the_end(reader)) <= {"key.changed"}
    finally:
        reader.close()


def test_a_stream_ends_when_its_token_is_replaced(tree: HttpTree) -> None:
    old = tree.token("rita", role="reader")
    reader = EventReader(tree, {"Authorization": f"Bearer {old}"})
    try:
        assert reader.status == 200
        new = tree.token("rita", role="reader")
        assert set(_events_until_the_end(reader)) <= {"key.changed"}
        again = EventReader(tree, {"Authorization": f"Bearer {new}"})
        again.close()
        assert again.status == 200
    finally:
        reader.close()


def test_a_console_stream_ends_when_its_key_is_removed(tree: HttpTree) -> None:
    cookie = _login(tree, tree.token("olga", role="reader"))
    reader = EventReader(tree, {"Cookie": cookie})
    try:
        assert reader.status == 200
        with tree.zmq() as client:
            client.call("key_remove", "olga")
        assert set(_events_until_the_end(reader)) <= {"key.changed"}
    finally:
        reader.close()


def test_a_console_stream_ends_at_logout(tree: HttpTree) -> None:
    token = tree.token("olga", role="reader")
    cookie = _login(tree, token)
    csrf = tree.request("GET", "/session", headers={"Cookie": cookie}).json()["csrf"]
    reader = EventReader(tree, {"Cookie": cookie})
    try:
        assert reader.status == 200
        headers = {**RPC_HEADERS, "Cookie": cookie, "X-CSRF-Token": csrf}
        assert tree.request("POST", "/logout", {}, headers).status == 204
        assert _events_until_the_end(reader) == []
    finally:
        reader.close()

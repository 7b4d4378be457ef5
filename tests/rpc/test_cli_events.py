"""``nua events``' lines: facts that come from outside the daemon never reach the terminal raw."""

from __future__ import annotations

import json

import pytest

from nua.rpc.cli_events import line, safe_json


def _event(**facts: object) -> dict[str, object]:
    return {"seq": 7, "time": "2026-11-28T12:00:00.000Z", "kind": "job.run", "facts": facts}


@pytest.mark.parametrize(
    "hostile",
    [
        "\x1b[2J\x1b[31mred",  # clears the screen, colours what follows
        "first\nforged line",
        "tab\there",
        "\x9b31m",  # a C1 control sequence introducer, one character
        "\u202eevil",  # a right-to-left override
        "bell\x07",
    ],
)
def test_a_string_fact_that_is_not_plain_printable_is_shown_as_escaped_json(hostile: str) -> None:
    shown = line(_event(output=hostile))
    assert shown.isprintable()
    assert shown.isascii()
    value = shown.split("output=", 1)[1]
    assert json.loads(value) == hostile


def test_plain_facts_are_shown_bare_and_others_as_json() -> None:
    shown = line(_event(name="backup", state="RUNNING", count=3, note="two words", empty=""))
    assert shown.endswith('name=backup state=RUNNING count=3 note="two words" empty=""')


def test_non_ascii_printable_text_is_kept_and_a_hostile_key_is_escaped() -> None:
    assert line(_event(name="café")).endswith("name=café")
    shown = line(_event(**{"k\x1b[0m": "v"}))
    assert "\x1b" not in shown
    assert '"k\\u001b[0m"=v' in shown


def test_json_lines_escape_what_is_not_printable() -> None:
    assert safe_json({"name": "café"}) == '{"name": "café"}'
    assert safe_json({"out": "\x9b2J"}) == '{"out": "\\u009b2J"}'

"""Fire times: UTC instants of an expression read in a zone, across DST changes, never drifting."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nua.schedule import ScheduleError, parse

PARIS = ZoneInfo("Europe/Paris")
# 2026: clocks go forward on 29 March (02:00 CET -> 03:00 CEST), back on 25 October (03:00 CEST -> 02:00 CET).
SPRING = datetime(2026, 3, 29, tzinfo=PARIS)
AUTUMN = datetime(2026, 10, 25, tzinfo=PARIS)


def local(fires: list[datetime]) -> list[str]:
    return [fire.astimezone(PARIS).isoformat() for fire in fires]


def test_daily_0230_paris_runs_once_on_each_change_day() -> None:
    daily = parse("30 2 * * *", "Europe/Paris")
    spring = list(daily.fires(SPRING - timedelta(days=1), 3))
    assert local(spring) == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:30 does not exist: the first valid instant after the gap
        "2026-03-30T02:30:00+02:00",
    ]
    autumn = list(daily.fires(AUTUMN - timedelta(days=1), 3))
    assert local(autumn) == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",  # 02:30 happens twice: the first occurrence only
        "2026-10-26T02:30:00+01:00",
    ]
    assert all(fire.tzinfo is UTC for fire in spring + autumn)


def test_an_every_30_minutes_expression_does_not_repeat_the_wall_times_of_an_overlap() -> None:
    half_hourly = parse("*/30 * * * *", "Europe/Paris")
    fires = list(half_hourly.fires(datetime(2026, 10, 25, 1, 0, tzinfo=PARIS), 4))
    assert local(fires) == [
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T03:00:00+01:00",
    ]


def test_a_fire_asked_from_the_second_occurrence_of_an_overlap_is_later_than_it() -> None:
    at_0245 = parse("45 2 * * *", "Europe/Paris")
    second_0230 = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=PARIS)
    fire = at_0245.next_after(second_0230)
    assert fire > second_0230
    assert local([fire]) == ["2026-10-26T02:45:00+01:00"]


def test_intervals_are_elapsed_time_at_multiples_since_the_epoch() -> None:
    every = parse("every 5m", "Europe/Paris")
    start = datetime(2026, 10, 25, 0, 58, 12, tzinfo=UTC)
    assert [f.isoformat() for f in every.fires(start, 3)] == [
        "2026-10-25T01:00:00+00:00",
        "2026-10-25T01:05:00+00:00",
        "2026-10-25T01:10:00+00:00",
    ]


@settings(max_examples=200, deadline=None)
@given(
    expression=st.sampled_from(["30 2 * * *", "*/15 * * * *", "0 * * * *", "@daily", "every 7m", "0 3 * * 0"]),
    zone=st.sampled_from(["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "UTC"]),
    start=st.datetimes(
        min_value=datetime(2025, 1, 1),  # noqa: DTZ001 - hypothesis's bounds are naive; the values get UTC
        max_value=datetime(2028, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
)
def test_the_next_fire_is_strictly_later_and_depends_only_on_the_previous_one(
    expression: str, zone: str, start: datetime
) -> None:
    schedule = parse(expression, zone)
    fires = list(schedule.fires(start, 6))
    assert len(fires) == 6
    assert fires[0] > start
    assert all(a < b for a, b in itertools.pairwise(fires))
    # No drift, and the same after a restart: a fire computed again from the one before is the same.
    assert all(schedule.next_after(a) == b for a, b in itertools.pairwise(fires))
    # Never "now": asking from a fire itself gives the next one.
    assert schedule.next_after(fires[2]) == fires[3]


@pytest.mark.parametrize(
    ("expression", "zone", "says"),
    [
        ("* * *", "UTC", "5 fields"),
        ("61 * * * *", "UTC", "Bad minute"),
        ("@often", "UTC", "unknown alias"),
        ("every 0s", "UTC", "from 1 s"),
        ("every 5 weeks", "UTC", "unit"),
        ("* * * * *", "Mars/Olympus", "IANA"),
        ("* * * * *", "../../etc/passwd", "IANA"),
        ("", "UTC", "cron expression"),
    ],
)
def test_a_bad_expression_or_zone_says_what_is_wrong(expression: str, zone: str, says: str) -> None:
    with pytest.raises(ScheduleError, match=says):
        parse(expression, zone)


def test_an_expression_that_never_matches_is_refused_when_parsed() -> None:
    with pytest.raises(ScheduleError, match="day-of-month"):
        parse("0 0 30 2 *", "UTC")

"""A job's schedule: when it fires, as instants in UTC, computed the one way the actor and ``nua cron next`` share.

Two kinds of expression:

- a cron expression of 5 fields (minute hour day-of-month month day-of-week), or
  one of the aliases ``@hourly``, ``@daily`` (``@midnight``), ``@weekly``,
  ``@monthly``, ``@yearly`` (``@annually``); parsed and evaluated by ``cronsim``
  (Debian cron's rules, day-of-month/day-of-week "or" included) in the job's IANA
  zone (``zoneinfo``);
- an interval, ``every 30s``, ``every 5m``, ``every 2h``, ``every 1d``: elapsed
  time, whatever the zone, fired at the multiples of the interval since the Unix
  epoch (so ``every 5m`` fires at :00, :05 …, and the same instants after a restart).

Daylight saving time, for cron expressions (the rules of Debian cron, which
cronsim follows, plus one):

- a local time in a gap (02:30 on the night the clocks go from 02:00 to 03:00)
  fires once, at the first valid instant after the gap (03:00);
- a local time in an overlap (02:30 on the night 03:00 goes back to 02:00) fires
  once, at its first occurrence: the second occurrence of a wall time that has
  already fired is skipped, for every expression (``*/30 * * * *`` fires at 02:00
  and 02:30 summer time and not again at 02:00 and 02:30 winter time);
- :meth:`Schedule.next_after` is always strictly later than the instant it is
  given, and depends on nothing but that instant: the next fire is computed from
  the previous *scheduled* fire, never from "now", so nothing drifts and a restart
  finds the same next fire.

A leaf: it imports nothing of nua, so that the CLI (``nua cron next``), the settings
checks and the cron actor all use this one computation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

# cronsim and zoneinfo are imported where a schedule is evaluated: the settings of a
# daemon without jobs, and its cron actor, never load them (10 ms of a start, 1 MiB).

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_INTERVAL = re.compile(r"every\s+([0-9]{1,9})\s*(s|m|h|d)", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_INTERVAL_S = 366 * 86400
MAX_EXPRESSION = 200
MAX_ZONE = 64
# Candidates looked at for one next fire: the skipped overlap occurrences and an
# expression that never matches (``0 0 31 2 *``) end the search well before this.
_MAX_CANDIDATES = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ScheduleError(ValueError):
    """An expression or zone that cannot be used; the message says what is wrong and what is expected."""


def system_zone() -> str:
    """The system's IANA zone name (``TZ``-less: /etc/timezone, the /etc/localtime link), else ``UTC``."""
    try:
        name = Path("/etc/timezone").read_text(encoding="utf-8").strip()
    except OSError:
        name = ""
    if not name:
        try:
            target = str(Path("/etc/localtime").resolve())
        except OSError:
            target = ""
        _, found, rest = target.partition("/zoneinfo/")
        name = rest if found else ""
    try:
        zone(name)
    except ScheduleError:
        return "UTC"
    return name


def zone(name: str) -> ZoneInfo:
    """The zone ``name`` names; :class:`ScheduleError` when it is no IANA zone of this system."""
    if not isinstance(name, str) or not name or len(name) > MAX_ZONE or name.startswith(("/", ".")) or ".." in name:
        raise ScheduleError(f"zone {name!r} is not an IANA time zone name (such as Europe/Paris or UTC)")
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415 - see the module's imports

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"zone {name!r} is not an IANA time zone known to this system") from None


@dataclass(frozen=True)
class Schedule:
    """A checked expression in a zone; :func:`parse` is the way to make one."""

    expression: str
    zone_name: str
    # The 5-field cron expression (aliases expanded); None for an interval.
    cron: str | None
    interval_s: int | None

    def next_after(self, after: datetime) -> datetime:
        """The first fire strictly later than ``after`` (an aware datetime), in UTC.

        :class:`ScheduleError` when the expression never fires again (it matches no date).
        """
        if after.tzinfo is None:
            msg = "next_after needs an aware datetime"
            raise ValueError(msg)
        after_utc = after.astimezone(UTC)
        if self.interval_s is not None:
            elapsed = (after_utc - _EPOCH) // timedelta(seconds=self.interval_s)
            return _EPOCH + timedelta(seconds=(elapsed + 1) * self.interval_s)
        assert self.cron is not None  # noqa: S101 - one of the two is set by parse()
        from cronsim import CronSim  # noqa: PLC0415 - see the module's imports

        local_zone = zone(self.zone_name)
        candidates = CronSim(self.cron, after_utc.astimezone(local_zone))
        for _ in range(_MAX_CANDIDATES):
            try:
                candidate = next(candidates)
            except StopIteration:
                break
            fire = candidate.astimezone(UTC)
            if fire <= after_utc or _repeated_wall_time(candidate):
                continue
            return fire
        raise ScheduleError(f"{self.expression!r} has no fire time after {after_utc.isoformat()}")

    def fires(self, after: datetime, count: int) -> Iterator[datetime]:
        """The next ``count`` fires after ``after``, each computed from the one before (as the actor does)."""
        fire = after
        for _ in range(count):
            try:
                fire = self.next_after(fire)
            except ScheduleError:
                return
            yield fire


def _repeated_wall_time(local: datetime) -> bool:
    """Whether ``local`` is the second occurrence of its wall time (an overlap, after the clocks went back)."""
    if local.fold == 0:
        return False
    first = local.replace(fold=0)
    return first.utcoffset() != local.utcoffset()


def parse(expression: str, zone_name: str = "UTC") -> Schedule:
    """``expression`` checked (and evaluated in ``zone_name``); :class:`ScheduleError` saying what is wrong."""
    if not isinstance(expression, str) or not expression.strip() or len(expression) > MAX_EXPRESSION:
        raise ScheduleError(
            f"schedule must be a cron expression or 'every N(s|m|h|d)' of at most {MAX_EXPRESSION} characters"
        )
    zone(zone_name)
    text = " ".join(expression.split())
    interval = _INTERVAL.fullmatch(text)
    if interval is not None:
        seconds = int(interval.group(1)) * _UNIT_S[interval.group(2).lower()]
        if not 1 <= seconds <= MAX_INTERVAL_S:
            raise ScheduleError(f"schedule {expression!r}: an interval is from 1 s to {MAX_INTERVAL_S // 86400} days")
        return Schedule(text, zone_name, None, seconds)
    if text.lower().startswith("every"):
        raise ScheduleError(f"schedule {expression!r}: an interval is written 'every N' and a unit s, m, h or d")
    cron = ALIASES.get(text.lower(), text)
    if cron.startswith("@"):
        raise ScheduleError(f"schedule {expression!r}: unknown alias (known: {', '.join(ALIASES)})")
    if len(cron.split()) != 5:
        raise ScheduleError(
            f"schedule {expression!r}: a cron expression has 5 fields (minute hour day-of-month month day-of-week)"
        )
    from cronsim import CronSim, CronSimError  # noqa: PLC0415 - see the module's imports

    try:
        CronSim(cron, datetime.now(UTC))
    except CronSimError as exc:
        raise ScheduleError(f"schedule {expression!r}: {exc}") from None
    return Schedule(text, zone_name, cron, None)


__all__ = ["ALIASES", "Schedule", "ScheduleError", "parse", "system_zone", "zone"]

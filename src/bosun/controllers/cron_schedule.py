"""CronJob schedule arithmetic, kept free of I/O so it can be tested on its own.

Kubernetes' rules, not cron's: the next run is looked for after the last one that was
scheduled (or the CronJob's creation), a deadline moves that starting point forward, and
however many runs were missed only the most recent one is started.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import croniter

# Beyond this many missed runs Kubernetes warns (TooManyMissedTimes) instead of counting on.
MAX_MISSED = 100
_EVERY = re.compile(r"^@every\s+(.+)$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ScheduleError(ValueError):
    """The schedule or time zone cannot be understood."""


@dataclass(frozen=True)
class Missed:
    """The outcome of looking for runs due between ``earliest`` and ``now``."""

    most_recent: datetime | None  # the run to start now, if any
    count: int                    # how many runs were due (MAX_MISSED + 1 means "more than MAX_MISSED")


def _duration(text: str) -> float:
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            raise ScheduleError(f"bad duration {text!r}")
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text) or total <= 0:
        raise ScheduleError(f"bad duration {text!r}")
    return total


class Schedule:
    """A parsed ``spec.schedule`` in its time zone (UTC when none is given)."""

    def __init__(self, expr: str, time_zone: str | None = None) -> None:
        self.expr = expr.strip()
        try:
            self.tz: tzinfo = zoneinfo.ZoneInfo(time_zone) if time_zone else UTC
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ScheduleError(f"unknown time zone {time_zone}") from exc
        every = _EVERY.match(self.expr)
        self.every: float | None = _duration(every.group(1).strip()) if every else None
        if self.every is None:
            try:
                if not croniter.is_valid(self.expr):
                    raise ScheduleError(f"unparseable schedule: {expr}")
            except ScheduleError:
                raise
            except Exception as exc:  # croniter raises assorted types on odd input
                raise ScheduleError(f"unparseable schedule: {expr}") from exc

    def next_after(self, when: datetime) -> datetime:
        """The first run strictly after ``when`` (an aware datetime), in UTC."""
        if self.every is not None:
            # robfig/cron's ConstantDelaySchedule: whole seconds after the reference.
            nxt = when + timedelta(seconds=self.every)
            return nxt.replace(microsecond=0).astimezone(UTC)
        local = when.astimezone(self.tz)
        result = croniter(self.expr, local).get_next(datetime)
        assert isinstance(result, datetime)
        return result.astimezone(UTC)

    def missed(self, earliest: datetime, now: datetime) -> Missed:
        """Runs due in (earliest, now]: the most recent one and how many there were."""
        t = self.next_after(earliest)
        if t > now:
            return Missed(None, 0)
        count, last = 0, t
        while t <= now:
            count, last = count + 1, t
            if count > MAX_MISSED:
                break
            t = self.next_after(t)
        if count > MAX_MISSED:
            # Too many to walk: find the latest due run directly, stepping back from now.
            last = self.previous_at_or_before(now, after=last)
        return Missed(last, count)

    def previous_at_or_before(self, now: datetime, *, after: datetime) -> datetime:
        """The latest run at or before ``now`` (never earlier than ``after``)."""
        if self.every is not None:
            steps = int((now - after).total_seconds() // self.every)
            return (after + timedelta(seconds=steps * self.every)).astimezone(UTC)
        local = now.astimezone(self.tz)
        it = croniter(self.expr, local + timedelta(seconds=1))
        prev = it.get_prev(datetime)
        assert isinstance(prev, datetime)
        prev = prev.astimezone(UTC)
        return max(prev, after)


def earliest_time(created: datetime, last_scheduled: datetime | None, now: datetime,
                  starting_deadline: int | None) -> datetime:
    """Where to start looking for due runs: the last run (or creation), moved forward to
    ``now - startingDeadlineSeconds`` when that is later, as Kubernetes does."""
    earliest = last_scheduled or created
    if starting_deadline is not None:
        limit = now - timedelta(seconds=starting_deadline)
        if limit > earliest:
            earliest = limit
    return earliest


def job_name(cronjob_name: str, scheduled: datetime) -> str:
    """``<cronjob>-<minutes since the epoch>``: Kubernetes' name, which makes creating the
    same run twice impossible (the second create answers AlreadyExists)."""
    return f"{cronjob_name}-{int(scheduled.timestamp()) // 60}"


def scheduled_timestamp(scheduled: datetime, tz: tzinfo) -> str:
    """RFC 3339 in the CronJob's time zone, the value of
    ``batch.kubernetes.io/cronjob-scheduled-timestamp``."""
    local = scheduled.astimezone(tz)
    text = local.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text

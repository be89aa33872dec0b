"""CronJob schedule arithmetic: next runs, missed runs after downtime, deadlines, names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bosun.controllers.cron_schedule import (
    MAX_MISSED,
    Schedule,
    ScheduleError,
    earliest_time,
    job_name,
    scheduled_timestamp,
)


def at(h: int, m: int, s: int = 0, day: int = 1) -> datetime:
    return datetime(2024, 1, day, h, m, s, tzinfo=UTC)


def test_next_run_of_standard_syntax_and_macros() -> None:
    assert Schedule("*/15 * * * *").next_after(at(10, 7)) == at(10, 15)
    assert Schedule("*/15 * * * *").next_after(at(10, 15)) == at(10, 30)
    assert Schedule("@hourly").next_after(at(10, 7)) == at(11, 0)
    assert Schedule("@daily").next_after(at(10, 7)) == at(0, 0, day=2)
    assert Schedule("@every 90s").next_after(at(10, 0, 0)) == at(10, 1, 30)


def test_time_zone_shifts_the_schedule() -> None:
    # 09:00 in New York is 14:00 UTC in January.
    nxt = Schedule("0 9 * * *", "America/New_York").next_after(at(12, 0))
    assert nxt == at(14, 0) and nxt.tzinfo == UTC


def test_bad_schedules_and_zones_are_refused() -> None:
    for bad in ("61 * * * *", "not a schedule", "@every nope"):
        with pytest.raises(ScheduleError):
            Schedule(bad)
    with pytest.raises(ScheduleError):
        Schedule("* * * * *", "Mars/Olympus")


def test_missed_counts_runs_and_picks_the_most_recent() -> None:
    s = Schedule("* * * * *")
    assert s.missed(at(10, 0), at(10, 0, 30)).most_recent is None
    m = s.missed(at(10, 0), at(10, 5, 30))
    assert m.most_recent == at(10, 5) and m.count == 5


def test_more_than_a_hundred_missed_runs_still_yield_only_the_latest() -> None:
    m = Schedule("* * * * *").missed(at(0, 0), at(5, 0, 10))
    assert m.count > MAX_MISSED and m.most_recent == at(5, 0)
    e = Schedule("@every 1m").missed(at(0, 0), at(5, 0, 10))
    assert e.count > MAX_MISSED and e.most_recent == at(5, 0)


def test_starting_deadline_moves_the_search_forward() -> None:
    created, now = at(0, 0), at(5, 0, 10)
    assert earliest_time(created, None, now, None) == created
    assert earliest_time(created, at(4, 0), now, None) == at(4, 0)
    assert earliest_time(created, at(4, 0), now, 200) == now - timedelta(seconds=200)
    m = Schedule("* * * * *").missed(earliest_time(created, None, now, 200), now)
    assert m.count == 4 and m.most_recent == at(5, 0)


def test_job_names_and_scheduled_timestamps_follow_kubernetes() -> None:
    t = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
    assert job_name("hello", t) == f"hello-{int(t.timestamp()) // 60}" == "hello-28401720"
    assert scheduled_timestamp(t, UTC) == "2024-01-01T10:00:00Z"
    assert scheduled_timestamp(t, ZoneInfo("Europe/Paris")) == "2024-01-01T11:00:00+01:00"

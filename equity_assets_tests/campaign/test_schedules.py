"""Schedules at exact instants: 05:30 PT daily and 06:00 PT Mon–Fri, across both DST changes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

# Dagster has no public "next ticks" API; the daemon uses this iterator to place ticks.
from dagster._utils.schedules import schedule_execution_time_iterator

from equity_assets.campaign.partitions import campaign_days

from .helpers import wired_definitions

PT = ZoneInfo("America/Los_Angeles")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def ticks(schedule: dg.ScheduleDefinition, start: datetime, count: int) -> list[datetime]:
    iterator = schedule_execution_time_iterator(start.timestamp(), schedule.cron_schedule, schedule.execution_timezone)
    return [t.astimezone(UTC) for t in itertools.islice(iterator, count)]


def requests_at(schedule: dg.ScheduleDefinition, when: datetime) -> list[dg.RunRequest]:
    context = dg.build_schedule_context(scheduled_execution_time=when)
    return list(schedule.evaluate_tick(context).run_requests or [])


@pytest.fixture(scope="module")
def contactable_schedule() -> dg.ScheduleDefinition:
    return wired_definitions().resolve_schedule_def("contactable_leads_schedule")


@pytest.fixture(scope="module")
def batch_schedule() -> dg.ScheduleDefinition:
    return wired_definitions().resolve_schedule_def("daily_campaign_schedule")


def test_contactable_refresh_ticks_at_0530_pacific_every_day_across_dst(contactable_schedule):
    assert (contactable_schedule.cron_schedule, contactable_schedule.execution_timezone) == ("30 5 * * *", "America/Los_Angeles")
    # Fall back on Sun 2026-11-01: 05:30 PDT is 12:30 UTC, 05:30 PST is 13:30 UTC.
    assert ticks(contactable_schedule, utc(2026, 10, 31, 0), 3) == [
        utc(2026, 10, 31, 12, 30), utc(2026, 11, 1, 13, 30), utc(2026, 11, 2, 13, 30)]
    # Spring forward on Sun 2026-03-08.
    assert ticks(contactable_schedule, utc(2026, 3, 7, 0), 3) == [
        utc(2026, 3, 7, 13, 30), utc(2026, 3, 8, 12, 30), utc(2026, 3, 9, 12, 30)]
    assert len(requests_at(contactable_schedule, datetime(2026, 11, 2, 5, 30, tzinfo=PT))) == 1
    assert contactable_schedule.job_name == "contactable_leads_job"


@pytest.mark.parametrize(
    ("local", "utc_instant"),
    [
        (datetime(2026, 11, 2, 6, 0, tzinfo=PT), utc(2026, 11, 2, 14, 0)),  # first Monday on PST
        (datetime(2026, 3, 9, 6, 0, tzinfo=PT), utc(2026, 3, 9, 13, 0)),  # first Monday on PDT
    ],
)
def test_monday_0600_tick_requests_mondays_partition_keyed_by_date(batch_schedule, local, utc_instant):
    assert local.astimezone(UTC) == utc_instant
    (request,) = requests_at(batch_schedule, local)
    day = local.date().isoformat()
    assert (request.partition_key, request.run_key) == (day, day)
    assert batch_schedule.job_name == "daily_campaign_job"


def test_batch_ticks_only_on_weekdays_at_0600_pacific(batch_schedule):
    assert (batch_schedule.cron_schedule, batch_schedule.execution_timezone) == ("0 6 * * 1-5", "America/Los_Angeles")
    # Thursday before the fall-back weekend → Friday (PDT) → Monday (PST): nothing on Sat/Sun.
    assert ticks(batch_schedule, utc(2026, 10, 29, 14), 3) == [
        utc(2026, 10, 30, 13, 0), utc(2026, 11, 2, 14, 0), utc(2026, 11, 3, 14, 0)]
    assert ticks(batch_schedule, utc(2026, 3, 5, 15), 3) == [
        utc(2026, 3, 6, 14, 0), utc(2026, 3, 9, 13, 0), utc(2026, 3, 10, 13, 0)]
    weekdays = {t.astimezone(PT).weekday() for t in ticks(batch_schedule, utc(2026, 3, 2), 60)}
    assert weekdays == {0, 1, 2, 3, 4}


def test_weekends_have_no_partition(batch_schedule):
    friday_to_monday = campaign_days.get_partition_keys_in_range(dg.PartitionKeyRange("2026-11-06", "2026-11-09"))
    assert friday_to_monday == ["2026-11-06", "2026-11-09"]
    # Over the weekend and until Monday 06:00 PT the newest partition is still Friday's.
    for now in (datetime(2026, 11, 7, 12, tzinfo=PT), datetime(2026, 11, 8, 23, tzinfo=PT),
                datetime(2026, 11, 9, 5, 59, tzinfo=PT)):
        assert campaign_days.get_partition_keys(current_time=now)[-1] == "2026-11-06"
    assert campaign_days.get_partition_keys(current_time=datetime(2026, 11, 9, 6, 0, tzinfo=PT))[-1] == "2026-11-09"

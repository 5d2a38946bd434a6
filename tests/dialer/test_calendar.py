"""dialer/calendar.py: windows, dates, member zones and DST days, with fixed datetimes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sipdialer.config import CalendarConfig
from sipdialer.dialer.calendar import Calendar, Window, zone_of

KYIV = ZoneInfo("Europe/Kyiv")
NEW_YORK = ZoneInfo("America/New_York")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def hm(text: str) -> Window:
    start, end = text.split("-")
    h1, m1 = start.split(":")
    h2, m2 = end.split(":")
    return (int(h1) * 60 + int(m1), int(h2) * 60 + int(m2))


def week(**days: list[str]) -> tuple[tuple[Window, ...], ...]:
    names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return tuple(tuple(hm(w) for w in days.get(name, [])) for name in names)


OFFICE = Calendar.from_config(
    CalendarConfig.model_validate(
        {
            "name": "office",
            "timezone": "Europe/Kyiv",
            "start": "2026-01-05",
            "end": "2026-12-31",
            "holidays": ["2026-03-09"],
            "week": {"mon": ["09:00-13:00", "14:00-18:00"], "tue": ["09:00-18:00"]},
        }
    )
)
# 2026-03-02 is a Monday; Kyiv is UTC+2 until 2026-03-29, then UTC+3 until 2026-10-25.


def test_from_config() -> None:
    assert OFFICE.zone == KYIV
    assert OFFICE.week == week(mon=["09:00-13:00", "14:00-18:00"], tue=["09:00-18:00"])
    assert (OFFICE.start, OFFICE.end) == (date(2026, 1, 5), date(2026, 12, 31))
    assert OFFICE.holidays == {date(2026, 3, 9)}


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (utc(2026, 3, 2, 6, 59), False),  # Mon 08:59 Kyiv
        (utc(2026, 3, 2, 7, 0), True),  # Mon 09:00
        (utc(2026, 3, 2, 10, 59, 59), True),  # Mon 12:59:59
        (utc(2026, 3, 2, 11, 0), False),  # Mon 13:00: lunch (end is exclusive)
        (utc(2026, 3, 2, 12, 0), True),  # Mon 14:00: second window
        (utc(2026, 3, 2, 16, 0), False),  # Mon 18:00
        (utc(2026, 3, 3, 15, 59), True),  # Tue 17:59
        (utc(2026, 3, 4, 10, 0), False),  # Wed: absent day, closed
        (utc(2026, 3, 8, 10, 0), False),  # Sun
        (utc(2026, 3, 9, 8, 0), False),  # Mon, a holiday
        (utc(2026, 3, 10, 8, 0), True),  # Tue after it
        (utc(2026, 3, 30, 6, 30), True),  # Mon 09:30 EEST (UTC+3)
        (utc(2026, 3, 30, 14, 30), True),  # Mon 17:30 EEST
        (utc(2026, 3, 30, 15, 0), False),  # Mon 18:00 EEST
        (utc(2025, 12, 30, 8, 0), False),  # Tue before start
        (utc(2026, 1, 5, 7, 0), True),  # Mon, the start date
        (utc(2026, 12, 29, 8, 0), True),  # Tue before end
        (utc(2027, 1, 4, 8, 0), False),  # Mon after end
        (datetime(2026, 3, 2, 9, 30, tzinfo=KYIV), True),  # any aware datetime
    ],
)
def test_is_open(moment: datetime, expected: bool) -> None:
    assert OFFICE.is_open(moment) is expected


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        OFFICE.is_open(datetime(2026, 3, 2, 9, 30))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (utc(2026, 12, 31, 21, 59), False),  # Kyiv: Dec 31 23:59, the end date itself
        (utc(2026, 12, 31, 22, 0), True),  # Kyiv: Jan 1 (UTC is still Dec 31)
        (utc(2027, 3, 1), True),
        (utc(2026, 6, 1), False),
    ],
)
def test_ended(moment: datetime, expected: bool) -> None:
    assert OFFICE.ended(moment) is expected


def test_no_end_date_never_ends() -> None:
    assert not Calendar.always_open().ended(utc(2100, 1, 1))


# --- a member with its own zone ------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (utc(2026, 3, 2, 14, 0), True),  # Mon 09:00 New York (EST, UTC-5), 16:00 Kyiv
        (utc(2026, 3, 2, 13, 59), False),  # Mon 08:59 New York, inside the Kyiv window
        (utc(2026, 3, 2, 7, 0), False),  # Mon 09:00 Kyiv = 02:00 New York
        (utc(2026, 3, 2, 16, 30), True),  # Mon 11:30 New York
        (utc(2026, 3, 2, 18, 0), False),  # Mon 13:00 New York: lunch in New York
        (utc(2026, 3, 3, 22, 59), True),  # Tue 17:59 New York (Wed 00:59 in Kyiv)
        (utc(2026, 3, 9, 14, 0), False),  # Mon 10:00 EDT, Mon 16:00 Kyiv: Kyiv holiday
        (utc(2026, 3, 10, 14, 0), True),
        (utc(2026, 1, 4, 23, 0), False),  # Sun 18:00 NY: weekday is New York's
        (utc(2026, 1, 5, 14, 0), True),  # Mon 09:00 NY on the start date
    ],
)
def test_member_zone_sets_the_hours(moment: datetime, expected: bool) -> None:
    assert OFFICE.is_open(moment, NEW_YORK) is expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (utc(2026, 12, 24, 21, 59), True),  # Thu 16:59 NY, Thu 23:59 Kyiv
        (utc(2026, 12, 24, 22, 0), False),  # Thu 17:00 NY, but Fri Dec 25 in Kyiv: holiday
        (utc(2026, 12, 25, 14, 0), False),  # Fri 09:00 NY, still Dec 25 in Kyiv
        (utc(2026, 12, 25, 22, 0), True),  # Fri 17:00 NY, Sat Dec 26 in Kyiv
    ],
)
def test_holidays_are_calendar_zone_dates(moment: datetime, expected: bool) -> None:
    calendar = Calendar(KYIV, (((0, 1080),),) * 7, holidays=frozenset({date(2026, 12, 25)}))
    assert calendar.is_open(moment, NEW_YORK) is expected


def test_zone_of() -> None:
    assert zone_of("America/New_York") == NEW_YORK
    assert zone_of("") is None and zone_of(None) is None


# --- next_open ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        (utc(2026, 3, 2, 8, 0), None, utc(2026, 3, 2, 8, 0)),  # open now: now
        (utc(2026, 3, 2, 8, 0, 0, 5), None, utc(2026, 3, 2, 8, 0, 0, 5)),
        (utc(2026, 3, 2, 5, 0), None, utc(2026, 3, 2, 7, 0)),  # before the first window
        (utc(2026, 3, 2, 11, 30), None, utc(2026, 3, 2, 12, 0)),  # lunch
        (utc(2026, 3, 3, 17, 0), None, utc(2026, 3, 10, 7, 0)),  # Tue eve; next Mon a holiday
        (utc(2026, 3, 27, 12, 0), None, utc(2026, 3, 30, 6, 0)),  # Fri -> Mon 09:00 EEST
        (utc(2025, 6, 1), None, utc(2026, 1, 5, 7, 0)),  # before start: first window
        (utc(2026, 12, 29, 17, 0), None, None),  # last window over: no more before end
        (utc(2027, 2, 1), None, None),  # after end
        (utc(2026, 3, 2, 5, 0), NEW_YORK, utc(2026, 3, 2, 14, 0)),  # Mon 09:00 NY
        # Mon Mar 9 in New York (EDT now) is a Kyiv holiday until 18:00 EDT: Tue 09:00 EDT.
        (utc(2026, 3, 6, 12, 0), NEW_YORK, utc(2026, 3, 10, 13, 0)),
    ],
)
def test_next_open(moment: datetime, zone: ZoneInfo | None, expected: datetime | None) -> None:
    assert OFFICE.next_open(moment, zone) == expected


def test_next_open_result_is_utc() -> None:
    got = OFFICE.next_open(datetime(2026, 3, 2, 7, 0, tzinfo=KYIV))
    assert got == utc(2026, 3, 2, 7, 0) and got.tzinfo is UTC


def test_next_open_never() -> None:
    assert Calendar(UTC).next_open(utc(2026, 1, 1)) is None  # no windows at all
    every_day = Calendar(UTC, (((0, 60),),) * 7, end=date(2026, 1, 1))
    assert every_day.next_open(utc(2026, 1, 1, 0, 30)) == utc(2026, 1, 1, 0, 30)
    assert every_day.next_open(utc(2026, 1, 1, 1, 0)) is None


def test_next_open_skips_a_long_run_of_holidays() -> None:
    holidays = frozenset(date(2026, 1, 1) + timedelta(days=i) for i in range(500))
    calendar = Calendar(UTC, (((600, 660),),) * 7, holidays=holidays)
    assert calendar.next_open(utc(2026, 1, 1)) == utc(2027, 5, 16, 10, 0)


# --- DST days -------------------------------------------------------------------------------
# Kyiv:     2026-03-29 03:00 EET -> 04:00 EEST (01:00 UTC); 2026-10-25 04:00 EEST -> 03:00 EET
# New York: 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC); 2026-11-01 02:00 EDT -> 01:00 EST


def sundays(window: str, zone: ZoneInfo = KYIV) -> Calendar:
    return Calendar(zone, week(sun=[window]))


@pytest.mark.parametrize(
    ("window", "zone", "moment", "expected"),
    [
        # Kyiv spring forward: 03:00-03:59 do not exist.
        ("03:00-05:00", KYIV, utc(2026, 3, 29, 0, 59), False),  # 02:59 EET
        ("03:00-05:00", KYIV, utc(2026, 3, 29, 1, 0), True),  # 04:00 EEST
        ("03:00-05:00", KYIV, utc(2026, 3, 29, 1, 59), True),  # 04:59 EEST
        ("03:00-05:00", KYIV, utc(2026, 3, 29, 2, 0), False),  # 05:00 EEST
        ("03:00-04:00", KYIV, utc(2026, 3, 29, 1, 0), False),  # never that day
        ("02:00-03:00", KYIV, utc(2026, 3, 29, 0, 30), True),  # 02:30 EET
        # Kyiv fall back: 03:00-03:59 happen twice.
        ("03:00-04:00", KYIV, utc(2026, 10, 24, 23, 59), False),  # 02:59 EEST
        ("03:00-04:00", KYIV, utc(2026, 10, 25, 0, 0), True),  # 03:00 EEST
        ("03:00-04:00", KYIV, utc(2026, 10, 25, 1, 30), True),  # 03:30 EET, second time
        ("03:00-04:00", KYIV, utc(2026, 10, 25, 2, 0), False),  # 04:00 EET
        ("04:00-05:00", KYIV, utc(2026, 10, 25, 0, 30), False),  # 03:30 EEST
        ("04:00-05:00", KYIV, utc(2026, 10, 25, 2, 0), True),  # 04:00 EET
        # New York spring forward: 02:00-02:59 do not exist.
        ("02:00-03:00", NEW_YORK, utc(2026, 3, 8, 6, 59), False),  # 01:59 EST
        ("02:00-03:00", NEW_YORK, utc(2026, 3, 8, 7, 0), False),  # 03:00 EDT
        ("01:00-04:00", NEW_YORK, utc(2026, 3, 8, 8, 59), False),  # 04:59 EDT: 2 real hours
        ("01:00-04:00", NEW_YORK, utc(2026, 3, 8, 7, 59), True),  # 03:59 EDT
        # New York fall back: 01:00-01:59 happen twice.
        ("01:00-01:30", NEW_YORK, utc(2026, 11, 1, 5, 15), True),  # 01:15 EDT
        ("01:00-01:30", NEW_YORK, utc(2026, 11, 1, 5, 45), False),  # 01:45 EDT
        ("01:00-01:30", NEW_YORK, utc(2026, 11, 1, 6, 15), True),  # 01:15 EST
        ("01:00-01:30", NEW_YORK, utc(2026, 11, 1, 6, 30), False),  # 01:30 EST
    ],
)
def test_is_open_on_dst_days(window: str, zone: ZoneInfo, moment: datetime, expected: bool) -> None:
    assert sundays(window, zone).is_open(moment) is expected


@pytest.mark.parametrize(
    ("window", "zone", "moment", "expected"),
    [
        ("03:00-05:00", KYIV, utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 1, 0)),  # at the jump
        ("03:30-05:00", KYIV, utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 1, 0)),  # 04:00 EEST
        ("04:30-05:00", KYIV, utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 1, 30)),
        ("03:00-04:00", KYIV, utc(2026, 3, 28, 12, 0), utc(2026, 4, 5, 0, 0)),  # next Sunday
        ("03:00-03:30", KYIV, utc(2026, 10, 25, 0, 40), utc(2026, 10, 25, 1, 0)),  # 2nd 03:00
        ("04:00-05:00", KYIV, utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 2, 0)),
        ("02:00-03:00", NEW_YORK, utc(2026, 3, 7, 12, 0), utc(2026, 3, 15, 6, 0)),
        ("02:30-04:00", NEW_YORK, utc(2026, 3, 7, 12, 0), utc(2026, 3, 8, 7, 0)),  # 03:00 EDT
        ("01:00-01:30", NEW_YORK, utc(2026, 11, 1, 5, 45), utc(2026, 11, 1, 6, 0)),  # 01:00 EST
        ("01:00-01:30", NEW_YORK, utc(2026, 11, 1, 6, 30), utc(2026, 11, 8, 6, 0)),
    ],
)
def test_next_open_on_dst_days(
    window: str, zone: ZoneInfo, moment: datetime, expected: datetime
) -> None:
    assert sundays(window, zone).next_open(moment) == expected


def test_member_zone_on_dst_days() -> None:
    # A UTC calendar, Sundays 02:30-04:00 in the member's New York zone.
    calendar = Calendar(UTC, week(sun=["02:30-04:00"]))
    assert calendar.next_open(utc(2026, 3, 7, 12, 0), NEW_YORK) == utc(2026, 3, 8, 7, 0)
    assert not calendar.is_open(utc(2026, 3, 8, 7, 0))  # 07:00 UTC is outside in UTC


def brute_next_open(calendar: Calendar, moment: datetime, zone: ZoneInfo | None) -> datetime:
    step = moment
    while not calendar.is_open(step, zone):
        step += timedelta(minutes=1)
    return step


@pytest.mark.parametrize(
    ("window_zone", "days"),
    [
        (None, {"sun": ["00:00-01:00", "03:00-04:00"], "sat": ["23:30-24:00"]}),
        (NEW_YORK, {"sun": ["00:30-01:30", "02:30-03:30"], "sat": ["01:00-02:00"]}),
        (KYIV, {"sun": ["03:30-04:30"], "sat": ["03:00-03:10"]}),
    ],
)
@pytest.mark.parametrize(
    "start",
    [utc(2026, 3, 7, 20), utc(2026, 3, 28, 20), utc(2026, 10, 24, 20), utc(2026, 10, 31, 20)],
)
def test_next_open_agrees_with_a_minute_by_minute_search(
    window_zone: ZoneInfo | None, days: dict[str, list[str]], start: datetime
) -> None:
    weekdays = {day: ["12:00-12:05"] for day in ("mon", "tue", "wed", "thu", "fri")}
    calendar = Calendar(KYIV, week(**(weekdays | days)))
    for offset in range(0, 36 * 60, 75):
        moment = start + timedelta(minutes=offset)
        assert calendar.next_open(moment, window_zone) == brute_next_open(
            calendar, moment, window_zone
        ), moment

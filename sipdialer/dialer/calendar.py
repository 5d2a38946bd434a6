"""When a campaign may dial (dialer-semantics §5).

A :class:`Calendar` has a time zone, optional start and end dates, holidays, and windows per
weekday (several per day, ``[start, end)`` in minutes since midnight, ``end`` up to 1440).

Which zone decides what:

* **dates** (``start``, ``end``, holidays) are dates of the *calendar's* zone, always: the
  campaign's season and its days off are the office's, wherever the member lives;
* **weekday and hour windows** are read in the *member's* zone when the member has one
  (``zone=``), else in the calendar's zone. A member in New York on a Kyiv calendar with
  ``mon = ["09:00-18:00"]`` is called Monday 09:00-18:00 New York time, on days that are
  neither a holiday nor outside start..end in Kyiv at that instant.

Windows are wall-clock times. On a spring-forward day the skipped hour does not exist, so a
window 03:00-04:00 over a 03:00->04:00 jump never opens that day and 03:00-05:00 opens at
04:00; on a fall-back day the repeated hour is inside a window both times it passes.

:meth:`Calendar.next_open` is exact: the open set only changes at a window start/end in the
window zone, a UTC offset change, or a calendar-zone midnight, so it tests those instants
in order. Inputs must be aware datetimes; results are UTC. Pure code: no IO, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from sipdialer.config import CalendarConfig

MINUTES_PER_DAY = 1440
SEARCH_DAYS = 400
"""How far past ``now`` (plus one day per holiday) :meth:`Calendar.next_open` looks."""
_BATCH = timedelta(days=7)
_DAY = timedelta(days=1)

Window = tuple[int, int]
"""``(start, end)`` minutes since local midnight, ``start < end <= 1440``."""


@dataclass(frozen=True, slots=True)
class Calendar:
    zone: tzinfo
    week: tuple[tuple[Window, ...], ...] = ((),) * 7  # index 0 = Monday
    start: date | None = None
    end: date | None = None
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if len(self.week) != 7:
            raise ValueError(f"week needs 7 days of windows, got {len(self.week)}")
        for day in self.week:
            for start, end in day:
                if not 0 <= start < end <= MINUTES_PER_DAY:
                    raise ValueError(f"bad window ({start}, {end})")

    @classmethod
    def from_config(cls, cfg: CalendarConfig) -> Calendar:
        week = tuple(tuple((w.start, w.end) for w in cfg.week.windows(day)) for day in range(7))
        return cls(cfg.tzinfo, week, cfg.start, cfg.end, frozenset(cfg.holidays))

    @classmethod
    def always_open(cls, zone: tzinfo = UTC) -> Calendar:
        """Every day, all day (for tests and simple setups)."""
        return cls(zone, (((0, MINUTES_PER_DAY),),) * 7)

    # --- questions ----------------------------------------------------------------------

    def local_date(self, now_utc: datetime) -> date:
        """The date in the calendar's zone (what start, end and holidays refer to)."""
        return _aware(now_utc).astimezone(self.zone).date()

    def date_allowed(self, day: date) -> bool:
        """A calendar-zone date within start..end and not a holiday."""
        if self.start is not None and day < self.start:
            return False
        if self.end is not None and day > self.end:
            return False
        return day not in self.holidays

    def ended(self, now_utc: datetime) -> bool:
        """The end date is over (in the calendar's zone): the campaign finishes."""
        return self.end is not None and self.local_date(now_utc) > self.end

    def is_open(self, now_utc: datetime, zone: tzinfo | None = None) -> bool:
        """May a member (in ``zone``, default the calendar's) be dialed at ``now_utc``?"""
        if not self.date_allowed(self.local_date(now_utc)):
            return False
        local = _aware(now_utc).astimezone(zone or self.zone)
        second = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        return any(s * 60 <= second < e * 60 for s, e in self.week[local.weekday()])

    def next_open(self, now_utc: datetime, zone: tzinfo | None = None) -> datetime | None:
        """The first instant at or after ``now_utc`` when :meth:`is_open` holds (UTC).

        ``now_utc`` itself when open now. None when the calendar never opens again: after
        the end date, no windows at all, or nothing within ``SEARCH_DAYS`` (+ holidays).
        """
        now = _aware(now_utc).astimezone(UTC)
        if self.is_open(now, zone):
            return now
        if self.ended(now) or not any(self.week):
            return None
        begin = now
        if self.start is not None and self.local_date(now) < self.start:
            begin = max(now, _local_midnight(self.start, self.zone) - _DAY)
        limit = begin + timedelta(days=SEARCH_DAYS + len(self.holidays))
        if self.end is not None:
            limit = min(limit, _local_midnight(self.end + _DAY, self.zone) + _DAY)
        window_zone = zone or self.zone
        lo = begin
        while lo < limit:
            hi = min(lo + _BATCH, limit)
            for instant in sorted(self._candidates(lo, hi, window_zone)):
                if self.is_open(instant, zone):
                    return instant
            lo = hi
        return None

    # --- the instants where the answer can change -------------------------------------

    def _candidates(self, lo: datetime, hi: datetime, window_zone: tzinfo) -> set[datetime]:
        """Instants in ``[lo, hi)`` (UTC) where a closed calendar may open, and ``lo`` itself:
        window starts (wall clock, either fold), UTC offset changes, calendar midnights."""
        found = {lo}
        for day in _dates(lo, hi, window_zone):
            for start, _ in self.week[day.weekday()]:
                found.update(_instants(day, start, window_zone))
            found.update(_offset_changes(day, window_zone))
        for day in _dates(lo, hi, self.zone):
            found.update(_instants(day, 0, self.zone))
            found.update(_offset_changes(day, self.zone))
        return {t for t in found if lo <= t < hi}


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"need an aware datetime (UTC), got naive {moment.isoformat()}")
    return moment


def _dates(lo: datetime, hi: datetime, zone: tzinfo) -> Iterator[date]:
    """Local dates of ``zone`` that overlap ``[lo, hi)``, with a day of margin each side."""
    day = lo.astimezone(zone).date() - _DAY
    last = hi.astimezone(zone).date() + _DAY
    while day <= last:
        yield day
        day += _DAY


def _instants(day: date, minute: int, zone: tzinfo) -> Iterable[datetime]:
    """The UTC instants whose wall clock in ``zone`` reads ``day`` + ``minute`` (both folds;
    a time in a gap gives nearby instants, which the caller just tests)."""
    wall = datetime.combine(day, time(minute // 60, minute % 60))
    return {wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)}


def _local_midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def _offset_changes(day: date, zone: tzinfo) -> Iterable[datetime]:
    """UTC instants during local ``day`` where ``zone``'s offset changes (DST), to the second."""
    first = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC) - timedelta(hours=3)
    last = first + timedelta(hours=30)
    if first.astimezone(zone).utcoffset() == last.astimezone(zone).utcoffset():
        return ()  # assumes at most one change per day, true of every real zone
    lo, hi = first, last  # offset(lo) != offset(hi): bisect to the first second of hi's
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid.astimezone(zone).utcoffset() == lo.astimezone(zone).utcoffset():
            lo = mid
        else:
            hi = mid
    return (hi,)


def zone_of(name: str | None) -> ZoneInfo | None:
    """A member's ``timezone`` field as a zone (None or "" for none)."""
    return ZoneInfo(name) if name else None

"""Date formats of the ``expire`` column of a CSV import (``expire:FORMAT=COLUMN`` in the map).

Spreadsheets write dates the way their locale does (``31.12.2026``, ``12/31/2026``), not
as ISO 8601, so the map may say which format a column holds:

* ``auto`` (the same as a plain ``expire=COLUMN``): what the REST API takes, epoch
  **milliseconds** or ISO 8601 (``2026-12-31``, ``2026-12-31T18:00:00+02:00``); a time
  without an offset is UTC, as in the API's JSON;
* a named format, :data:`FORMATS`: ``DD.MM.YYYY``, ``DD.MM.YYYY HH:MM``, ``DD/MM/YYYY``,
  ``MM/DD/YYYY``, ``YYYY-MM-DD HH:MM`` (names are matched ignoring case), or
  ``epoch-seconds`` (Unix time in whole or fractional seconds);
* a :func:`time.strptime` pattern, anything with a ``%`` (``%d.%m.%y %H.%M``); it cannot
  hold ``,`` or ``=``, which separate the map's pairs.

**Time zone** (decision): a date or time read with an explicit format has no offset in
the cell, and it is taken in **the member's time zone** (the row's ``timezone`` column,
when the map has one and the cell is not empty), else in UTC. An office manager's
"expires 31.12.2026 18:00" for a member in Kyiv means 18:00 in Kyiv. ``auto`` keeps the
API's rule (no offset = UTC), so that a CSV cell and a JSON value in that form mean the
same thing. A date without a time is the start of that day (as an ISO date is in the
API). A pattern with ``%z`` carries its own offset.

:func:`guess_format` names the format that every sample cell of a column matches, for
the upload window's preview. Pure: no IO.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from sipdialer.api.values import parse_expire

AUTO = "auto"
EPOCH_SECONDS = "epoch-seconds"
FORMATS: dict[str, str | None] = {
    AUTO: None,
    "DD.MM.YYYY": "%d.%m.%Y",
    "DD.MM.YYYY HH:MM": "%d.%m.%Y %H:%M",
    "DD/MM/YYYY": "%d/%m/%Y",
    "MM/DD/YYYY": "%m/%d/%Y",
    "YYYY-MM-DD HH:MM": "%Y-%m-%d %H:%M",
    EPOCH_SECONDS: None,
}
"""Named formats: name -> strptime pattern (None: read by code)."""
_BY_FOLDED = {name.casefold(): name for name in FORMATS}
_EXAMPLE = datetime(2026, 12, 31, 18, 30)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_SECONDS = (datetime(9999, 12, 31, tzinfo=UTC) - _EPOCH).total_seconds()
_EPOCH_SECONDS = re.compile(r"\d{1,12}(\.\d{1,9})?")
# What guess_format takes for epoch seconds: 9 or 10 digits (1973..2286); 11..14 digits
# are epoch milliseconds (auto, 1973..5138); shorter runs are not dates at all.
_GUESS_SECONDS = re.compile(r"\d{9,10}")
_GUESS_MILLISECONDS = re.compile(r"\d{11,14}")
_GUESS_ORDER = (
    "DD.MM.YYYY",
    "DD.MM.YYYY HH:MM",
    "DD/MM/YYYY",  # before MM/DD: 01/02/2026 is 1 February where these files come from
    "MM/DD/YYYY",
    "YYYY-MM-DD HH:MM",  # before auto, which reads it too (but in UTC, not the member's zone)
)


@dataclass(frozen=True, slots=True)
class ExpireFormat:
    """How the cells of an ``expire`` column are read: a name of :data:`FORMATS` or a
    strptime ``pattern``."""

    name: str  # as shown in messages: the canonical name, or the pattern as written
    pattern: str | None  # strptime pattern; None for auto and epoch-seconds

    @property
    def auto(self) -> bool:
        return self.name == AUTO

    def example(self) -> str:
        if self.name == AUTO:
            return '"2026-12-31T18:30:00+02:00" or epoch milliseconds'
        if self.name == EPOCH_SECONDS:
            return str(int((_EXAMPLE.replace(tzinfo=UTC) - _EPOCH).total_seconds()))
        assert self.pattern is not None
        return _EXAMPLE.replace(tzinfo=UTC).strftime(self.pattern)

    def parse(self, text: str, zone: str | None = None) -> datetime:
        """The cell as an aware UTC datetime; a time without an offset is in ``zone`` (an
        IANA name), else UTC. ValueError naming the expected format."""
        text = text.strip()
        if self.name == AUTO:
            parsed = parse_expire(text)
            if parsed is None:
                raise ValueError("empty")
            return parsed
        if self.name == EPOCH_SECONDS:
            if not _EPOCH_SECONDS.fullmatch(text):
                raise ValueError(self._mismatch(text))
            seconds = float(text)
            if seconds > _MAX_SECONDS:
                raise ValueError(f'"{text}": epoch seconds beyond the year 9999')
            return _EPOCH + timedelta(seconds=seconds)
        assert self.pattern is not None
        try:
            parsed = datetime.strptime(text, self.pattern)
        except ValueError as exc:
            message = str(exc)
            if message.startswith(("time data", "unconverted data")):
                raise ValueError(self._mismatch(text)) from None
            # A cell of the right shape but no such day ("31.02.2026": "day is out of range")
            raise ValueError(f'"{text}" is not a valid {self.name} date ({message})') from None
        if parsed.tzinfo is None:
            local: tzinfo = ZoneInfo(zone) if zone else UTC
            parsed = parsed.replace(tzinfo=local)
        return parsed.astimezone(UTC)

    def _mismatch(self, text: str) -> str:
        return f'"{text}" does not match the date format {self.name} (e.g. {self.example()})'


def parse_format(text: str) -> ExpireFormat:
    """A format of the map (``DD.MM.YYYY``, ``auto``, ``%d.%m.%Y``...); ValueError if unknown."""
    text = text.strip()
    name = _BY_FOLDED.get(text.casefold())
    if name is not None:
        return ExpireFormat(name, FORMATS[name])
    if "%" in text:
        try:  # a pattern must read back what it writes ("%Q" is no directive)
            sample = _EXAMPLE.replace(tzinfo=UTC).strftime(text)
            datetime.strptime(sample, text)
        except ValueError as exc:
            raise ValueError(f'date format "{text}": {exc}') from None
        return ExpireFormat(text, text)
    known = ", ".join(FORMATS)
    raise ValueError(
        f'unknown date format "{text}" (formats: {known}, or a strptime pattern such as %d.%m.%Y)'
    )


AUTOMATIC = ExpireFormat(AUTO, None)


def guess_format(cells: Iterable[str]) -> str | None:
    """The name of the format that most non-empty cells match, when more than half do
    (a typo in one row does not hide the column's format); None otherwise, or when no cell
    has anything. Ties go to the earlier of :data:`_GUESS_ORDER` (then epoch seconds, then
    auto). Runs of digits: 9-10 are epoch seconds, 11-14 epoch milliseconds (auto)."""
    values = [cell.strip() for cell in cells if cell.strip()]
    if not values:
        return None
    counts = {name: 0 for name in (*_GUESS_ORDER, EPOCH_SECONDS, AUTO)}
    for value in values:
        if value.isdigit():  # auto would read any digits as milliseconds
            if _GUESS_SECONDS.fullmatch(value):
                counts[EPOCH_SECONDS] += 1
            elif _GUESS_MILLISECONDS.fullmatch(value):
                counts[AUTO] += 1
            continue
        for name in (*_GUESS_ORDER, AUTO):
            counts[name] += _matches(ExpireFormat(name, FORMATS[name]), value)
    best = max(counts, key=lambda name: counts[name])  # the first of equal counts
    return best if counts[best] * 2 > len(values) else None


def _matches(form: ExpireFormat, value: str) -> bool:
    try:
        form.parse(value)
    except ValueError:
        return False
    return True

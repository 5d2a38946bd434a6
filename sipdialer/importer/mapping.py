"""The ``--map`` of ``sipdialer import``: which CSV column holds which member field.

Syntax: comma-separated ``field=column`` pairs, for example
``name=0,number=1,number=2,priority=3,timezone=4,expire=5,var:city=6``. A column is an
index counted from 0, or, when the file has a header row (``--skip-header``), a column
name (``name=FIO,number=Phone``; matched exactly, then ignoring case and surrounding
spaces). Fields:

* ``name``, ``priority`` (the member's), ``timezone``, ``expire``: at most once each;
* ``expire:FORMAT``: the expire column read in a date format, e.g.
  ``expire:DD.MM.YYYY=5`` or ``expire:%d.%m.%Y %H:%M=5``; a plain ``expire=5`` (or
  ``expire:auto``) takes epoch milliseconds or ISO 8601, as the API. The formats, and the
  time zone of a date without an offset (the row's ``timezone`` column when mapped, else
  UTC): :mod:`.dates`. A cell that does not match is refused, naming the format;
* ``number``: one or more times, one column each. Plain ``number=`` columns get
  priorities by order, **first highest**: with three of them they get 2, 1, 0.
  ``number:P=COL`` gives the number in COL the priority P explicitly (P may be negative);
  both forms mix;
* ``var:NAME``: the column is the member variable NAME (sent as ``X-Dialer-Var-NAME``).

The same thing may be given as a mapping (the API's JSON form): ``{"name": 0, "number": [1,
2], "number:5": "Mobile", "expire:DD.MM.YYYY": 7, "var:city": 6}``. :func:`parse_mapping`
checks the syntax (a :class:`MappingError` names the bad pair); :meth:`ColumnMap.resolve`
turns names into indexes once the header is known. Pure: no IO.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sipdialer.api.values import (
    MAX_COMMUNICATIONS,
    MAX_VARIABLES,
    check_variable_name,
    parse_priority,
)
from sipdialer.importer.dates import AUTOMATIC, ExpireFormat, parse_format

Column = int | str
"""A column index (from 0) or a header name."""

DEFAULT_MAPPING = "name=0,number=1"
FIELDS = ("name", "number", "priority", "timezone", "expire")
_SINGLE = ("name", "priority", "timezone", "expire")
_MAX_COLUMN = 10_000


class MappingError(ValueError):
    """The ``--map`` is wrong (or names a column the header does not have)."""


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Columns per member field; :meth:`resolve` gives the index-only form the reader uses."""

    numbers: tuple[tuple[Column, int], ...]  # (column, the number's priority)
    name: Column | None = None
    priority: Column | None = None
    timezone: Column | None = None
    expire: Column | None = None
    variables: tuple[tuple[str, Column], ...] = ()
    expire_format: ExpireFormat = AUTOMATIC

    @property
    def uses_names(self) -> bool:
        return any(isinstance(column, str) for column in self._columns())

    def _columns(self) -> list[Column]:
        singles = [self.name, self.priority, self.timezone, self.expire]
        return [
            *(c for c in singles if c is not None),
            *(c for c, _ in self.numbers),
            *(c for _, c in self.variables),
        ]

    def resolve(self, header: Sequence[str] | None) -> Columns:
        """The same map with every column an index; MappingError for an unknown name."""

        def index(column: Column) -> int:
            if isinstance(column, int):
                return column
            if header is None:
                raise MappingError(
                    f'column "{column}" is a name: names need a header row (--skip-header)'
                )
            return _find(column, header)

        def maybe(column: Column | None) -> int | None:
            return None if column is None else index(column)

        return Columns(
            numbers=tuple((index(c), p) for c, p in self.numbers),
            name=maybe(self.name),
            priority=maybe(self.priority),
            timezone=maybe(self.timezone),
            expire=maybe(self.expire),
            variables=tuple((v, index(c)) for v, c in self.variables),
            expire_format=self.expire_format,
        )


@dataclass(frozen=True, slots=True)
class Columns:
    """A :class:`ColumnMap` resolved against the file: column indexes only."""

    numbers: tuple[tuple[int, int], ...]  # (column, the number's priority)
    name: int | None
    priority: int | None
    timezone: int | None
    expire: int | None
    variables: tuple[tuple[str, int], ...]
    expire_format: ExpireFormat = AUTOMATIC

    def width(self) -> int:
        """Columns a row needs: the largest index + 1."""
        singles = (self.name, self.priority, self.timezone, self.expire)
        return 1 + max(  # a list: max(*one_item) would be max(int), a TypeError
            [
                *(c for c in singles if c is not None),
                *(c for c, _ in self.numbers),
                *(c for _, c in self.variables),
            ]
        )


def _find(name: str, header: Sequence[str]) -> int:
    cells = [cell.strip() for cell in header]
    if name in cells:
        return cells.index(name)
    folded = [cell.casefold() for cell in cells]
    if name.strip().casefold() in folded:
        return folded.index(name.strip().casefold())
    close = difflib.get_close_matches(name, cells, n=1, cutoff=0.6)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    listed = ", ".join(f'"{cell}"' for cell in cells[:20])
    raise MappingError(f'no column named "{name}" in the header ({listed}){hint}')


def _column(text: str, pair: str) -> Column:
    text = text.strip()
    if not text:
        raise MappingError(f'"{pair}": the column is missing')
    if re.fullmatch(r"\d+", text):
        value = int(text)
        if value >= _MAX_COLUMN:
            raise MappingError(f'"{pair}": column {value} is beyond {_MAX_COLUMN - 1}')
        return value
    if text.startswith("-") and text[1:].isdigit():
        raise MappingError(f'"{pair}": column indexes count from 0')
    return text


def _pairs(mapping: str | Mapping[str, object]) -> list[tuple[str, Column, str]]:
    """``(field, column, how it was written)`` for each pair, in order."""
    out: list[tuple[str, Column, str]] = []
    if isinstance(mapping, str):
        for pair in mapping.split(","):
            if not pair.strip():
                continue
            key, sep, text = pair.partition("=")
            if not sep:
                raise MappingError(f'"{pair.strip()}": expected field=column, e.g. "number=1"')
            out.append((key.strip(), _column(text, pair.strip()), pair.strip()))
        return out
    for key, value in mapping.items():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            written = f"{key}={item}"
            if isinstance(item, bool) or not isinstance(item, int | str):
                raise MappingError(f'"{written}": a column is an index or a header name')
            if isinstance(item, int) and not 0 <= item < _MAX_COLUMN:
                raise MappingError(f'"{written}": column indexes count from 0')
            out.append((str(key).strip(), _column(str(item), written), written))
    return out


def parse_mapping(mapping: str | Mapping[str, object] = DEFAULT_MAPPING) -> ColumnMap:
    """Parse a ``--map`` string (or its mapping form); MappingError names the bad pair."""
    singles: dict[str, Column] = {}
    plain: list[Column] = []
    explicit: list[tuple[int, Column, int]] = []  # (position, column, priority)
    variables: dict[str, Column] = {}
    expire_format = AUTOMATIC
    for key, column, written in _pairs(mapping):
        field = key.lower()
        if field.startswith("expire:"):
            try:
                expire_format = parse_format(key.partition(":")[2])
            except ValueError as exc:
                raise MappingError(f'"{written}": {exc}') from None
            field = "expire"
        if field in _SINGLE:
            if field in singles:
                raise MappingError(f'"{written}": {field} is mapped twice')
            singles[field] = column
        elif field == "number":
            plain.append(column)
        elif field.startswith("number:"):
            try:
                priority = parse_priority(key.partition(":")[2])
            except ValueError as exc:
                raise MappingError(f'"{written}": number:PRIORITY needs a whole number') from exc
            explicit.append((len(plain) + len(explicit), column, priority))
        elif field.startswith("var:"):
            name = key.partition(":")[2].strip()
            try:
                check_variable_name(name)
            except ValueError as exc:
                raise MappingError(f'"{written}": {exc}') from None
            if name in variables:
                raise MappingError(f'"{written}": variable "{name}" is mapped twice')
            variables[name] = column
        else:
            close = difflib.get_close_matches(field, [*FIELDS, "var"], n=1, cutoff=0.6)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            raise MappingError(
                f'"{written}": unknown field "{key}" (fields: name, number, number:PRIORITY,'
                f" priority, timezone, expire, expire:FORMAT, var:NAME){hint}"
            )
    if not plain and not explicit:
        raise MappingError("no number column: the map needs number=COLUMN")
    if len(plain) + len(explicit) > MAX_COMMUNICATIONS:
        raise MappingError(f"at most {MAX_COMMUNICATIONS} number columns")
    if len(variables) > MAX_VARIABLES:
        raise MappingError(f"at most {MAX_VARIABLES} var: columns")
    # Plain numbers: first highest (n-1 .. 0); explicit ones keep theirs; list order is the
    # order written, which is the tie-break among equal priorities (choose_number).
    numbered = list(explicit)
    taken = {position for position, _, _ in explicit}
    positions = [i for i in range(len(plain) + len(explicit)) if i not in taken]
    for rank, (position, column) in enumerate(zip(positions, plain, strict=True)):
        numbered.append((position, column, len(plain) - 1 - rank))
    numbers = tuple((column, priority) for _, column, priority in sorted(numbered))
    return ColumnMap(
        numbers=numbers,
        name=singles.get("name"),
        priority=singles.get("priority"),
        timezone=singles.get("timezone"),
        expire=singles.get("expire"),
        variables=tuple(variables.items()),
        expire_format=expire_format,
    )

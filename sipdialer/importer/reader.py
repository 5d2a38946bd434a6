"""Reading members out of a CSV file, row by row, with every bad row's line and reason.

Theory of operation
-------------------
The file is read as *bytes*, one physical line at a time, and each line is decoded on its
own, so a byte that does not decode spoils only the row holding it: that row is refused
with its line number (and a hint to try another ``--encoding``), the rest goes on. Only
ASCII-compatible encodings are accepted (utf-8, cp1251, koi8-r, latin-1...), which is what
makes splitting on ``\\n`` before decoding safe; a UTF-8 byte-order mark is dropped.

The decoded lines feed :mod:`csv` (``"`` quoting, doubled quotes, delimiters and line
breaks inside quoted fields). A row's line is where it *starts*, counted from 1 as in a text
editor, the header included. Blank rows (no cell with anything but spaces) are skipped.
With ``skip_header`` the first row is the header: it names the columns for the map and
fixes the column count; without one the first row fixes it. A row with another count is
refused (it usually means an unquoted delimiter inside a field).

Each row then becomes a :class:`~sipdialer.api.schemas.MemberIn` through the same value
parsers the REST API uses, so a CSV member and a JSON member obey the same rules. Refused:
no number, a bad number, priority, date (read in the map's ``expire:FORMAT``, in the row's
zone: :mod:`.dates`) or zone, the wrong column count, and a number
already taken by an earlier *accepted* row of the file (the reason names that row's line).
The same number twice in one row is kept once (two columns, one phone). Line breaks inside
a quoted name or variable become spaces (both travel as one-line SIP headers). Numbers already in
the campaign are the store's business, which is what makes a re-import add nothing twice.

:func:`iter_members` yields :class:`ImportBatch` es of at most ``batch`` rows, so a large
file is never held whole (nor twice); :func:`read_members` collects them into one
:class:`ImportResult`. Apart from reading the source this is pure.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO

from pydantic import ValidationError

from sipdialer.api.schemas import MemberIn
from sipdialer.api.values import (
    MAX_NAME,
    check_member_name,
    describe_errors,
    normalise_number,
    one_line,
    parse_expire,
    parse_priority,
    parse_timezone,
    variable_value,
)
from sipdialer.importer.mapping import (
    DEFAULT_MAPPING,
    ColumnMap,
    Columns,
    MappingError,
    parse_mapping,
)

Source = str | os.PathLike[str] | bytes | bytearray | BinaryIO
"""A path, the file's bytes (an API upload), or a file opened in binary mode."""

_UTF8_BOM = codecs.BOM_UTF8
_PROBE = 'a0,;\t|"\r\n'  # what csv needs to find as single ASCII bytes
_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
OTHER_ENCODINGS = "cp1251, koi8-r, latin-1"


@dataclass(frozen=True, slots=True)
class RowError:
    """A refused row: the line it starts on (1-based, header counted) and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ImportedMember:
    """An accepted row: the member and the line it starts on."""

    line: int
    member: MemberIn


@dataclass(slots=True)
class ImportBatch:
    """Up to ``batch`` consecutive data rows, accepted and refused, in file order."""

    members: list[ImportedMember] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0  # data rows in this batch (header and blank rows not counted)
    line: int = 0  # the last line read so far
    bytes_read: int = 0  # of the source so far, for a progress bar
    header: list[str] | None = None  # the header row, once read (skip_header)


@dataclass(slots=True)
class ImportResult:
    members: list[ImportedMember]
    errors: list[RowError]
    rows: int  # data rows read
    header: list[str] | None = None


def check_encoding(encoding: str) -> str:
    """The codec's canonical name; ValueError if unknown or not ASCII-compatible."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f'unknown encoding "{encoding}" (try utf-8, {OTHER_ENCODINGS})') from None
    try:
        compatible = _PROBE.encode(info.name) == _PROBE.encode("ascii")
    except (UnicodeError, LookupError):
        compatible = False
    if not compatible:
        raise ValueError(
            f'encoding "{encoding}" is not supported: it must keep ASCII as is'
            f" (utf-8, {OTHER_ENCODINGS}...; convert UTF-16 files to UTF-8 first)"
        )
    return info.name


def check_delimiter(delimiter: str) -> str:
    """One character (``tab``, ``\\t``, ``semicolon``... accepted by name)."""
    value = _DELIMITER_NAMES.get(delimiter.lower(), delimiter)
    if len(value) != 1 or value in '"\r\n' or value.isalnum():
        raise ValueError(
            f'the delimiter must be one character such as , ; | or tab, got "{delimiter}"'
        )
    return value


class _Lines:
    """Decoded physical lines of a binary source; remembers the lines that did not decode."""

    def __init__(self, raw: Iterable[bytes], encoding: str) -> None:
        self._raw = iter(raw)
        self._encoding = encoding
        self.number = 0
        self.bytes_read = 0
        self.bad: dict[int, str] = {}

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = next(self._raw)
        self.number += 1
        self.bytes_read += len(raw)
        if self.number == 1 and self._encoding == "utf-8" and raw.startswith(_UTF8_BOM):
            raw = raw[len(_UTF8_BOM) :]
        try:
            return raw.decode(self._encoding)
        except UnicodeDecodeError as exc:
            self.bad[self.number] = self._explain(raw, exc)
            return raw.decode(self._encoding, errors="replace")

    def _explain(self, raw: bytes, exc: UnicodeDecodeError) -> str:
        byte = f"byte 0x{raw[exc.start]:02x} at position {exc.start + 1} of the line"
        name = "UTF-8" if self._encoding == "utf-8" else self._encoding
        hint = f"; is the file in another encoding? try --encoding {OTHER_ENCODINGS}"
        return f"not valid {name} ({byte}){hint}"

    def first_bad(self, start: int, end: int) -> tuple[int, str] | None:
        """The first undecodable line of ``start..end`` and why; forgets them all."""
        found = [(line, self.bad.pop(line)) for line in range(start, end + 1) if line in self.bad]
        return found[0] if found else None


class _Rows:
    """Turns rows into members with the resolved map; remembers the numbers taken."""

    def __init__(self, columns: Columns, header: list[str] | None, expected: int) -> None:
        self.columns = columns
        self.header = header
        self.expected = expected
        self.taken: dict[str, int] = {}  # number -> line of the accepted row holding it

    def label(self, field: str, index: int) -> str:
        if self.header is not None:
            return f'{field} (column {index} "{self.header[index].strip()}")'
        return f"{field} (column {index})"

    def _zone(self, cells: list[str]) -> str | None:
        """The row's time zone cell, for a date without an offset (None: UTC)."""
        index = self.columns.timezone
        if index is None:
            return None
        return cells[index].strip() or None

    def member(self, cells: list[str], line: int) -> MemberIn | str:
        """The row's member, or the reason it is refused."""
        if len(cells) != self.expected:
            hint = " (an unquoted delimiter inside a field?)" if len(cells) > self.expected else ""
            return f"expected {self.expected} columns, got {len(cells)}{hint}"
        # Most rows are good: validate them once, as the API would. Only a row that fails
        # goes through the field-by-field parsers, which say which column is wrong (and
        # keep a number given twice in the row once).
        quick = self._quick(cells)
        if quick is None or any(c.number in self.taken for c in quick.communications):
            result = self._explained(cells)
        else:
            result = quick
        if isinstance(result, MemberIn):
            for communication in result.communications:
                self.taken[communication.number] = line
        return result

    def _quick(self, cells: list[str]) -> MemberIn | None:
        columns = self.columns
        data: dict[str, Any] = {
            "communications": [
                {"number": cells[index], "priority": priority}
                for index, priority in columns.numbers
                if cells[index].strip()
            ],
            "variables": {
                var: one_line(cells[index].strip())
                for var, index in columns.variables
                if cells[index].strip()
            },
        }
        for key in ("priority", "timezone", "expire"):
            index = getattr(columns, key)
            if index is not None and cells[index].strip():
                data[key] = cells[index]
        if "expire" in data and not columns.expire_format.auto:
            try:
                data["expire"] = columns.expire_format.parse(data["expire"], self._zone(cells))
            except (ValueError, KeyError):  # KeyError: an unknown zone (explained below)
                return None
        if columns.name is not None:
            data["name"] = one_line(cells[columns.name].strip())
        try:
            return MemberIn.model_validate(data)
        except ValidationError:
            return None

    def _explained(self, cells: list[str]) -> MemberIn | str:
        columns = self.columns
        numbers: dict[str, int] = {}
        for index, priority in columns.numbers:
            cell = cells[index].strip()
            if not cell:
                continue
            try:
                number = normalise_number(cell)
            except ValueError as exc:
                return f"{self.label('number', index)}: {exc}"
            numbers.setdefault(number, priority)
        if not numbers:
            where = ", ".join(str(index) for index, _ in columns.numbers)
            return f"no number (column{'s' if len(columns.numbers) > 1 else ''} {where} empty)"
        for number in numbers:
            if number in self.taken:
                return f'number "{number}" is already on line {self.taken[number]}'
        parsed: dict[str, Any] = {"priority": 0, "timezone": None, "expire": None}
        form = columns.expire_format

        def expire(text: str) -> datetime | None:
            # The zone was parsed (and checked) just before: the loop's order matters.
            return parse_expire(text) if form.auto else form.parse(text, parsed["timezone"])

        for key, parse in (
            ("priority", parse_priority),
            ("timezone", parse_timezone),
            ("expire", expire),
        ):
            index = getattr(columns, key)
            if index is None or not cells[index].strip():
                continue
            try:
                parsed[key] = parse(cells[index].strip())
            except ValueError as exc:
                return f"{self.label(key, index)}: {exc}"
        name = ""
        if columns.name is not None:
            name = one_line(cells[columns.name].strip())
            try:
                check_member_name(name)
            except ValueError as exc:
                return f"{self.label('name', columns.name)}: {exc}"
            if len(name) > MAX_NAME:
                return f"{self.label('name', columns.name)}: longer than {MAX_NAME} characters"
        variables: dict[str, str] = {}
        for var, index in columns.variables:
            cell = cells[index].strip()
            if not cell:
                continue  # an empty cell is no value, not an empty header
            try:
                variables[var] = variable_value(one_line(cell))
            except ValueError as exc:
                return f"{self.label('var:' + var, index)}: {exc}"
        data = {
            "name": name,
            "variables": variables,
            "communications": [{"number": n, "priority": p} for n, p in numbers.items()],
            **parsed,
        }
        try:
            member = MemberIn.model_validate(data)
        except ValidationError as exc:  # the parsers above catch it all, with the column
            return "; ".join(describe_errors(exc))
        return member


def _open(source: Source) -> tuple[Iterable[bytes], BinaryIO | None]:
    """Lines of bytes, and the file to close (None when the caller owns it)."""
    if isinstance(source, bytes | bytearray):
        return io.BytesIO(bytes(source)), None
    if isinstance(source, str | os.PathLike):
        handle = open(source, "rb")  # closed by _iterate
        return handle, handle
    return source, None


def iter_members(
    source: Source,
    *,
    encoding: str = "utf-8",
    delimiter: str = ",",
    skip_header: bool = False,
    mapping: str | Mapping[str, object] | ColumnMap = DEFAULT_MAPPING,
    batch: int = 1000,
) -> Iterator[ImportBatch]:
    """Batches of at most ``batch`` data rows, in file order.

    Raises ValueError (MappingError for the map) at once for a bad encoding, delimiter or
    map, and at the first row for a column name the header lacks or a file narrower than
    the map; OSError when the file cannot be read. Row problems are never raised: they are
    the batches' ``errors``.
    """
    encoding = check_encoding(encoding)
    delimiter = check_delimiter(delimiter)
    columns = mapping if isinstance(mapping, ColumnMap) else parse_mapping(mapping)
    if columns.uses_names and not skip_header:
        raise MappingError("the map names columns: names need a header row (--skip-header)")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    return _iterate(source, encoding, delimiter, skip_header, columns, batch)


def _iterate(
    source: Source,
    encoding: str,
    delimiter: str,
    skip_header: bool,
    columns: ColumnMap,
    size: int,
) -> Iterator[ImportBatch]:
    raw, owned = _open(source)
    try:
        lines = _Lines(raw, encoding)
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
        rows: _Rows | None = None
        want_header = skip_header
        batch = ImportBatch()
        end, yielded = 0, False
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                batch.errors.append(RowError(end + 1, f"not valid CSV: {exc}"))
                batch.rows += 1
                end = reader.line_num
                lines.first_bad(1, end)  # refused anyway: forget its decoding errors
                continue
            start, end = end + 1, reader.line_num
            bad = lines.first_bad(start, end)
            if not any(cell.strip() for cell in cells):
                continue  # a blank row (spreadsheets leave ";;;" lines at the end)
            if rows is None:
                header = cells if want_header else None
                rows = _start(columns, header, len(cells))
                if want_header:
                    want_header = False
                    if bad is not None:
                        batch.errors.append(RowError(*bad))
                    continue
            batch.rows += 1
            if bad is not None:
                batch.errors.append(RowError(*bad))
            else:
                result = rows.member(cells, start)
                if isinstance(result, str):
                    batch.errors.append(RowError(start, result))
                else:
                    batch.members.append(ImportedMember(start, result))
            if batch.rows >= size:
                yield _finish(batch, lines, rows)
                yielded, batch = True, ImportBatch()
        if batch.rows or batch.errors or not yielded:
            yield _finish(batch, lines, rows)
    finally:
        if owned is not None:
            owned.close()


def _finish(batch: ImportBatch, lines: _Lines, rows: _Rows | None) -> ImportBatch:
    batch.line, batch.bytes_read = lines.number, lines.bytes_read
    batch.header = rows.header if rows is not None else None
    return batch


def _start(columns: ColumnMap, header: list[str] | None, width: int) -> _Rows:
    resolved = columns.resolve(header)
    needed = resolved.width()
    if needed > width:
        what = "the header" if header is not None else "the first row"
        raise MappingError(
            f"the map uses column {needed - 1} but {what} has {width} column"
            f"{'s' if width != 1 else ''} (columns count from 0; is --delimiter right?)"
        )
    return _Rows(resolved, header, width)


def read_members(
    source: Source,
    *,
    encoding: str = "utf-8",
    delimiter: str = ",",
    skip_header: bool = False,
    mapping: str | Mapping[str, object] | ColumnMap = DEFAULT_MAPPING,
) -> ImportResult:
    """Every accepted member and every refused row of ``source`` (see :func:`iter_members`)."""
    result = ImportResult(members=[], errors=[], rows=0)
    for batch in iter_members(
        source, encoding=encoding, delimiter=delimiter, skip_header=skip_header, mapping=mapping
    ):
        result.members.extend(batch.members)
        result.errors.extend(batch.errors)
        result.rows += batch.rows
        result.header = batch.header
    return result

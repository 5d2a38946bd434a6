"""``POST /api/v2/dialer/{id}/members/import/preview``: the first rows of a CSV file, parsed.

Theory of operation
-------------------
The web client's upload window shows a file before anything is imported: the page sends
the file's first bytes (it slices the file; :data:`MAX_PREVIEW_BYTES` at most) and gets
back the first ``rows`` rows split into cells, with the encoding and the delimiter used,
and what this module *guesses* for both, so the window can preselect them:

* **encoding** (:func:`guess_encoding`): bytes that decode as strict UTF-8 are UTF-8 (pure
  ASCII too). Otherwise the Cyrillic single-byte code pages are told apart by letter
  frequency: cp1251 and koi8-r put the lower-case letters in each other's upper-case
  range, so the same bytes read in the wrong one give mostly capitals in an unusual
  order. Each reading is scored by how common its lower-case letters are in Russian and
  Ukrainian text (:data:`_LETTER_WEIGHTS`); the higher score wins. When fewer than half of
  the non-ASCII bytes are Cyrillic letters (outside Latin words) in either reading, it
  is latin-1.
* **delimiter** (:func:`guess_delimiter`): :class:`csv.Sniffer` restricted to ``, ; tab |``;
  when it cannot decide, the candidate that splits the lines into the same number (> 1)
  of cells most often; else ``,``.
* **header**: the first row is taken for a header when none of its cells is a dialable
  number but a cell of a later row is (phone lists have a number column).
* **date formats** (:func:`~sipdialer.importer.guess_format`): per column, the format of
  :data:`~sipdialer.importer.FORMATS` that most non-empty cells of the rows shown match,
  when more than half do (the header row left out when one is guessed), else null; the
  window preselects it when the column is mapped to ``expire`` (``31.12.2026`` ->
  ``DD.MM.YYYY``), and maps a column of such dates to ``expire`` by itself.

Nothing is stored: this route reads only the body. The cut at the end of a sliced body
may split a line (or a UTF-8 character): the bytes after the last line break are dropped
when the body is that long. Pure apart from the route itself.
"""

from __future__ import annotations

import csv
import io
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict

from sipdialer.api.routes_common import ERRORS, CampaignId
from sipdialer.api.values import normalise_number
from sipdialer.importer import check_delimiter, check_encoding, guess_format

router = APIRouter(prefix="/api/v2/dialer", tags=["members"], responses=ERRORS)

MAX_PREVIEW_BYTES = 256 * 1024
"Largest body taken (the page sends the first 64 KiB); bigger is 413."
DELIMITERS = (",", ";", "\t", "|")
ENCODINGS = ("utf-8", "cp1251", "koi8-r", "latin-1")

# Relative frequencies (per mille, rounded) of lower-case letters in Russian and Ukrainian
# prose; letters outside the table count 1. Only their order matters much: a text read in
# the wrong code page turns into capitals, which score nothing.
_LETTER_WEIGHTS = {
    "о": 110, "е": 85, "а": 80, "и": 74, "н": 67, "т": 63, "с": 55, "р": 47, "в": 45,
    "л": 44, "к": 35, "м": 32, "д": 30, "п": 28, "у": 26, "я": 20, "ы": 19, "ь": 17,
    "г": 17, "з": 16, "б": 16, "ч": 14, "й": 12, "х": 10, "ж": 9, "ш": 7, "ю": 6,
    "ц": 5, "щ": 4, "э": 3, "ф": 3, "і": 50, "ї": 6, "є": 4, "ґ": 1,
}  # fmt: skip


class Preview(BaseModel):
    model_config = ConfigDict(extra="forbid")

    encoding: str  # the one used for rows
    delimiter: str
    encoding_guess: str
    delimiter_guess: str
    header_guess: bool  # the first row looks like a header
    rows: list[list[str]]  # the first rows, cells as text (undecodable bytes as U+FFFD)
    lines: list[int]  # where each row starts, from 1
    columns: int  # the widest row's cell count
    truncated: bool  # the body was cut: rows past the last full line are not shown
    date_formats: list[str | None] = []  # per column: the date format its cells match


def _score(text: str) -> int:
    return sum(_LETTER_WEIGHTS.get(ch, 1) for ch in text if ch.islower() and "а" <= ch <= "ґ")


def _cyrillic(text: str) -> int:
    """Cyrillic letters not next to a Latin one: Latin-1 accents read as cp1251 give
    Cyrillic letters *inside* Latin words ("Müller" -> "Mьller"), real text does not."""
    count = 0
    for i, ch in enumerate(text):
        if "\u0400" <= ch <= "\u04ff":
            around = text[max(i - 1, 0) : i] + text[i + 1 : i + 2]
            count += not any(c.isascii() and c.isalpha() for c in around)
    return count


def guess_encoding(data: bytes) -> str:
    """utf-8, cp1251, koi8-r or latin-1 for ``data`` (see the module docstring)."""
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        # A sliced body may end inside a character: only a cut in the last 3 bytes is fine.
        if exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
            return "utf-8"
    high = sum(1 for byte in data if byte >= 0x80)
    readings = {name: data.decode(name, errors="replace") for name in ("cp1251", "koi8-r")}
    if max(_cyrillic(text) for text in readings.values()) * 2 < high:
        return "latin-1"
    return max(readings, key=lambda name: (_score(readings[name]), name == "cp1251"))


def _widths(text: str, delimiter: str) -> list[int]:
    widths: list[int] = []
    try:
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            if row:
                widths.append(len(row))
    except csv.Error:  # a stray quote or line break: judge by the rows before it
        pass
    return widths


def guess_delimiter(text: str) -> str:
    """One of ``, ; tab |`` for the decoded ``text``."""
    sample = text[: 32 * 1024]
    try:
        found = csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
        if found in DELIMITERS:
            return found
    except csv.Error:
        pass
    best, best_count = ",", 0
    for delimiter in DELIMITERS:
        widths = [w for w in _widths(sample, delimiter) if w > 1]
        count = max((widths.count(w) for w in set(widths)), default=0)
        if count > best_count:
            best, best_count = delimiter, count
    return best


def _dialable(cell: str) -> bool:
    try:
        normalise_number(cell)
    except ValueError:
        return False
    return len(cell.strip()) >= 3  # "1" or "12" is more likely a count than a phone


def guess_header(rows: list[list[str]]) -> bool:
    if len(rows) < 2 or any(_dialable(cell) for cell in rows[0]):
        return False
    return any(_dialable(cell) for row in rows[1:] for cell in row)


def preview(
    data: bytes,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    rows: int = 10,
    cut: bool = False,
) -> Preview:
    """The first ``rows`` rows of ``data`` (``cut``: the file goes on after ``data``).
    ValueError for a bad ``encoding`` or ``delimiter``."""
    truncated = False
    if cut and b"\n" in data:
        data, truncated = data[: data.rindex(b"\n") + 1], True
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    encoding_guess = guess_encoding(data)
    if encoding:
        check_encoding(encoding)  # ValueError; the name stays as given (the page's choice)
    used = encoding or encoding_guess
    text = data.decode(used, errors="replace")
    delimiter_guess = guess_delimiter(text)
    sep = check_delimiter(delimiter) if delimiter else delimiter_guess
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    out: list[list[str]] = []
    lines: list[int] = []
    end = 0
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            out.append(cells)
            lines.append(start)
            if len(out) >= rows:
                break
    except csv.Error:
        truncated = True  # e.g. a quoted field cut by the slice: show what came before
    header_guess = guess_header(out)
    columns = max((len(r) for r in out), default=0)
    data_rows = out[1:] if header_guess else out
    date_formats = [guess_format(row[i] for row in data_rows if i < len(row))
                    for i in range(columns)]  # fmt: skip
    return Preview(
        encoding=used,
        delimiter=sep,
        encoding_guess=encoding_guess,
        delimiter_guess=delimiter_guess,
        header_guess=header_guess,
        rows=out,
        lines=lines,
        columns=columns,
        truncated=truncated,
        date_formats=date_formats,
    )


def _bad_query(field: str, exc: ValueError) -> HTTPException:
    detail = [{"loc": ["query", field], "msg": str(exc), "type": "value_error"}]
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


@router.post(
    "/{id}/members/import/preview",
    summary="The first rows of a CSV file, parsed (nothing is imported)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
    responses={413: {"description": "the body is larger than 256 KiB"}},
)
async def preview_csv(
    request: Request,
    cid: CampaignId,
    encoding: Annotated[str, Query(max_length=64, description="empty: guessed")] = "",
    delimiter: Annotated[str, Query(max_length=16, description="empty: guessed")] = "",
    rows: Annotated[int, Query(ge=1, le=100)] = 10,
    cut: Annotated[bool, Query(description="the body is the start of a longer file")] = False,
) -> Preview:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_PREVIEW_BYTES:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "send the file's start only")
    for field, check, value in (
        ("encoding", check_encoding, encoding),
        ("delimiter", check_delimiter, delimiter),
    ):
        if value:
            try:
                check(value)
            except ValueError as exc:
                raise _bad_query(field, exc) from None
    return preview(bytes(body), encoding=encoding or None, delimiter=delimiter or None,
                   rows=rows, cut=cut)  # fmt: skip

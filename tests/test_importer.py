"""CSV import (sipdialer/importer): encodings, delimiters, header names, --map, bad rows.

Fixtures in tests/data/csv/ (line numbers below are the files' own, header = line 1):

* members_cp1251.csv: cp1251, ``;``, CRLF, a header, two numbers per member, and one bad
  row of each kind on lines 4-10;
* members_utf8_bom.csv: UTF-8 with a byte-order mark and a header;
* members_koi8r.csv: koi8-r, no header;
* members_quoted.csv: quoted fields holding the delimiter, doubled quotes and line breaks.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import DATA

from sipdialer.importer import (
    FORMATS,
    ColumnMap,
    Columns,
    ImportResult,
    MappingError,
    RowError,
    check_delimiter,
    check_encoding,
    guess_format,
    iter_members,
    parse_format,
    parse_mapping,
    read_members,
)
from sipdialer.importer.dates import AUTOMATIC

CSV = DATA / "csv"
CP1251_MAP = (
    "name=ФИО,number=Телефон,number=Мобильный,priority=3,var:city=Город,timezone=5,expire=6"
)


def numbers(result: ImportResult) -> list[list[tuple[str, int]]]:
    return [[(c.number, c.priority) for c in m.member.communications] for m in result.members]


def reasons(result: ImportResult) -> dict[int, str]:
    return {error.line: error.reason for error in result.errors}


# --- the cp1251 file -----------------------------------------------------------------------


def test_cp1251_semicolons_header_two_numbers_and_bad_rows() -> None:
    result = read_members(
        CSV / "members_cp1251.csv",
        encoding="cp1251",
        delimiter=";",
        skip_header=True,
        mapping=CP1251_MAP,
    )
    assert result.header is not None and result.header[0] == "ФИО"
    assert result.rows == 10
    assert [m.line for m in result.members] == [2, 3, 11]
    first, second, last = (m.member for m in result.members)
    assert first.name == "Іваненко Петро"
    assert first.priority == 5
    assert first.timezone == "Europe/Kyiv"
    assert first.variables == {"city": "Київ"}
    assert first.expire == datetime(2026, 12, 31, 16, tzinfo=UTC)
    assert second.name == "Шевченко; Тарас"  # quoted, delimiter inside
    assert (second.timezone, second.expire) == (None, None)
    assert last.expire == datetime(2026, 12, 31, 22, tzinfo=UTC)  # epoch ms
    assert numbers(result) == [
        [("+380441234567", 1), ("+380671112233", 0)],  # first column highest
        [("0447654321", 1)],
        [("0501234567", 1), ("0679876543", 0)],
    ]
    got = reasons(result)
    assert got == {
        4: 'number (column 1 "Телефон"): "12ab34" is not a dialable number (expected an'
        ' optional "+" and 1..32 of 0-9 * #, after removing spaces, dashes, dots and'
        " parentheses)",
        5: 'priority (column 3 "Приоритет"): expected a whole number, got "high"',
        6: 'expire (column 6 "Истекает"): "31.12.2026" is neither epoch milliseconds nor an'
        ' ISO 8601 datetime (e.g. "2026-12-31T18:00:00+02:00")',
        7: got[7],
        8: "expected 7 columns, got 4",
        9: 'number "+380671112233" is already on line 2',
        10: "no number (columns 1, 2 empty)",
    }
    assert got[7].startswith('timezone (column 5 "Часовой пояс"): unknown time zone')
    assert str(result.errors[0]).startswith('line 4: number (column 1 "Телефон")')


def test_the_same_file_by_column_indexes() -> None:
    result = read_members(
        CSV / "members_cp1251.csv",
        encoding="windows-1251",
        delimiter="semicolon",
        skip_header=True,
        mapping="name=0,number:7=1,number:9=2",
    )
    assert numbers(result)[0] == [("+380441234567", 7), ("+380671112233", 9)]
    assert sorted(reasons(result)) == [4, 8, 9, 10]  # priority, zone, date are not mapped


def test_a_cp1251_file_read_as_utf8_names_each_line_and_hints() -> None:
    result = read_members(
        CSV / "members_cp1251.csv", delimiter=";", skip_header=True, mapping="name=0,number=1"
    )
    assert result.members == []
    got = reasons(result)
    assert sorted(got) == list(range(1, 12))  # the header too, and every Cyrillic row
    assert got[2].startswith("not valid UTF-8 (byte 0xb2 at position 1 of the line)")
    assert "try --encoding cp1251" in got[2]
    assert got[8] == "expected 7 columns, got 4"  # an ASCII-only row is judged as usual


# --- other encodings -----------------------------------------------------------------------


def test_utf8_with_a_byte_order_mark() -> None:
    result = read_members(
        CSV / "members_utf8_bom.csv", skip_header=True, mapping="name=name,number=number"
    )
    assert result.header == ["name", "number"]  # no "\ufeffname"
    assert [(m.line, m.member.name) for m in result.members] == [(2, "Alice"), (3, "Боб")]
    assert result.errors == []


def test_koi8r_without_a_header() -> None:
    result = read_members(
        CSV / "members_koi8r.csv", encoding="koi8-r", mapping="name=0,number=1,var:city=2"
    )
    assert [(m.line, m.member.name, m.member.variables) for m in result.members] == [
        (1, "Сидоров Иван", {"city": "Москва"}),
        (2, "Кузнецова Анна", {"city": "Тверь"}),
    ]


def test_latin1_bytes_and_a_file_object() -> None:
    data = "Zoë Müller,+49 30 1234567\n".encode("latin-1")
    by_bytes = read_members(data, encoding="latin-1")
    by_file = read_members(io.BytesIO(data), encoding="latin-1")
    assert by_bytes.members[0].member.name == by_file.members[0].member.name == "Zoë Müller"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "cp037"])
def test_encodings_that_move_ascii_are_refused(encoding: str) -> None:
    with pytest.raises(ValueError, match="must keep ASCII"):
        check_encoding(encoding)


def test_unknown_encoding_and_delimiter() -> None:
    with pytest.raises(ValueError, match='unknown encoding "cp9999"'):
        read_members(b"", encoding="cp9999")
    assert check_encoding("UTF8") == "utf-8"
    assert check_delimiter("tab") == check_delimiter("\\t") == "\t"
    for bad in ("", ";;", '"', "a"):
        with pytest.raises(ValueError, match="delimiter must be one character"):
            check_delimiter(bad)


# --- quoting, blank lines, CSV errors --------------------------------------------------------


def test_quoted_fields_and_line_numbers_of_multiline_records() -> None:
    result = read_members(
        CSV / "members_quoted.csv", skip_header=True, mapping="name=0,number=1,var:note=2"
    )
    assert [(m.line, m.member.name, m.member.variables["note"]) for m in result.members] == [
        (2, "Smith, John", 'likes "quotes", commas'),
        (3, "Multi Line", "a note over two lines"),  # line breaks become spaces (headers)
        (6, "Plain", "plain"),  # the record above spans lines 3-5
    ]
    assert result.errors == [
        RowError(7, "expected 3 columns, got 4 (an unquoted delimiter inside a field?)")
    ]


def test_blank_rows_are_skipped_and_lines_still_count() -> None:
    data = b"a,1\n\n  ,  \n,\nb,2\r\n"
    result = read_members(data)
    assert [(m.line, m.member.name) for m in result.members] == [(1, "a"), (5, "b")]
    assert result.rows == 2


def test_a_broken_csv_row_is_refused_and_reading_goes_on() -> None:
    data = b'a,1\nb,"2"x"\nc,"3\nd,4\n'
    result = read_members(data)
    assert [m.member.name for m in result.members] == ["a"]
    assert [(e.line, e.reason.split(":")[0]) for e in result.errors] == [
        (2, "not valid CSV"),  # text after a closing quote
        (3, "not valid CSV"),  # a quote never closed: swallows the rest of the file
    ]


# --- duplicates ----------------------------------------------------------------------------


def test_a_number_repeated_in_the_file_is_refused_with_the_first_line() -> None:
    data = b"a,+1 555 0100\nb,+15550101\nc,+1-555-0100\n"
    result = read_members(data)
    assert [m.member.name for m in result.members] == ["a", "b"]
    assert result.errors == [RowError(3, 'number "+15550100" is already on line 1')]


def test_a_refused_row_does_not_take_its_numbers() -> None:
    data = b"a,+15550100,x\nb,+15550100,7\n"
    result = read_members(data, mapping="name=0,number=1,priority=2")
    assert [(m.line, m.member.name) for m in result.members] == [(2, "b")]


def test_the_same_number_twice_in_one_row_is_kept_once() -> None:
    result = read_members(b"a,555-01,55501,55502\n", mapping="name=0,number=1,number=2,number=3")
    assert numbers(result) == [[("55501", 2), ("55502", 0)]]


# --- the map -------------------------------------------------------------------------------


def test_a_name_with_nul_is_refused_with_its_column() -> None:
    result = read_members(b"a\x00b,1\n")
    assert result.errors == [
        RowError(
            1, "name (column 0): a name may not contain line breaks or NUL (it is sent as a header)"
        )
    ]


def test_the_map_bounds_numbers_and_variables() -> None:
    with pytest.raises(MappingError, match="at most 100 var: columns"):
        parse_mapping("number=0," + ",".join(f"var:v{i}={i + 1}" for i in range(101)))
    with pytest.raises(MappingError, match="at most 100 number columns"):
        parse_mapping(",".join(f"number={i}" for i in range(101)))


def test_plain_numbers_get_priorities_first_highest() -> None:
    assert parse_mapping("number=1,number=2,number=3").numbers == ((1, 2), (2, 1), (3, 0))
    mixed = parse_mapping("number=1,number:10=4,number=2")
    assert mixed.numbers == ((1, 1), (4, 10), (2, 0))  # written order kept
    assert parse_mapping("number:-1=2").numbers == ((2, -1),)


def test_a_full_map_and_its_mapping_form() -> None:
    text = "name=0,number=1,number=2,priority=3,timezone=4,expire=5,var:city=6"
    assert parse_mapping(text) == ColumnMap(
        numbers=((1, 1), (2, 0)),
        name=0,
        priority=3,
        timezone=4,
        expire=5,
        variables=(("city", 6),),
    )
    as_dict = {"name": 0, "number": [1, 2], "priority": 3, "timezone": 4, "expire": 5}
    assert parse_mapping({**as_dict, "var:city": 6}) == parse_mapping(text)
    assert parse_mapping(" Name = FIO , number = Phone ").name == "FIO"


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ("name=0", "no number column"),
        ("name=0,nuber=1", 'unknown field "nuber"'),
        ("nmae=0,number=1", 'did you mean "name"?'),
        ("name=0,name=2,number=1", "name is mapped twice"),
        ("number=1,var:a b=2", 'variable name "a b" must be'),
        ("number=1,var:x=2,var:x=3", 'variable "x" is mapped twice'),
        ("number", "expected field=column"),
        ("number=", "the column is missing"),
        ("number=-1", "count from 0"),
        ("number:high=1", "number:PRIORITY needs a whole number"),
        ("number=99999", "beyond 9999"),
        ("number=1,expire:DD-MM=2", 'unknown date format "DD-MM"'),
        ("number=1,expire:%d.%Q=2", "bad directive"),
        ("number=1,expire=2,expire:DD.MM.YYYY=3", "expire is mapped twice"),
    ],
)
def test_bad_maps(mapping: str, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        parse_mapping(mapping)


# --- expire in a date format (sipdialer/importer/dates.py) --------------------------------


def test_expire_formats_in_the_map() -> None:
    assert parse_mapping("number=0,expire=1").expire_format == AUTOMATIC
    assert parse_mapping("number=0,expire:auto=1").expire_format == AUTOMATIC
    # Names ignore case; the mapping form (the API's JSON) takes the same keys.
    by_name = parse_mapping("number=0,expire:dd.mm.yyyy hh:mm=Expire")
    assert (by_name.expire, by_name.expire_format.name) == ("Expire", "DD.MM.YYYY HH:MM")
    assert parse_mapping({"number": 0, "expire:DD.MM.YYYY HH:MM": "Expire"}) == by_name
    assert parse_mapping("number=0,expire:%d.%m.%y=1").expire_format.pattern == "%d.%m.%y"
    # The page offers these (upload.js); each is a name the map knows.
    assert set(FORMATS) == {"auto", "DD.MM.YYYY", "DD.MM.YYYY HH:MM", "DD/MM/YYYY",
                            "MM/DD/YYYY", "YYYY-MM-DD HH:MM", "epoch-seconds"}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "cell", "expected"),
    [
        ("DD.MM.YYYY", "31.12.2026", datetime(2026, 12, 31, tzinfo=UTC)),
        ("DD.MM.YYYY HH:MM", "31.12.2026 18:30", datetime(2026, 12, 31, 18, 30, tzinfo=UTC)),
        ("DD/MM/YYYY", "01/02/2026", datetime(2026, 2, 1, tzinfo=UTC)),
        ("MM/DD/YYYY", "01/02/2026", datetime(2026, 1, 2, tzinfo=UTC)),
        ("YYYY-MM-DD HH:MM", "2026-12-31 18:30", datetime(2026, 12, 31, 18, 30, tzinfo=UTC)),
        ("epoch-seconds", "1798741800", datetime(2026, 12, 31, 18, 30, tzinfo=UTC)),
        ("epoch-seconds", "1798741800.5", datetime(2026, 12, 31, 18, 30, 0, 500000, tzinfo=UTC)),
        ("auto", "1798741800000", datetime(2026, 12, 31, 18, 30, tzinfo=UTC)),  # ms
        ("auto", "2026-12-31T18:30:00+02:00", datetime(2026, 12, 31, 16, 30, tzinfo=UTC)),
        ("%d.%m.%y %H.%M", "31.12.26 18.30", datetime(2026, 12, 31, 18, 30, tzinfo=UTC)),
        ("%d.%m.%Y %H:%M %z", "31.12.2026 18:30 +0200", datetime(2026, 12, 31, 16, 30, tzinfo=UTC)),
    ],
)
def test_each_format_reads_its_cells(name: str, cell: str, expected: datetime) -> None:
    assert parse_format(name).parse(cell) == expected


def test_a_naive_expire_is_in_the_members_zone_else_utc() -> None:
    text = (
        "number,zone,expire\n"
        "1001,Europe/Kyiv,31.12.2026 18:30\n"  # Kyiv is UTC+2 in winter
        "1002,America/New_York,01.07.2026 09:00\n"  # New York is UTC-4 in summer
        "1003,,31.12.2026 18:30\n"  # no zone: UTC
        "1004,Europe/Kyiv,2026-12-31T18:30:00\n"  # not the format: refused
    )
    mapping = "number=0,timezone=1,expire:DD.MM.YYYY HH:MM=2"
    result = read_members(text.encode(), skip_header=True, mapping=mapping)
    assert [m.member.expire for m in result.members] == [
        datetime(2026, 12, 31, 16, 30, tzinfo=UTC),
        datetime(2026, 7, 1, 13, 0, tzinfo=UTC),
        datetime(2026, 12, 31, 18, 30, tzinfo=UTC),
    ]
    assert reasons(result) == {
        5: 'expire (column 2 "expire"): "2026-12-31T18:30:00" does not'
        " match the date format DD.MM.YYYY HH:MM (e.g. 31.12.2026 18:30)"
    }
    # Without a timezone column every naive date is UTC; automatic expire keeps the API's
    # rule (no offset = UTC) even with a zone column.
    plain = read_members(b"1001,31.12.2026\n", mapping="number=0,expire:DD.MM.YYYY=1")
    assert plain.members[0].member.expire == datetime(2026, 12, 31, tzinfo=UTC)
    auto = read_members(b"1001,Europe/Kyiv,2026-12-31T18:30:00\n",
                        mapping="number=0,timezone=1,expire=2")  # fmt: skip
    assert auto.members[0].member.expire == datetime(2026, 12, 31, 18, 30, tzinfo=UTC)


def test_expire_cells_that_do_not_match_are_refused_naming_the_format() -> None:
    text = "\n".join(["1001,31.12.2026", "1002,2026-12-31", "1003,31.02.2026", "1004,",
                      "1005,12/31/2026", "1006,soon"]) + "\n"  # fmt: skip
    result = read_members(text.encode(), mapping="number=0,expire:DD.MM.YYYY=1")
    assert [m.line for m in result.members] == [1, 4]  # an empty cell is no expire
    assert result.members[1].member.expire is None
    got = reasons(result)
    assert set(got) == {2, 3, 5, 6}
    assert got[2] == ('expire (column 1): "2026-12-31" does not match the date format'
                      " DD.MM.YYYY (e.g. 31.12.2026)")  # fmt: skip
    assert got[3].startswith('expire (column 1): "31.02.2026" is not a valid DD.MM.YYYY date')
    assert all("DD.MM.YYYY" in got[line] for line in (5, 6))
    seconds = read_members(b"1001,2026-12-31\n", mapping="number=0,expire:epoch-seconds=1")
    assert "does not match the date format epoch-seconds (e.g. 1798741800)" in (
        seconds.errors[0].reason
    )
    # A bad zone is the zone's fault, not the date's.
    zone = read_members(b"1001,Mars/Base,31.12.2026\n",
                        mapping="number=0,timezone=1,expire:DD.MM.YYYY=2")  # fmt: skip
    assert zone.errors[0].reason.startswith("timezone (column 1)")


@pytest.mark.parametrize(
    ("cells", "guess"),
    [
        (["31.12.2026", "01.01.2027", ""], "DD.MM.YYYY"),
        (["31.12.2026 18:00"], "DD.MM.YYYY HH:MM"),
        (["01/02/2026", "13/02/2026"], "DD/MM/YYYY"),
        (["01/02/2026", "12/31/2026"], "MM/DD/YYYY"),
        (["2026-12-31 18:00"], "YYYY-MM-DD HH:MM"),
        (["1798741800"], "epoch-seconds"),
        (["1798741800000"], "auto"),
        (["2026-12-31T18:00:00+02:00", "2026-12-31"], "auto"),
        (["31.12.2026", "soon"], None),  # half is not enough
        (["31.12.2026", "01.01.2027", "2027-01-01"], "DD.MM.YYYY"),  # a typo does not hide it
        (["5", "7"], None),  # priorities, not milliseconds since 1970
        (["", " "], None),
    ],
)
def test_guessing_a_columns_date_format(cells: list[str], guess: str | None) -> None:
    assert guess_format(cells) == guess


def test_resolving_names_against_the_header() -> None:
    columns = parse_mapping("name=FIO,number=Phone,number=2,var:city=City").resolve(
        ["FIO", "Phone", "Mobile", "City"]
    )
    assert columns == Columns(
        numbers=((1, 1), (2, 0)),
        name=0,
        priority=None,
        timezone=None,
        expire=None,
        variables=(("city", 3),),
    )
    assert columns.width() == 4


def test_column_names_need_a_header_and_must_exist() -> None:
    with pytest.raises(MappingError, match="names need a header row"):
        iter_members(b"a,1\n", mapping="name=FIO,number=1")
    with pytest.raises(MappingError, match='no column named "Phne".*did you mean "Phone"'):
        read_members(b"FIO,Phone\na,1\n", skip_header=True, mapping="name=FIO,number=Phne")
    ok = read_members(b" FIO ,PHONE\na,1\n", skip_header=True, mapping="name=fio,number=Phone")
    assert ok.members[0].member.name == "a"  # names match ignoring case and spaces


def test_a_map_wider_than_the_file_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="uses column 5 but the first row has 2 columns"):
        read_members(b"a,1\n", mapping="name=0,number=5")
    with pytest.raises(MappingError, match="is --delimiter right"):
        read_members(b"a;1\n", mapping="name=0,number=1")  # ";" file read with ","


# --- streaming -----------------------------------------------------------------------------


def write_rows(path: Path, count: int) -> None:
    with path.open("w", encoding="cp1251", newline="") as out:
        out.write("ФИО;Телефон;Мобильный;Город\r\n")
        for i in range(count):
            out.write(f"Абонент {i};+38 050 {i:07d};+38 067 {i:07d};Київ\r\n")


def test_batches_stream_the_file_in_order(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    write_rows(path, 2500)
    batches = list(
        iter_members(
            path,
            encoding="cp1251",
            delimiter=";",
            skip_header=True,
            mapping="name=0,number=1,number=2",
            batch=1000,
        )
    )
    assert [b.rows for b in batches] == [1000, 1000, 500]
    assert [b.line for b in batches] == [1001, 2001, 2501]
    assert batches[-1].bytes_read == path.stat().st_size
    assert batches[0].bytes_read < batches[1].bytes_read
    lines = [m.line for b in batches for m in b.members]
    assert lines == list(range(2, 2502))


def test_a_header_only_file_gives_its_header_and_nothing_else() -> None:
    result = read_members(b"name,number\n", skip_header=True)
    assert (result.header, result.members, result.errors, result.rows) == (
        ["name", "number"],
        [],
        [],
        0,
    )
    assert read_members(b"").members == []


def test_100k_rows_timing(tmp_path: Path) -> None:
    """Prints the time (pytest -s) so a regression is visible; not asserted. About 2-3 s on
    these machines (~25-35 us a row: csv, two numbers, one variable, pydantic)."""
    path = tmp_path / "big.csv"
    write_rows(path, 100_000)
    started = time.perf_counter()
    accepted = refused = 0
    for batch in iter_members(
        path,
        encoding="cp1251",
        delimiter=";",
        skip_header=True,
        mapping="name=0,number=1,number=2,var:city=3",
    ):
        accepted += len(batch.members)
        refused += len(batch.errors)
    elapsed = time.perf_counter() - started
    print(f"\n100,000 rows ({path.stat().st_size / 1e6:.1f} MB, two numbers each): {elapsed:.2f} s")
    assert (accepted, refused) == (100_000, 0)

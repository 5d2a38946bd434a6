"""The CSV preview of the upload window: encoding and delimiter guesses (pure), and
``POST .../members/import/preview`` on the running dialer (nothing gets imported)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from apirig import PLAIN, running_dialer

from sipdialer.api.routes_preview import guess_delimiter, guess_encoding, guess_header, preview

RUSSIAN = (
    "ФИО;Телефон;Город\nИванов Иван Петрович;+380441234567;Москва\nСидорова Анна;0442223344;Киев\n"
)
UKRAINIAN = "Прізвище,Номер\nШевченко Тарас Григорович,0501112233\nЛеся Українка,0672223344\n"


@pytest.mark.parametrize("text", [RUSSIAN, UKRAINIAN])
@pytest.mark.parametrize("encoding", ["utf-8", "cp1251", "koi8-r"])
def test_cyrillic_code_pages_are_told_apart(text: str, encoding: str) -> None:
    if encoding == "koi8-r" and text is UKRAINIAN:
        encoding = "koi8-u"  # koi8-r has no і/ї/є; the guess names the Russian page
        expected = "koi8-r"
    else:
        expected = encoding
    assert guess_encoding(text.encode(encoding)) == expected


def test_short_names_and_latin_files() -> None:
    assert guess_encoding("Ян;1001\nОля;1002\n".encode("cp1251")) == "cp1251"
    assert guess_encoding("Ян;1001\nОля;1002\n".encode("koi8-r")) == "koi8-r"
    assert guess_encoding("José Müller;1001\nFrançois;1002\n".encode("latin-1")) == "latin-1"
    assert guess_encoding(b"name,number\nann,1001\n") == "utf-8"
    # A slice that cuts a UTF-8 character in two is still UTF-8.
    assert guess_encoding("Анна,1001\n".encode()[:-6]) == "utf-8"


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiters(delimiter: str) -> None:
    rows = [["name", "phone", "city"], ["Ann Lee", "+380441234567", "Kyiv"],
            ["Bob, Jr.", "0442223344", "Lviv"]]  # fmt: skip
    quoted = [[f'"{c}"' if "," in c else c for c in row] for row in rows]
    text = "".join(delimiter.join(row) + "\n" for row in quoted)
    assert guess_delimiter(text) == delimiter


def test_header_guess() -> None:
    assert guess_header([["name", "phone"], ["Ann", "1001"]])
    assert not guess_header([["Ann", "1001"], ["Bob", "1002"]])
    assert not guess_header([["name", "phone"]])


def test_preview_of_a_sliced_cp1251_file() -> None:
    data = RUSSIAN.encode("cp1251") * 50
    shown = preview(data[:1000], rows=5, cut=True)
    assert (shown.encoding, shown.delimiter) == ("cp1251", ";")
    assert shown.header_guess and shown.truncated
    assert shown.rows[0] == ["ФИО", "Телефон", "Город"]
    assert shown.rows[1] == ["Иванов Иван Петрович", "+380441234567", "Москва"]
    assert shown.lines == [1, 2, 3, 4, 5] and shown.columns == 3
    # The user's choice wins over the guess; the guess is still reported.
    forced = preview(data[:1000], encoding="koi8-r", delimiter=",", rows=2, cut=True)
    assert (forced.encoding, forced.delimiter) == ("koi8-r", ",")
    assert (forced.encoding_guess, forced.delimiter_guess) == ("cp1251", ";")
    assert forced.columns == 1 and forced.rows[0][0] != "ФИО;Телефон;Город"


def test_broken_csv_is_shown_up_to_the_break() -> None:
    shown = preview(b'a;1\rb;"2\r\n\x00c"d;3\n')
    assert shown.rows[0][0] == "a" and shown.delimiter in ",;\t|"


def test_lines_count_quoted_line_breaks_and_skip_blank_rows() -> None:
    shown = preview(b'name,number\n"Ann\nLee",1001\n\n,\nBob,1002\n')
    assert shown.rows == [["name", "number"], ["Ann\nLee", "1001"], ["Bob", "1002"]]
    assert shown.lines == [1, 2, 6]


async def test_preview_route(tmp_path: Path) -> None:
    async with running_dialer(tmp_path, ports=57000) as rig:
        url = f"{PLAIN}/members/import/preview"
        reply = await rig.client.post(url, content=RUSSIAN.encode("cp1251"),
                                      headers={"Content-Type": "text/csv"})  # fmt: skip
        assert reply.status_code == 200, reply.text
        data = reply.json()
        assert data["encoding_guess"] == data["encoding"] == "cp1251"
        assert data["delimiter_guess"] == ";" and data["header_guess"] is True
        assert data["rows"][2] == ["Сидорова Анна", "0442223344", "Киев"]
        assert not data["truncated"]
        reply = await rig.client.post(url, params={"encoding": "utf-16"}, content=b"a,1\n")
        assert reply.status_code == 422 and reply.json()["detail"][0]["loc"] == [
            "query", "encoding"
        ]  # fmt: skip
        reply = await rig.client.post(url, params={"delimiter": "ab"}, content=b"a,1\n")
        assert reply.status_code == 422
        reply = await rig.client.post(url, content=b"x" * (300 * 1024))
        assert reply.status_code == 413
        reply = await rig.client.post("/api/v2/dialer/nope/members/import/preview", content=b"")
        assert reply.status_code == 404
        reply = await rig.client.post(url, content=b"", headers={"X-Key": "wrong"})
        assert reply.status_code == 401
        # Nothing was imported.
        counts = rig.runner.members.counts(rig.runner.resolve_campaign("plain") or "")
        assert sum(counts.values()) == 0


DATED = (
    "name;phone;zone;until\n"
    "Ann;1001;Europe/Kyiv;31.12.2026\n"
    "Bob;1002;;01.07.2026\n"
    "Cid;1003;;2026-07-01\n"  # not DD.MM.YYYY: refused, naming the format
)


def test_preview_guesses_each_columns_date_format() -> None:
    shown = preview(DATED.encode())
    assert shown.header_guess  # the header row is left out of the guess
    # Phone numbers are no dates; the last column is DD.MM.YYYY despite its odd row.
    assert shown.date_formats == [None, None, None, "DD.MM.YYYY"]
    dotted = preview(b"name;phone;until\nAnn;1001;31.12.2026\nBob;1002;01.07.2026\n")
    assert dotted.date_formats == [None, None, "DD.MM.YYYY"]
    us = preview(b"1001,12/31/2026 ,1798741800\n1002,01/02/2026,1798741801\n")
    assert us.date_formats == [None, "MM/DD/YYYY", "epoch-seconds"]


async def test_import_with_an_expire_format(tmp_path: Path) -> None:
    async with running_dialer(tmp_path, ports=54000) as rig:
        url = f"{PLAIN}/members/import"
        mapping = "name=name,number=phone,timezone=zone,expire:DD.MM.YYYY=until"
        params = {"delimiter": ";", "skip_header": "true", "map": mapping}
        reply = await rig.client.post(url, params=params, content=DATED.encode())
        assert reply.status_code == 200, reply.text
        report = reply.json()
        assert (report["rows"], report["imported"]) == (3, 2)
        assert report["refused"] == [{
            "line": 4,
            "reason": 'expire (column 3 "until"): "2026-07-01" does not match the date format'
                      " DD.MM.YYYY (e.g. 31.12.2026)",
        }]  # fmt: skip
        listed = (await rig.client.get(f"{PLAIN}/members")).json()["items"]
        expire = {m["name"]: m["expire"] for m in listed}
        # Ann's midnight is Kyiv's (UTC+2); Bob has no zone, so UTC.
        assert expire == {
            "Ann": int(datetime(2026, 12, 30, 22, tzinfo=UTC).timestamp() * 1000),
            "Bob": int(datetime(2026, 7, 1, tzinfo=UTC).timestamp() * 1000),
        }
        reply = await rig.client.post(url, params=params | {"map": "number=1,expire:DD-MM=3"},
                                      content=DATED.encode())  # fmt: skip
        assert reply.status_code == 422
        detail = reply.json()["detail"][0]
        assert detail["loc"] == ["query", "map"] and "DD-MM" in detail["msg"]

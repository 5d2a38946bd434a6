"""The CSV preview of the upload window: encoding and delimiter guesses (pure), and
``POST .../members/import/preview`` on the running dialer (nothing gets imported)."""

from __future__ import annotations

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

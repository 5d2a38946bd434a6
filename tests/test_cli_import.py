"""``sipdialer import`` end to end into a real SQLite store: cp1251 with ``;``, a header, two
numbers per member, bad rows reported with their line, and a re-import that adds nothing
twice. The reader's own rules are tested in test_importer.py; here it is the command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import DATA

from sipdialer.cli import main
from sipdialer.config import load_config
from sipdialer.store.members import MemberStore
from sipdialer.store.migrations import open_store
from sipdialer.store.sync import load_campaigns

ROOT = Path(__file__).resolve().parent.parent
CP1251 = DATA / "csv" / "members_cp1251.csv"
CP1251_MAP = (
    "name=ФИО,number=Телефон,number=Мобильный,priority=3,var:city=Город,timezone=5,expire=6"
)
CP1251_ARGS = ["--encoding", "cp1251", "--delimiter", ";", "--skip-header", "--map", CP1251_MAP]


def write_config(folder: Path) -> Path:
    path = folder / "office.toml"
    path.write_text(
        f"""
[store]
url = "sqlite:///{folder / "office.db"}"
[[agents]]
id = "101"
password = "secret"
[[calendars]]
name = "office"
[[campaigns]]
name = "reminders"
calendar = "office"
agents = ["101"]
[[campaigns]]
name = "surveys"
calendar = "office"
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path)


def store_members(config: Path, campaign: str = "reminders") -> tuple[MemberStore, str]:
    engine = open_store(load_config(config).store.url)
    ids = {row.name: row.id for row in load_campaigns(engine)}
    return MemberStore(engine), ids[campaign]


def members_of(
    config: Path, campaign: str = "reminders"
) -> list[tuple[str, list[tuple[str, int]]]]:
    store, campaign_id = store_members(config, campaign)
    page = store.list(campaign_id)
    store.engine.dispose()
    return [(r.name, [(n.number, n.priority) for n in r.state.numbers]) for r in page.members]


def run_import(config: Path, *args: str, campaign: str = "reminders") -> int:
    return main(["import", "-c", str(config), "--campaign", campaign, *args])


def test_cp1251_file_into_the_store_then_again(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_import(config, str(CP1251), *CP1251_ARGS) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f'{CP1251} -> campaign "reminders": 10 rows read: 3 added, 0 already in the campaign,'
        " 7 refused"
    ]
    refused = err.splitlines()
    assert [line.split(": ", 2)[1] for line in refused] == [f"line {n}" for n in range(4, 11)]
    assert refused[0].startswith(f'{CP1251}: line 4: number (column 1 "Телефон"): "12ab34"')
    assert refused[5] == f'{CP1251}: line 9: number "+380671112233" is already on line 2'

    expected = [
        ("Іваненко Петро", [("+380441234567", 1), ("+380671112233", 0)]),
        ("Шевченко; Тарас", [("0447654321", 1)]),
        ("Петренко Олена", [("0501234567", 1), ("0679876543", 0)]),
    ]
    assert members_of(config) == expected
    store, campaign_id = store_members(config)
    first = store.list(campaign_id).members[0]
    assert (first.priority, first.timezone) == (5, "Europe/Kyiv")
    assert dict(first.variables) == {"city": "Київ"}
    store.engine.dispose()

    # The same file again: nothing added twice, every good row named as already there.
    assert run_import(config, str(CP1251), *CP1251_ARGS) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].endswith("10 rows read: 0 added, 3 already in the campaign, 7 refused")
    assert (
        lines[1]
        == "  already there: line 2: number '+380441234567' is already a number of member 1"
    )
    assert len(err.splitlines()) == 7
    assert members_of(config) == expected


def test_an_overlapping_file_adds_only_the_new_rows(config: Path) -> None:
    first = config.parent / "first.csv"
    first.write_text("Ann,+380501000001\nBob,+380501000002\n", encoding="utf-8")
    second = config.parent / "second.csv"
    second.write_text("Bob,+380501000002\nCid,+380501000003\n", encoding="utf-8")
    assert run_import(config, str(first)) == 0
    assert run_import(config, str(second)) == 0
    assert [name for name, _ in members_of(config)] == ["Ann", "Bob", "Cid"]
    # Numbers are unique per campaign: another campaign takes the same file.
    assert run_import(config, str(second), campaign="surveys") == 0
    assert [name for name, _ in members_of(config, "surveys")] == ["Bob", "Cid"]


def test_strict_exits_3_but_imports_the_good_rows(config: Path) -> None:
    assert run_import(config, str(CP1251), *CP1251_ARGS, "--strict") == 3
    assert len(members_of(config)) == 3


def test_a_file_with_only_good_rows_is_strictly_fine(config: Path) -> None:
    path = config.parent / "good.csv"
    path.write_text("name\tphone\tcity\nAnn\t050 100 00 01\tLviv\n", encoding="utf-8")
    args = ["--delimiter", "tab", "--skip-header", "--map", "name=name,number=phone,var:city=2"]
    assert run_import(config, str(path), *args, "--strict") == 0
    assert members_of(config) == [("Ann", [("0501000001", 0)])]


def test_expire_in_a_date_format_and_the_members_zone(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config.parent / "dates.csv"
    path.write_text("name;phone;zone;until\nAnn;1001;Europe/Kyiv;31.12.2026\n"
                    "Bob;1002;;31.12.2026\nCid;1003;;2026-12-31\n", encoding="utf-8")  # fmt: skip
    args = ["--delimiter", ";", "--skip-header",
            "--map", "name=name,number=phone,timezone=zone,expire:DD.MM.YYYY=until"]  # fmt: skip
    assert run_import(config, str(path), *args) == 0
    err = capsys.readouterr().err
    assert err == (f'{path}: line 4: expire (column 3 "until"): "2026-12-31" does not match'
                   " the date format DD.MM.YYYY (e.g. 31.12.2026)\n")  # fmt: skip
    store, campaign_id = store_members(config)
    expire = {r.name: r.expire for r in store.list(campaign_id).members}
    store.engine.dispose()
    # Ann's midnight is Kyiv's (UTC+2 in winter); Bob has no zone: UTC.
    assert expire == {"Ann": datetime(2026, 12, 30, 22, tzinfo=UTC),
                      "Bob": datetime(2026, 12, 31, tzinfo=UTC)}  # fmt: skip
    # An unknown format is a usage error before anything is read.
    assert run_import(config, str(path), "--map", "number=1,expire:DD-MM=3") == 2
    assert 'unknown date format "DD-MM"' in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--campaign", "nope", "FILE"], 'no campaign "nope" (campaigns: "reminders", "surveys")'),
        (["--campaign", "reminders", "missing.csv"], "missing.csv: no such file"),
        (["--campaign", "reminders", "FILE", "--skip-header", "--map", "name=0,number=Phone"],
         'no column named "Phone" in the header ("ФИО"'),
        (["--campaign", "reminders", "FILE", "--map", "name=0,number=9"],
         "the map uses column 9 but the first row has 7 columns"),
    ],
)  # fmt: skip
def test_what_stops_an_import(
    config: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(CP1251) if a == "FILE" else str(config.parent / a) if a.endswith(".csv") else a
            for a in args]  # fmt: skip
    argv = ["import", "-c", str(config), *args, "--encoding", "cp1251", "--delimiter", ";"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sipdialer import: ") and message in err, err


def test_a_bad_config_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[store]\nurl = 5\n", encoding="utf-8")
    assert main(["import", "-c", str(bad), "--campaign", "x", str(CP1251)]) == 1
    assert "store.url" in capsys.readouterr().err


def test_the_command_in_a_child_process(tmp_path: Path) -> None:
    """A cp1251 file written here (``;``, header, two numbers, a bad row) through the real
    entry point: exit status, stdout/stderr split, and ``members`` reading it back."""
    config = write_config(tmp_path)
    path = tmp_path / "office.csv"
    rows = [
        "Ім'я;Телефон;Мобільний;Місто",
        "Олена;+380441110001;+380671110001;Київ",
        "Борис;not-a-number;;Львів",
        "Юрій;;+380671110003;Одеса",
    ]
    path.write_bytes("\r\n".join(rows).encode("cp1251") + b"\r\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "sipdialer", "import", "-c", str(config), "--campaign",
            "reminders", str(path), "--encoding", "cp1251", "--delimiter", ";", "--skip-header",
            "--map", "name=0,number=1,number=2,var:city=Місто"]  # fmt: skip
    child = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert child.returncode == 0, child.stderr
    assert child.stdout.endswith("3 rows read: 2 added, 0 already in the campaign, 1 refused\n")
    assert child.stderr == (
        f'{path}: line 3: number (column 1 "Телефон"): "not-a-number" is not a dialable number'
        ' (expected an optional "+" and 1..32 of 0-9 * #, after removing spaces, dashes, dots'
        " and parentheses)\n"
    )
    listing = subprocess.run(
        [sys.executable, "-m", "sipdialer", "members", "-c", str(config), "--campaign",
         "reminders", "--format", "json"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    body = json.loads(listing.stdout)
    assert body["total"] == 2
    assert [(m["name"], m["variables"], [c["number"] for c in m["communications"]])
            for m in body["members"]] == [
        ("Олена", {"city": "Київ"}, ["+380441110001", "+380671110001"]),
        ("Юрій", {"city": "Одеса"}, ["+380671110003"]),
    ]  # fmt: skip

"""The trunk's behaviour table: matching, the compact text form, the demo's plan."""

from __future__ import annotations

import pytest

from sipdialer.simulate.behaviour import (
    DEFAULT_BEHAVIOURS,
    Behaviour,
    BehaviourError,
    match_behaviour,
    parse_behaviour,
)


def test_first_match_wins_and_unmatched_is_none() -> None:
    table = (Behaviour(r"^55", status=486), Behaviour(r"^5", status=404))
    assert match_behaviour(table, "5512").status == 486  # type: ignore[union-attr]
    assert match_behaviour(table, "5012").status == 404  # type: ignore[union-attr]
    assert match_behaviour(table, "6012") is None


@pytest.mark.parametrize(
    ("number", "status", "talk"),
    [
        ("1000001", 200, 5.0), ("+1000001", 200, 5.0), ("2000001", 486, None),
        ("3000001", 0, None), ("4000001", 603, None), ("5000001", 404, None),
        ("6000001", 480, None), ("7000001", 503, None), ("8000001", 200, 4.0),
        ("9000001", 200, 2.0), ("0000001", 200, 5.0),
    ],
)  # fmt: skip
def test_default_plan_by_first_digit(number: str, status: int, talk: float | None) -> None:
    behaviour = match_behaviour(DEFAULT_BEHAVIOURS, number)
    assert behaviour is not None
    assert (behaviour.status, behaviour.talk) == (status, talk)
    assert behaviour.early_media == number.lstrip("+").startswith("8")
    assert behaviour.challenge == number.startswith("0")


def test_parse_compact_form() -> None:
    b = parse_behaviour("^555 early ring=2 status=486 codec=pcma tone=600 dtmf=1#")
    assert b == Behaviour("^555", ring=2.0, status=486, early_media=True, codec="PCMA",
                          tone=600.0, dtmf="1#")  # fmt: skip
    assert parse_behaviour("^1 answer talk=3").talk == 3.0
    assert parse_behaviour("^1 talk=none").talk is None
    assert parse_behaviour("^3 noanswer").never_answers
    assert parse_behaviour("^2 busy").status == 486
    assert parse_behaviour("^0 challenge wav=/tmp/x.wav").challenge
    assert parse_behaviour("^0 early=no").early_media is False
    assert parse_behaviour(r"^\+?\d{7,15}$").answers


@pytest.mark.parametrize(
    "text",
    ["", "^1 bogus", "^1 ring=abc", "^1 status=99", "^1 codec=G729", "^1 nope=1", "([ answer",
     "^1 dtmf=12x", "^1 tone=5000", "^1 ring=-1", "^1 early=maybe"],
)  # fmt: skip
def test_bad_specs_say_why(text: str) -> None:
    with pytest.raises(BehaviourError):
        parse_behaviour(text)

"""X-Dialer-* headers and auto-answer headers: content, order, safety on the wire."""

from __future__ import annotations

import pytest

from sipdialer.calls.events import CallOrder
from sipdialer.calls.headers import (
    MAX_VALUE_LENGTH,
    MAX_VARIABLE_HEADERS,
    auto_answer_headers,
    dialer_headers,
    safe_header_name,
    safe_header_value,
)
from sipdialer.sip.headers import Headers
from sipdialer.sip.message import Request, parse_message


def order(**kw: object) -> CallOrder:
    base: dict[str, object] = dict(call_id="c1", campaign="reminders", member_id="42",
                                   member_name="Alice", number="+380441234567",
                                   agent_id="101")  # fmt: skip
    base.update(kw)
    return CallOrder(**base)  # type: ignore[arg-type]


def test_headers_in_order() -> None:
    assert dialer_headers(order(variables={"product": "x", "city": "Kyiv"})) == [
        ("X-Dialer-Campaign", "reminders"),
        ("X-Dialer-Member-Id", "42"),
        ("X-Dialer-Member-Name", "Alice"),
        ("X-Dialer-Number", "+380441234567"),
        ("X-Dialer-Var-product", "x"),
        ("X-Dialer-Var-city", "Kyiv"),
    ]


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("Alice\r\nVia: SIP/2.0/UDP evil", "Alice Via: SIP/2.0/UDP evil"),
        ("a\tb\x00c\x7fd\x85e\u2028f", "a b c d e f"),
        ("  spaced   out  ", "spaced out"),
        ("Олена Коваль", "Олена Коваль"),  # UTF-8 kept (TEXT-UTF8)
        ("bad\udcffbyte", "badbyte"),  # lone surrogate from surrogateescape dropped
        ("", ""),
    ],
)
def test_safe_values(raw: str, safe: str) -> None:
    assert safe_header_value(raw) == safe


def test_long_values_are_cut() -> None:
    assert len(safe_header_value("x" * 10_000)) == MAX_VALUE_LENGTH


@pytest.mark.parametrize(("raw", "safe"), [("crm_id", "crm_id"), ("a b:c", "a_b_c"),
                                           ("Ім'я", ""), ("x" * 100, "x" * 64),
                                           ("_a_", "a")])  # fmt: skip
def test_safe_names(raw: str, safe: str) -> None:
    assert safe_header_name(raw) == safe


def test_variables_safe_unique_and_bounded() -> None:
    variables = {"a b": "1", "A_B": "2", "!!!": "3", "Ім'я": "4"}
    assert dialer_headers(order(variables=variables))[4:] == [
        ("X-Dialer-Var-a_b", "1"),  # A_B is the same header name to the receiver
    ]  # "!!!" and "Ім'я" keep no letter of the config's name rule: left out
    many = {f"v{i}": str(i) for i in range(200)}
    assert len(dialer_headers(order(variables=many))) == 4 + MAX_VARIABLE_HEADERS


def test_hostile_record_survives_the_wire() -> None:
    """A request carrying the headers serialises and parses back to the safe values."""
    hostile = order(member_name="Eve\r\nContent-Length: 0\r\n\r\nINVITE", number="1\n2",
                    variables={"note\r\nX": "Привіт\x00світ"})  # fmt: skip
    headers = Headers([("Via", "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx"),
                       ("From", "<sip:a@b>;tag=1"), ("To", "<sip:c@d>"), ("Call-ID", "x"),
                       ("CSeq", "1 INVITE")])  # fmt: skip
    for name, value in dialer_headers(hostile):
        headers.add(name, value)
    message = parse_message(Request(headers, b"", "INVITE", "sip:c@d").to_bytes())
    assert message.header("X-Dialer-Member-Name") == "Eve Content-Length: 0 INVITE"
    assert message.header("X-Dialer-Number") == "1 2"
    assert message.header("x-dialer-var-note__x") == "Привіт світ"
    assert message.body == b""


def test_auto_answer_headers_exactly() -> None:
    assert auto_answer_headers("192.0.2.10") == [
        ("Call-Info", "<sip:192.0.2.10>;answer-after=0"),
        ("Alert-Info", "<http://localhost>;info=alert-autoanswer"),
    ]
    assert auto_answer_headers("pbx.example:5070")[0][1] == "<sip:pbx.example:5070>;answer-after=0"
    assert auto_answer_headers("2001:db8::1")[0][1] == "<sip:[2001:db8::1]>;answer-after=0"
    assert auto_answer_headers("[2001:db8::1]")[0][1] == "<sip:[2001:db8::1]>;answer-after=0"


@pytest.mark.parametrize("host", ["", "a b", "x>;evil", "a\r\nb"])
def test_auto_answer_refuses_non_hosts(host: str) -> None:
    with pytest.raises(ValueError):
        auto_answer_headers(host)

"""The Headers container and the typed header values."""

from __future__ import annotations

import pytest

from sipdialer.sip.errors import ParseError
from sipdialer.sip.headers import (
    BRANCH_MAGIC,
    MAX_CSEQ,
    Contact,
    CSeq,
    Headers,
    NameAddr,
    Reason,
    Via,
    canonical_name,
    format_params,
    param_value,
    parse_contacts,
    parse_cseq,
    parse_int_header,
    parse_media_type,
    parse_name_addr,
    parse_params,
    parse_reason,
    parse_via,
    split_list,
)
from sipdialer.sip.uri import SipUri, TelUri

# --- the container ----------------------------------------------------------------------


def sample() -> Headers:
    return Headers(
        [
            ("v", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"),
            ("Via", "SIP/2.0/UDP c;branch=z9hG4bK3"),
            ("X-Thing", "one"),
            ("call-id", "id@h"),
            ("x-thing", "two"),
        ]
    )


def test_names_are_canonical_and_lookups_ignore_case() -> None:
    headers = sample()
    assert [name for name, _ in headers] == ["Via", "Via", "X-Thing", "Call-ID", "x-thing"]
    assert headers.get("VIA") == headers.get("v") == headers.get("Via")
    assert headers.get("I") == "id@h"
    assert headers.get_lines("X-THING") == ["one", "two"]
    assert headers.get("missing") is None
    assert "call-id" in headers and "Route" not in headers and 3 not in headers
    assert len(headers) == 5


def test_canonical_name() -> None:
    assert canonical_name("cseq") == "CSeq"
    assert canonical_name("WWW-AUTHENTICATE") == "WWW-Authenticate"
    assert canonical_name("m") == "Contact" and canonical_name("L") == "Content-Length"
    assert canonical_name("X-Mine") == "X-Mine"


def test_get_all_splits_lists_but_not_single_valued_headers() -> None:
    headers = sample()
    assert headers.get_all("Via") == [
        "SIP/2.0/UDP a;branch=z9hG4bK1",
        "SIP/2.0/UDP b;branch=z9hG4bK2",
        "SIP/2.0/UDP c;branch=z9hG4bK3",
    ]
    headers.add("WWW-Authenticate", 'Digest realm="a", nonce="b"')
    headers.add("Date", "Sat, 13 Nov 2010 23:29:00 GMT")
    assert headers.get_all("www-authenticate") == ['Digest realm="a", nonce="b"']
    assert headers.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]


def test_add_prepend_set_remove_pop_first() -> None:
    headers = sample()
    headers.prepend("Via", "SIP/2.0/TCP top;branch=z9hG4bK0")
    assert headers.get("Via") == "SIP/2.0/TCP top;branch=z9hG4bK0"
    headers.prepend("Route", "<sip:r>")
    assert next(iter(headers)) == ("Route", "<sip:r>")
    assert headers.pop_first("Via") == "SIP/2.0/TCP top;branch=z9hG4bK0"
    assert headers.pop_first("Via") == "SIP/2.0/UDP a;branch=z9hG4bK1"  # a list loses its head
    assert headers.get("Via") == "SIP/2.0/UDP b;branch=z9hG4bK2"
    assert headers.pop_first("Nothing") is None
    headers.set("x-THING", "only")
    assert headers.get_lines("X-Thing") == ["only"]
    assert [n for n, _ in headers].index("X-Thing") == 3  # where the first one stood
    headers.set("Subject", "new")
    assert list(headers)[-1] == ("Subject", "new")
    headers.remove("via")
    assert headers.get("Via") is None
    headers.remove("via")  # nothing left: no error


def test_copy_and_equality() -> None:
    headers = sample()
    copy = headers.copy()
    assert copy == headers and copy is not headers
    copy.add("Subject", "x")
    assert copy != headers
    assert headers != "not headers"


def test_memo_is_dropped_on_every_change() -> None:
    headers = Headers([("CSeq", "1 INVITE")])
    calls: list[int] = []

    def build(h: Headers) -> CSeq:
        calls.append(1)
        return parse_cseq(h.get("CSeq") or "")

    assert headers.memo("CSeq", build) is headers.memo("CSeq", build)
    assert len(calls) == 1
    for change in (
        lambda: headers.add("X", "1"),
        lambda: headers.set("CSeq", "2 INVITE"),
        lambda: headers.prepend("X", "0"),
        lambda: headers.pop_first("X"),
        lambda: headers.remove("X"),
    ):
        change()
        headers.memo("CSeq", build)
    assert len(calls) == 6
    assert headers.memo("CSeq", build) == CSeq(2, "INVITE")


# --- lists and parameters ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("a, b,c", ["a", "b", "c"]),
        ('"Doe, John" <sip:j@h>, <sip:k@h;x=1,2>', ['"Doe, John" <sip:j@h>', "<sip:k@h;x=1,2>"]),
        ('"a \\" , b" <sip:x>', ['"a \\" , b" <sip:x>']),
        (" , ,a,, ", ["a"]),
        ("", []),
        ("   ", []),
    ],
)
def test_split_list(value: str, parts: list[str]) -> None:
    assert split_list(value) == parts


def test_parse_params() -> None:
    assert parse_params(' ; Tag = x ;lr; q="0.5" ') == (("tag", "x"), ("lr", None), ("q", "0.5"))
    assert parse_params(';text="a;b \\"c\\""') == (("text", 'a;b "c"'),)
    assert parse_params("") == ()
    for bad in (";", ";;", "x;a=1", ";a=", ";a=b c", ';a="open', ";a b=1"):
        with pytest.raises(ParseError):
            parse_params(bad)


def test_param_value_and_format_params() -> None:
    params = parse_params(';tag=1;lr;text="a b"')
    assert param_value(params, "tag") == "1"
    assert param_value(params, "lr") == ""
    assert param_value(params, "nope") is None
    assert format_params(params) == ';tag=1;lr;text="a b"'
    assert format_params((("received", "2001:db8::1"),)) == ";received=2001:db8::1"
    assert format_params((("x", 'q"uote'),)) == ';x="q\\"uote"'


# --- Via --------------------------------------------------------------------------------


def test_parse_via_typical_and_with_lws() -> None:
    via = parse_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport;received=192.0.2.9")
    assert via == Via(
        "UDP",
        "192.0.2.1",
        5060,
        (("branch", "z9hG4bKabc"), ("rport", None), ("received", "192.0.2.9")),
    )
    assert via.branch.startswith(BRANCH_MAGIC) if via.branch else False
    assert via.wants_rport and via.rport is None and via.received == "192.0.2.9"
    assert str(via) == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport;received=192.0.2.9"
    spaced = parse_via("sip / 2.0 / tcp   host.example.com : 5061 ; branch = z9hG4bKx")
    assert (spaced.protocol, spaced.transport, spaced.host, spaced.port) == (
        "SIP/2.0",
        "TCP",
        "host.example.com",
        5061,
    )
    v6 = parse_via("SIP/2.0/TLS [2001:db8::9]:5061;maddr=[2001:db8::1]")
    assert (v6.host, v6.port, v6.maddr) == ("[2001:db8::9]", 5061, "[2001:db8::1]")


def test_via_with_params_and_rport() -> None:
    via = parse_via("SIP/2.0/UDP h;branch=z9hG4bK1;rport")
    answered = via.with_params(rport="5070", received="198.51.100.1")
    assert answered.rport == 5070 and answered.received == "198.51.100.1"
    assert str(answered) == "SIP/2.0/UDP h;branch=z9hG4bK1;rport=5070;received=198.51.100.1"
    assert parse_via("SIP/2.0/UDP h;rport=²").rport is None


@pytest.mark.parametrize(
    "value",
    [
        "SIP/2.0 UDP host",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP ",
        "SIP/2.0/UDP host:port",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP host:５０６０",
        "SIP/2.0/UDP [::1",
        "SIP/2.0/UDP a b",
        "SIP/2.0/UDP host;;",
        "SIP/2.0/U<P host",
    ],
)
def test_bad_via(value: str) -> None:
    with pytest.raises(ParseError):
        parse_via(value)


# --- name-addr ---------------------------------------------------------------------------


def test_parse_name_addr_forms() -> None:
    quoted = parse_name_addr('"Alice \\"A\\"" <sip:alice@a.example.com>;tag=88')
    assert quoted.display_name == 'Alice "A"' and quoted.tag == "88"
    assert isinstance(quoted.uri, SipUri) and quoted.uri.user == "alice"
    assert str(quoted) == '"Alice \\"A\\"" <sip:alice@a.example.com>;tag=88'
    tokens = parse_name_addr("Bob  Smith <sip:bob@b>")
    assert tokens.display_name == "Bob Smith"
    bare = parse_name_addr("sip:carol@c;tag=1;user=phone")
    assert bare.params == (("tag", "1"), ("user", "phone")) and not bare.bracketed
    assert isinstance(bare.uri, SipUri) and bare.uri.params == ()
    tel = parse_name_addr("<tel:+15551234567>")
    assert isinstance(tel.uri, TelUri) and tel.uri.number == "+15551234567"
    assert NameAddr(tel.uri).with_params(tag="x").tag == "x"
    with pytest.raises(ParseError) as caught:
        _ = tel.sip_uri
    assert caught.value.status_hint == 416


@pytest.mark.parametrize(
    "value",
    [
        '"unterminated <sip:a@b>',
        '"no brackets" sip:a@b',
        "Bell, Alexander <sip:a@b>",
        "< sip:a@b>",
        "<sip:a@b",
        "sip:a@b?x=y",
        "<sip:a@b>;;",
        "<>",
        "",
    ],
)
def test_bad_name_addr(value: str) -> None:
    with pytest.raises(ParseError):
        parse_name_addr(value)


# --- Contact -----------------------------------------------------------------------------


def test_contacts() -> None:
    contacts = parse_contacts(["<sip:a@h>;expires=60;q=0.7", "sip:b@h", '"C" <sip:c@h>;q=1'])
    assert [c.expires for c in contacts] == [60, None, None]
    assert [c.q for c in contacts] == [0.7, 1.0, 1.0]
    assert str(contacts[1]) == "<sip:b@h>"
    (star,) = parse_contacts(["*"])
    assert star.is_wildcard and star.expires is None and star.q == 1.0 and str(star) == "*"
    with pytest.raises(ParseError):
        parse_contacts(["*", "<sip:a@h>"])
    assert parse_contacts([]) == []


@pytest.mark.parametrize(
    ("params", "expires"),
    [(";expires=0", 0), (";expires=280297596632815", 2**32 - 1), (";expires=000000000000007", 7)],
)
def test_contact_expires_is_clipped(params: str, expires: int) -> None:
    assert Contact(parse_name_addr("<sip:a@h>" + params)).expires == expires


@pytest.mark.parametrize("params", [";expires=soon", ";expires=-1", ";expires=²"])
def test_contact_bad_expires(params: str) -> None:
    with pytest.raises(ParseError):
        _ = Contact(parse_name_addr("<sip:a@h>" + params)).expires


@pytest.mark.parametrize("q", ["2", "1.5", "nan", "inf", "0.1234", "-0", "1e0", "0x1", "1_0", "."])
def test_contact_bad_q(q: str) -> None:
    with pytest.raises(ParseError):
        _ = Contact(parse_name_addr(f"<sip:a@h>;q={q}")).q


# --- CSeq, Reason, numbers, media types ----------------------------------------------------


def test_cseq() -> None:
    assert parse_cseq("1 INVITE") == CSeq(1, "INVITE")
    assert parse_cseq("  0009 \t INVITE ") == CSeq(9, "INVITE")
    assert parse_cseq(f"{2**32 - 1} ACK").number == 2**32 - 1
    assert str(CSeq(5, "BYE")) == "5 BYE" and MAX_CSEQ == 2**31 - 1
    for bad in (
        "1",
        "INVITE",
        "x INVITE",
        "1 INVITE extra",
        f"{2**32} ACK",
        "-1 BYE",
        "١ BYE",
        "1 IN<VITE",
    ):
        with pytest.raises(ParseError):
            parse_cseq(bad)


def test_reason() -> None:
    reason = parse_reason('Q.850 ;cause=16 ;text="Terminated"')
    assert reason == Reason("Q.850", 16, "Terminated")
    assert str(reason) == 'Q.850;cause=16;text="Terminated"'
    assert parse_reason("SIP;cause=abc").cause is None
    assert parse_reason("SIP;cause=9999999").cause is None
    assert str(Reason("SIP", None)) == "SIP"
    with pytest.raises(ParseError):
        parse_reason(";cause=1")


def test_int_header() -> None:
    assert parse_int_header(" 70 ", "Max-Forwards", 255) == 70
    for bad in ("", "-1", "1.5", "256", "12345678901", "٣"):
        with pytest.raises(ParseError):
            parse_int_header(bad, "Max-Forwards", 255)


def test_media_type() -> None:
    assert parse_media_type("Application/SDP") == ("application/sdp", ())
    assert parse_media_type('multipart/mixed ; boundary="abc def"') == (
        "multipart/mixed",
        (("boundary", "abc def"),),
    )
    for bad in ("text", "/sdp", "text/", "te xt/plain", "text/plain;", "a/b/c"):
        with pytest.raises(ParseError):
            parse_media_type(bad)

"""Parsing and serialising whole messages: typical traffic, limits, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import DATA, crlf, load

from sipdialer.sip.errors import LocalProtocolError, ParseError
from sipdialer.sip.headers import CSeq, Headers
from sipdialer.sip.message import (
    MAX_HEADER_LENGTH,
    MAX_HEADERS,
    MAX_MESSAGE_SIZE,
    MAX_URI_LENGTH,
    Message,
    Request,
    Response,
    check_request,
    check_response,
    header_names,
    is_sip_date,
    parse_message,
    response_for,
)

SDP = crlf("""v=0
o=alice 2890844526 2890844526 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 49170 RTP/AVP 0 8 101
a=rtpmap:101 telephone-event/8000
""")

# Canonical form: canonical names, "Name: value", Content-Length right: to_bytes() of
# the parsed message gives back these exact bytes.
INVITE = (
    crlf(f"""INVITE sip:+15551234567@trunk.example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9a1c;rport
Max-Forwards: 70
From: "Dialer" <sip:dialer@192.0.2.10>;tag=9fxced76sl
To: <sip:+15551234567@trunk.example.com>
Call-ID: 3848276298220188511@192.0.2.10
CSeq: 1 INVITE
Contact: <sip:dialer@192.0.2.10:5060>
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS
Content-Type: application/sdp
Content-Length: {len(SDP)}

""")
    + SDP
)

OK = crlf("""SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9a1c;rport=5060;received=192.0.2.10
From: "Dialer" <sip:dialer@192.0.2.10>;tag=9fxced76sl
To: <sip:+15551234567@trunk.example.com>;tag=8321234356
Call-ID: 3848276298220188511@192.0.2.10
CSeq: 1 INVITE
Contact: <sip:+15551234567@198.51.100.7:5060>
Content-Length: 0

""")

REGISTER = crlf("""REGISTER sip:pbx.example.com SIP/2.0
Via: SIP/2.0/TCP 10.0.0.23:49152;branch=z9hG4bK-524287-1---a1b2c3;rport
Max-Forwards: 70
Contact: <sip:1001@10.0.0.23:49152;transport=tcp>;expires=3600;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"
To: <sip:1001@pbx.example.com>
From: <sip:1001@pbx.example.com>;tag=37a6c84a
Call-ID: NjM4YjQ5ZDk0ZGYxNDg3ZWE3ZGI2YjE4MjQzYjM4MTI
CSeq: 2 REGISTER
Expires: 3600
Authorization: Digest username="1001",realm="pbx.example.com",nonce="abc",uri="sip:pbx.example.com",response="0123456789abcdef0123456789abcdef",algorithm=MD5
User-Agent: Zoiper rv2.10.20.3
Content-Length: 0

""")  # noqa: E501


def test_parse_request_from_raw_bytes() -> None:
    request = parse_message(INVITE)
    assert isinstance(request, Request)
    check_request(request)
    assert (request.method, request.uri) == ("INVITE", "sip:+15551234567@trunk.example.com")
    assert request.call_id == "3848276298220188511@192.0.2.10"
    assert request.cseq == CSeq(1, "INVITE")
    assert request.top_via.branch == "z9hG4bK74bf9a1c" and request.top_via.wants_rport
    assert request.top_via.sent_by == "192.0.2.10:5060"
    assert request.from_.tag == "9fxced76sl" and request.from_.display_name == "Dialer"
    assert request.to.tag is None
    assert request.max_forwards == 70
    assert request.content_type == "application/sdp"
    assert request.body == SDP
    assert request.defect is None


def test_parse_response() -> None:
    response = parse_message(OK)
    assert isinstance(response, Response)
    check_response(response)
    assert (response.status_code, response.reason) == (200, "OK")
    assert response.is_success and not response.is_provisional
    via = response.top_via
    assert (via.rport, via.received) == (5060, "192.0.2.10")
    assert response.to.tag == "8321234356"
    assert response.body == b""


def test_parse_register_with_auth_header_not_split_at_commas() -> None:
    request = parse_message(REGISTER)
    assert isinstance(request, Request)
    check_request(request)
    assert len(request.headers.get_all("Authorization")) == 1
    (contact,) = request.contacts
    assert contact.expires == 3600
    assert contact.address is not None
    assert (
        contact.address.param("+sip.instance") == "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"
    )


@pytest.mark.parametrize("data", [INVITE, OK, REGISTER], ids=["invite", "200", "register"])
def test_canonical_message_serialises_byte_exact(data: bytes) -> None:
    assert parse_message(data).to_bytes() == data


def test_compact_and_odd_case_names_become_canonical() -> None:
    data = crlf("""OPTIONS sip:a@example.com SIP/2.0
v: SIP/2.0/UDP h;branch=z9hG4bKx
f: <sip:b@example.com>;tag=1
t: <sip:a@example.com>
i: abc
cseq: 1 OPTIONS
MAX-FORWARDS: 70
X-Custom-thing: yes
l: 0

""")
    request = parse_message(data)
    assert header_names(request) == [
        "Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards", "X-Custom-thing", "Content-Length",
    ]  # fmt: skip
    assert request.headers.get("x-custom-THING") == "yes"  # unknown names ignore case
    assert request.to_bytes().startswith(b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0")


def test_folded_header_is_unfolded_with_one_space() -> None:
    data = crlf("""OPTIONS sip:a@example.com SIP/2.0
Subject: first
   second
\tthird
Route:
 <sip:p1.example.com;lr>,
 <sip:p2.example.com;lr>
Content-Length: 0

""")
    request = parse_message(data)
    assert request.header("Subject") == "first second third"
    assert request.headers.get_all("Route") == [
        "<sip:p1.example.com;lr>",
        "<sip:p2.example.com;lr>",
    ]


def test_leading_crlfs_and_bare_lf_are_tolerated() -> None:
    request = parse_message(b"\r\n\r\n" + INVITE)
    assert isinstance(request, Request) and request.body == SDP
    bare = INVITE.replace(b"\r\n", b"\n")
    lf_request = parse_message(bare)
    assert lf_request.headers == request.headers
    assert lf_request.body == SDP.replace(b"\r\n", b"\n")
    mixed = parse_message(INVITE.replace(b"\r\n\r\n", b"\r\n\n", 1))  # CRLF lines, LF blank line
    assert mixed.headers == request.headers and mixed.body == SDP


def test_datagram_body_past_content_length_is_ignored() -> None:
    request = parse_message(OK + b"garbage after the message")
    assert request.body == b"" and request.defect is None


def test_no_content_length_on_a_datagram_takes_the_rest() -> None:
    data = INVITE.replace(f"Content-Length: {len(SDP)}\r\n".encode(), b"")
    request = parse_message(data)
    assert request.body == SDP and request.defect is None
    with pytest.raises(ParseError):
        parse_message(data, stream=True)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\r\n\r\n", "only CRLF"),
        (b"hello world", "no blank line"),
        (b"INVITE sip:a@b\r\n\r\n", "two-part Request-Line"),
        (b"SIP/2.0 20 OK\r\n\r\n", "two-digit status"),
        (b"SIP/2.0 099 Huh\r\n\r\n", "status below 100"),
        (b"SIP/2.0 700 Huh\r\n\r\n", "status above 699"),
        (b"SIP/2.0 2OO OK\r\n\r\n", "letters in the status"),
        (crlf("OPTIONS sip:a@b SIP/2.0\nVia: x\ry\n\n"), "bare CR"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\ny\r\n\r\n", "bare LF in CRLF text"),
    ],
)
def test_unbuildable_input_raises(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_message(data)
    assert caught.value.status_hint == 400, reason


def request_with(*lines: str, start: str = "OPTIONS sip:a@example.com SIP/2.0") -> bytes:
    base = [
        "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bKabc",
        "From: <sip:b@example.com>;tag=1",
        "To: <sip:a@example.com>",
        "Call-ID: abc@h",
        "CSeq: 1 OPTIONS",
        "Max-Forwards: 70",
    ]
    return "\r\n".join([start, *base, *lines, "Content-Length: 0", "", ""]).encode()


def verdict(data: bytes) -> int | None:
    request = parse_message(data)
    assert isinstance(request, Request)
    try:
        check_request(request)
    except ParseError as exc:
        return exc.status_hint
    return None


def test_baseline_request_passes() -> None:
    assert verdict(request_with()) is None


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (request_with(start="OPTIONS sip:a@example.com SIP/3.0"), 505),
        (request_with(start="OPTIONS sip:a@example.com HTTP/1.1"), 400),
        (request_with(start="OPT{ONS sip:a@example.com SIP/2.0"), 400),
        (request_with("NoColonHere"), 400),
        (request_with("Bad Name: x"), 400),
        (request_with("Max-Forwards: 256"), 400),
        (request_with("Expires: soon"), 400),
        (request_with("Date: Sat, 13 Nov 2010 23:29:00 GMT"), None),
        (request_with("Content-Type: text"), 400),
        (request_with("Contact: *", "Contact: <sip:x@y>"), 400),
        (request_with("Contact: <sip:x@y>;q=2"), None),  # q is checked where it is used
        (request_with(start="OPTIONS tel:+15551234 SIP/2.0"), None),
        (request_with(start="OPTIONS sips:a@example.com SIP/2.0"), None),
        (request_with(start="OPTIONS mailto:a@example.com SIP/2.0"), 416),
        (request_with(start="OPTIONS sip:" + "a" * MAX_URI_LENGTH + " SIP/2.0"), 414),
        (request_with("Via: SIP/3.0/UDP h2;branch=z9hG4bKx"), 505),
    ],
)
def test_check_request_status_hints(data: bytes, status: int | None) -> None:
    assert verdict(data) == status


def test_body_without_content_type_is_refused() -> None:
    headers = parse_message(request_with()).headers
    with pytest.raises(ParseError):
        check_request(Request(headers, b"x", "OPTIONS", "sip:a@example.com"))


def test_check_response_requires_the_matching_headers() -> None:
    response = parse_message(OK)
    assert isinstance(response, Response)
    response.headers.remove("CSeq")
    with pytest.raises(ParseError):
        check_response(response)
    bad_version = parse_message(OK.replace(b"SIP/2.0 200", b"SIP/2.1 200", 1))
    assert isinstance(bad_version, Response)
    with pytest.raises(ParseError):
        check_response(bad_version)


# --- size limits -----------------------------------------------------------------------


def test_message_over_the_size_limit_is_513() -> None:
    big = INVITE + b"x" * (MAX_MESSAGE_SIZE - len(INVITE) + 1)
    with pytest.raises(ParseError) as caught:
        parse_message(big)
    assert caught.value.status_hint == 513
    parse_message(big[:MAX_MESSAGE_SIZE])  # exactly at the limit is fine


def test_too_many_headers_is_400() -> None:
    with pytest.raises(ParseError) as caught:
        parse_message(request_with(*["X-H: 1"] * MAX_HEADERS))
    assert caught.value.status_hint == 400
    parse_message(request_with(*["X-H: 1"] * (MAX_HEADERS - 7)))  # 6 base + Content-Length


def test_too_long_header_is_400() -> None:
    with pytest.raises(ParseError) as caught:
        parse_message(request_with("Subject: " + "s" * MAX_HEADER_LENGTH))
    assert caught.value.status_hint == 400
    parse_message(request_with("Subject: " + "s" * (MAX_HEADER_LENGTH - 9)))


def test_too_long_folded_header_is_400() -> None:
    folded = "Subject: s" + "\r\n s" * (MAX_HEADER_LENGTH // 2)
    with pytest.raises(ParseError) as caught:
        parse_message(request_with(folded))
    assert caught.value.status_hint == 400


def test_too_long_request_uri_is_414() -> None:
    assert verdict(request_with(start=f"OPTIONS sip:{'u' * MAX_URI_LENGTH}@h SIP/2.0")) == 414


# --- serialising -------------------------------------------------------------------------


def test_to_bytes_rewrites_content_length_and_adds_a_missing_one() -> None:
    request = parse_message(INVITE)
    request.body = b"v=0\r\n"
    assert b"\r\nContent-Length: 5\r\n\r\nv=0\r\n" in request.to_bytes()
    request.headers.remove("Content-Length")
    assert request.to_bytes().endswith(
        b"Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"
    )


@pytest.mark.parametrize("value", ["a\r\nInjected: yes", "a\nb", "a\rb"])
def test_to_bytes_refuses_line_breaks_in_values(value: str) -> None:
    request = Request(Headers([("Subject", value)]), b"", "OPTIONS", "sip:a@b")
    with pytest.raises(LocalProtocolError):
        request.to_bytes()
    response = Response(Headers(), b"", 200, value)
    with pytest.raises(LocalProtocolError):
        response.to_bytes()


def test_undecodable_octets_survive_a_round_trip() -> None:
    data = request_with("Subject: cafe").replace(b"cafe", b"caf\xe9")  # Latin-1, not UTF-8
    request = parse_message(data)
    assert request.to_bytes() == data


def roundtrip(message: Message) -> Message:
    again = parse_message(message.to_bytes())
    assert again.to_bytes() == message.to_bytes()  # a second pass changes nothing
    return again


def same_values(a: Message, b: Message) -> None:
    assert type(a) is type(b)
    assert [h for h in a.headers if h[0] != "Content-Length"] == [
        h for h in b.headers if h[0] != "Content-Length"
    ]
    assert a.body == b.body
    if isinstance(a, Request) and isinstance(b, Request):
        assert (a.method, a.uri) == (b.method, b.uri)
    elif isinstance(a, Response) and isinstance(b, Response):
        assert (a.status_code, a.reason) == (b.status_code, b.reason)


VALID_TORTURE = sorted(
    p.stem
    for p in (DATA / "rfc4475").glob("*.dat")
    if p.stem
    in {
        "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq",
        "semiuri", "transports", "mpart01", "unreason", "noreason", "unksm2", "bext01",
        "invut", "regaut01", "bcast", "zeromf", "cparam01", "cparam02", "regescrt", "sdp01",
        "inv2543",
    }
)  # fmt: skip


@pytest.mark.parametrize("name", VALID_TORTURE)
def test_round_trip_of_valid_torture_messages(name: str) -> None:
    message = parse_message(load(f"rfc4475/{name}.dat"))
    again = roundtrip(message)
    same_values(message, again)
    assert again == message or message.headers.get("Content-Length") is None
    if isinstance(again, Request):
        check_request(again)
        assert again.vias == message.vias and again.to == message.to
    else:
        assert isinstance(again, Response)
        check_response(again)


@pytest.mark.parametrize("data", [INVITE, OK, REGISTER], ids=["invite", "200", "register"])
def test_round_trip_of_typical_messages(data: bytes) -> None:
    message = parse_message(data)
    again = roundtrip(message)
    assert again == message


def test_message_equality_ignores_the_defect_but_not_headers() -> None:
    a, b = parse_message(INVITE), parse_message(INVITE)
    assert a == b
    b.headers.set("Max-Forwards", "69")
    assert a != b


def test_typed_values_follow_header_edits() -> None:
    request = parse_message(INVITE)
    assert request.cseq.number == 1 and request.top_via.branch == "z9hG4bK74bf9a1c"
    request.headers.set("CSeq", "2 INVITE")
    request.headers.prepend("Via", "SIP/2.0/TCP proxy.example.com;branch=z9hG4bKtop")
    assert request.cseq.number == 2
    assert request.top_via.host == "proxy.example.com"
    vias = request.vias
    vias.clear()  # the caller's copy: the message keeps its own
    assert len(request.vias) == 2


# --- responses ---------------------------------------------------------------------------


def test_response_for_copies_the_rfc_3261_headers() -> None:
    request = parse_message(
        INVITE.replace(
            b"Max-Forwards: 70\r\n", b"Record-Route: <sip:p.example.com;lr>\r\nTimestamp: 54\r\n"
        )
    )
    assert isinstance(request, Request)
    trying = response_for(request, 100, to_tag="ignored")
    assert [n for n, _ in trying.headers] == ["Via", "Timestamp", "From", "To", "Call-ID", "CSeq"]
    assert trying.to.tag is None and trying.reason == "Trying"
    ringing = response_for(request, 180, to_tag="t1", headers=[("Contact", "<sip:me@h>")])
    assert ringing.to.tag == "t1" and ringing.reason == "Ringing"
    assert ringing.headers.get("Record-Route") == "<sip:p.example.com;lr>"
    assert ringing.headers.get("Contact") == "<sip:me@h>"
    busy = response_for(request, 486, "Busy Here Now", to_tag="t1")
    assert busy.headers.get("Record-Route") is None and busy.reason == "Busy Here Now"
    same_values(parse_message(busy.to_bytes()), busy)


def test_response_for_keeps_an_existing_to_tag() -> None:
    request = parse_message(
        request_with().replace(b"To: <sip:a@example.com>", b"To: <sip:a@example.com>;tag=x")
    )
    assert isinstance(request, Request)
    assert response_for(request, 200, to_tag="y").to.tag == "x"


def test_is_sip_date() -> None:
    assert is_sip_date("Sat, 13 Nov 2010 23:29:00 GMT")
    for bad in ("Sat, 13 Nov 2010 23:29:00 EST", "Sat 13 Nov 2010 23:29:00 GMT", "13 Nov 2010"):
        assert not is_sip_date(bad)


def test_fixture_helpers() -> None:
    assert crlf("a\nb\n") == b"a\r\nb\r\n"
    assert load("rfc4475/wsinv.dat").startswith(b"INVITE ")
    assert Path(DATA / "rfc4475" / "README.md").exists()  # IETF Trust note stays beside

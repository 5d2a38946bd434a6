"""Fuzzing the parsers: whatever the bytes, only ``ParseError`` may come out.

Random bytes, and valid messages (the RFC 4475 valid corpus plus typical traffic)
mutated by byte flips, truncation, insertion and duplicated or dropped lines, go
through ``parse_message``, the checks, every typed accessor, ``response_for``,
serialisation, the stream framer and the multipart parser. Any other exception is
a bug: the transport shell catches only ``RemoteProtocolError``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from helpers import DATA, crlf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipdialer.sip.errors import ParseError
from sipdialer.sip.framing import StreamFramer
from sipdialer.sip.headers import (
    parse_cseq,
    parse_int_header,
    parse_media_type,
    parse_name_addr,
    parse_params,
    parse_reason,
    parse_via,
    split_list,
)
from sipdialer.sip.message import (
    Message,
    Request,
    Response,
    check_request,
    check_response,
    parse_message,
    response_for,
)
from sipdialer.sip.multipart import parse_multipart
from sipdialer.sip.uri import parse_uri

MAX_EXAMPLES = int(os.environ.get("SIP_FUZZ_EXAMPLES", "1000"))
"Raise it for a long run: ``SIP_FUZZ_EXAMPLES=20000 pytest tests/sip/test_parser_fuzz.py``."
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VALID = [
    "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq",
    "semiuri", "transports", "mpart01", "unreason", "noreason", "regescrt", "cparam01",
    "bcast", "inv2543", "badinv01", "quotbal", "lwsruri", "mcl01",
]  # fmt: skip
TYPICAL = crlf("""INVITE sip:+15551234567@trunk.example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9a1c;rport
Max-Forwards: 70
From: "Dialer" <sip:dialer@192.0.2.10>;tag=9fxced76sl
To: <sip:+15551234567@trunk.example.com>
Call-ID: 3848276298220188511@192.0.2.10
CSeq: 1 INVITE
Contact: <sip:dialer@192.0.2.10:5060>;expires=60;q=0.5
Reason: Q.850;cause=16;text="x"
Content-Type: application/sdp
Content-Length: 4

v=0
""")
INSERTS = [
    b"\r\n",
    b" ",
    b"\t",
    b",",
    b";",
    b":",
    b'"',
    b"<",
    b">",
    b"%",
    b"@",
    b"\x00",
    b"\xff",
    b"\r",
]
SEEDS = [(DATA / "rfc4475" / f"{name}.dat").read_bytes() for name in VALID] + [TYPICAL]


def only_parse_errors(call: Callable[[], object]) -> object:
    try:
        return call()
    except ParseError:
        return None


def exercise(message: Message) -> None:
    """Touch every typed accessor; ParseError is the only allowed failure."""
    for name in ("call_id", "cseq", "vias", "top_via", "from_", "to", "contacts"):
        value = only_parse_errors(lambda name=name: getattr(message, name))  # type: ignore[misc]
        for item in value if isinstance(value, list) else [value]:
            str(item)
    only_parse_errors(lambda: message.max_forwards)
    only_parse_errors(lambda: message.content_type)
    for contact in only_parse_errors(lambda: message.contacts) or []:  # type: ignore[attr-defined]
        only_parse_errors(lambda c=contact: (c.expires, c.q))  # type: ignore[misc]
    via = only_parse_errors(lambda: message.top_via)
    if via is not None:
        _ = via.branch, via.rport, via.received, via.sent_by, via.wants_rport  # type: ignore[attr-defined]
    for name, value in message.headers:
        assert "\r" not in value and "\n" not in value, name
    content_type = message.headers.get("Content-Type")
    if content_type is not None and content_type.lower().startswith("multipart/"):
        only_parse_errors(lambda: parse_multipart(message.body, content_type))
    if isinstance(message, Request):
        only_parse_errors(lambda: str(message.request_uri))
        only_parse_errors(lambda: check_request(message))
        for status in (400, 505):
            only_parse_errors(lambda s=status: response_for(message, s, to_tag="t").to_bytes())  # type: ignore[misc]
    else:
        assert isinstance(message, Response)
        only_parse_errors(lambda: check_response(message))
    data = message.to_bytes()  # a parsed message always serialises
    only_parse_errors(lambda: parse_message(data))


def parse_and_exercise(data: bytes) -> None:
    for stream in (False, True):
        try:
            message = parse_message(data, stream=stream)
        except ParseError:
            continue
        exercise(message)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    parse_and_exercise(data)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_after_a_start_line(data: bytes) -> None:
    parse_and_exercise(b"INVITE sip:a@b SIP/2.0\r\n" + data)
    parse_and_exercise(b"SIP/2.0 200 OK\r\nVia: " + data + b"\r\n\r\n")


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "duplicate", "drop", "junk"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(INSERTS))
        elif kind == "junk":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            lines = bytes(data).split(b"\r\n")
            index = draw(st.integers(0, len(lines) - 1))
            if kind == "duplicate":
                lines.insert(index, lines[index])
            else:
                del lines[index]
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_valid_messages(data: bytes) -> None:
    parse_and_exercise(data)


@FUZZ
@given(mutated())
def test_valid_survivors_round_trip(data: bytes) -> None:
    try:
        message = parse_message(data)
        if isinstance(message, Request):
            check_request(message)
        else:
            assert isinstance(message, Response)
            check_response(message)
    except ParseError:
        return
    again = parse_message(message.to_bytes())
    assert [h for h in again.headers if h[0] != "Content-Length"] == [
        h for h in message.headers if h[0] != "Content-Length"
    ]
    assert again.body == message.body
    assert again.to_bytes() == message.to_bytes()


@FUZZ
@given(st.lists(st.sampled_from(SEEDS) | st.binary(max_size=40), max_size=4), st.integers(1, 64))
def test_framer_on_random_streams(pieces: list[bytes], chunk: int) -> None:
    stream = b"\r\n\r\n".join(pieces)
    framer = StreamFramer(max_message_size=4096, max_header_size=4096)
    try:
        for i in range(0, len(stream), chunk):
            framer.feed(stream[i : i + chunk])
            while (message := framer.next_message()) is not None:
                assert len(message) <= 4096
                parse_and_exercise(message)
            framer.pop_keepalives()
            framer.pop_pongs()
    except ParseError:
        pass


PARSERS: list[Callable[[str], object]] = [
    parse_uri, parse_name_addr, parse_via, parse_cseq, parse_reason, parse_params,
    parse_media_type, split_list, lambda text: parse_int_header(text, "Expires"),
]  # fmt: skip
SIPISH = st.text(
    alphabet=st.sampled_from(list('sip:SIP/2.0UDP@;,=?&<>"\\% \t[]:.-+~*#_xyz019ａ²٣\x00é\udcff')),
    max_size=60,
)


@FUZZ
@given(st.sampled_from(range(len(PARSERS))), SIPISH | st.text(max_size=40))
def test_header_value_parsers(index: int, text: str) -> None:
    result = only_parse_errors(lambda: PARSERS[index](text))
    if result is not None:
        str(result)


@FUZZ
@given(st.binary(max_size=200), st.sampled_from(["b", '"b c"', "7a9cbec02ceef655"]))
def test_multipart_on_random_bodies(body: bytes, boundary: str) -> None:
    for candidate in (body, b"--b\r\n" + body, b"--b\r\n\r\n" + body + b"\r\n--b--"):
        only_parse_errors(
            lambda c=candidate: parse_multipart(c, f"multipart/mixed;boundary={boundary}")
        )  # type: ignore[misc]

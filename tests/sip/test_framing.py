"""Stream framing, fed the h11 way: whole, byte by byte, with trailing data."""

from __future__ import annotations

import pytest
from helpers import crlf, load

from sipdialer.sip.errors import ParseError
from sipdialer.sip.framing import MAX_HEADER_SIZE, PONG, StreamFramer
from sipdialer.sip.message import MAX_MESSAGE_SIZE, Request, parse_message

BODY = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"
INVITE = (
    crlf(f"""INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bK776asdhds
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Content-Type: application/sdp
Content-Length: {len(BODY)}

""")
    + BODY
)
BYE = crlf("""BYE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bKnashds10
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314160 BYE
l: 0

""")


def messages(framer: StreamFramer) -> list[bytes]:
    out = []
    while (message := framer.next_message()) is not None:
        out.append(message)
    return out


def test_whole_message() -> None:
    framer = StreamFramer()
    framer.feed(INVITE)
    assert messages(framer) == [INVITE]
    assert framer.buffered == 0
    request = parse_message(INVITE, stream=True)
    assert isinstance(request, Request) and request.body == BODY


def test_one_byte_at_a_time() -> None:
    framer = StreamFramer()
    for i in range(len(INVITE) - 1):
        framer.feed(INVITE[i : i + 1])
        assert framer.next_message() is None
    framer.feed(INVITE[-1:])
    assert messages(framer) == [INVITE]


def test_trailing_data_stays_for_the_next_message() -> None:
    framer = StreamFramer()
    framer.feed(INVITE + BYE[:10])
    assert messages(framer) == [INVITE]
    assert framer.buffered == 10
    framer.feed(BYE[10:])
    assert messages(framer) == [BYE]


def test_two_messages_in_one_chunk() -> None:
    framer = StreamFramer()
    framer.feed(INVITE + BYE)
    assert messages(framer) == [INVITE, BYE]


def test_split_at_every_offset() -> None:
    stream = INVITE + BYE
    for cut in range(1, len(stream)):
        framer = StreamFramer()
        framer.feed(stream[:cut])
        got = messages(framer)
        framer.feed(stream[cut:])
        assert got + messages(framer) == [INVITE, BYE]


def test_body_holding_a_blank_line_and_crlfs() -> None:
    body = b"\r\n\r\nbinary\r\n\r\n"
    message = BYE.replace(b"l: 0", f"l: {len(body)}".encode()) + body
    framer = StreamFramer()
    framer.feed(message + message)
    assert messages(framer) == [message, message]
    assert framer.pop_keepalives() == 0


def test_keepalives_between_messages() -> None:
    framer = StreamFramer()
    framer.feed(b"\r\n\r\n" + INVITE + b"\r\n\r\n\r\n\r\n" + BYE + b"\r\n\r\n")
    assert messages(framer) == [INVITE, BYE]
    assert framer.keepalive_count == 4
    assert framer.pop_keepalives() == 4
    assert framer.pop_keepalives() == 0
    assert PONG == b"\r\n"  # the shell writes one per ping


def test_keepalive_ping_fed_byte_by_byte_is_one_ping() -> None:
    framer = StreamFramer()
    for byte in b"\r\n\r\n":
        framer.feed(bytes([byte]))
        assert framer.next_message() is None
    assert framer.pop_keepalives() == 1
    assert framer.pop_pongs() == 0
    assert framer.buffered == 0


def test_pong_and_crlf_before_a_message() -> None:
    framer = StreamFramer()
    framer.feed(PONG)
    assert framer.next_message() is None
    assert framer.pop_keepalives() == 0  # could still become a ping
    assert framer.pop_pongs() == 1  # the client, waiting for its pong, takes it
    framer.feed(b"\r\n" + BYE)  # RFC 3261 §7.5: a CRLF before a start line is skipped
    assert messages(framer) == [BYE]
    assert framer.pop_pongs() == 1


def test_compact_and_spaced_content_length() -> None:
    for header in (b"l: 5", b"L:5", b"Content-Length   :   5", b"content-LENGTH: 5"):
        message = BYE.replace(b"l: 0", header) + b"hello"
        framer = StreamFramer()
        framer.feed(message + b"\r\n\r\n")
        assert messages(framer) == [message], header
        assert framer.pop_keepalives() == 1


def test_a_body_line_that_looks_like_content_length_is_not_one() -> None:
    body = b"l: 999\r\n"
    message = BYE.replace(b"l: 0", f"l: {len(body)}".encode()) + body
    framer = StreamFramer()
    framer.feed(message)
    assert messages(framer) == [message]


@pytest.mark.parametrize(
    "head",
    [
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1x\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 5\r\nl: 6\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 12345678901\r\n\r\n",
    ],
    ids=["missing", "negative", "not-a-number", "conflicting", "huge"],
)
def test_bad_content_length_breaks_the_framer_for_good(head: bytes) -> None:
    framer = StreamFramer()
    framer.feed(head)
    with pytest.raises(ParseError):
        framer.next_message()
    with pytest.raises(ParseError):
        framer.next_message()  # the connection must be closed
    with pytest.raises(ParseError):
        framer.feed(BYE)


def test_equal_repeated_content_length_is_fine() -> None:
    message = BYE.replace(b"l: 0", b"Content-Length: 0\r\nl: 0")
    framer = StreamFramer()
    framer.feed(message)
    assert messages(framer) == [message]


def test_header_section_over_the_limit() -> None:
    framer = StreamFramer()
    framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nSubject: " + b"x" * MAX_HEADER_SIZE)
    with pytest.raises(ParseError) as caught:
        framer.next_message()
    assert caught.value.status_hint == 400


def test_header_section_found_but_over_the_limit() -> None:
    framer = StreamFramer(max_header_size=100)
    framer.feed(BYE.replace(b"l: 0", b"Subject: " + b"x" * 100 + b"\r\nl: 0"))
    with pytest.raises(ParseError):
        framer.next_message()


def test_message_over_the_limit_is_513() -> None:
    framer = StreamFramer()
    framer.feed(BYE.replace(b"l: 0", f"l: {MAX_MESSAGE_SIZE}".encode()))
    with pytest.raises(ParseError) as caught:
        framer.next_message()
    assert caught.value.status_hint == 513
    small = StreamFramer(max_message_size=200)
    small.feed(INVITE)
    with pytest.raises(ParseError) as caught:
        small.next_message()
    assert caught.value.status_hint == 513


def test_torture_messages_through_the_framer() -> None:
    data = load("rfc4475/wsinv.dat")  # "Content-Length   : 150"
    framer = StreamFramer()
    framer.feed(data + data)
    assert messages(framer) == [data, data]
    request = parse_message(data, stream=True)
    assert len(request.body) == 150

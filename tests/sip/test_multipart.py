"""Multipart bodies (RFC 2046 §5.1), with RFC 4475 mpart01 as the real-world sample."""

from __future__ import annotations

import hashlib

import pytest
from helpers import load

from sipdialer.sip.errors import ParseError
from sipdialer.sip.headers import Headers
from sipdialer.sip.message import parse_message
from sipdialer.sip.multipart import (
    BodyPart,
    boundary_of,
    build_multipart,
    find_part,
    parse_multipart,
)

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
ISUP = bytes(range(256))


def mpart01() -> tuple[bytes, str]:
    request = parse_message(load("rfc4475/mpart01.dat"))
    return request.body, request.headers.get("Content-Type") or ""


def test_mpart01_parts() -> None:
    body, content_type = mpart01()
    assert boundary_of(content_type) == "7a9cbec02ceef655"
    text, binary = parse_multipart(body, content_type)
    assert text.headers == Headers(
        [("Content-Type", "text/plain"), ("Content-Transfer-Encoding", "binary")]
    )
    assert text.body == b"Hello"
    assert binary.content_type == "application/octet-stream"
    assert len(binary.body) == 342
    # Binary octets untouched, CRLFs inside included (a DER SEQUENCE of 338 octets).
    assert binary.body.startswith(b"0\x82\x01R") and binary.body.endswith(b"\xbc\x99\xd0\x05")
    assert hashlib.sha256(binary.body).hexdigest().startswith("497d8aa37a725cd8")


def test_mpart01_rebuilds_to_the_same_parts() -> None:
    body, content_type = mpart01()
    parts = parse_multipart(body, content_type)
    rebuilt_type, rebuilt = build_multipart(parts, boundary="7a9cbec02ceef655")
    assert rebuilt_type == "multipart/mixed;boundary=7a9cbec02ceef655"
    assert rebuilt == body  # mpart01 is already in the canonical layout
    assert parse_multipart(rebuilt, rebuilt_type) == parts


def test_build_and_parse_sdp_with_isup() -> None:
    parts = [
        BodyPart(Headers([("Content-Type", "application/sdp")]), SDP),
        BodyPart(
            Headers(
                [
                    ("Content-Type", "application/ISUP;version=itu-t92+"),
                    ("Content-Disposition", "signal;handling=optional"),
                ]
            ),
            ISUP,
        ),
    ]
    content_type, body = build_multipart(parts)
    assert content_type.startswith("multipart/mixed;boundary=")
    assert build_multipart(parts) == (content_type, body)  # reproducible
    assert boundary_of(content_type).encode() not in SDP + ISUP
    assert parse_multipart(body, content_type) == parts
    assert find_part(body, content_type, "application/sdp") == parts[0]
    assert find_part(body, content_type, "application/isup") == parts[1]
    assert find_part(body, content_type, "text/html") is None


def test_alternative_preamble_epilogue_padding_and_headerless_part() -> None:
    body = (
        b"This is the preamble.\r\n"
        b"--xyz   \r\n"
        b"\r\n"
        b"plain text, no headers\r\n"
        b"--xyz\r\n"
        b"Content-Type: text/html;\r\n"
        b"  charset=utf-8\r\n"
        b"\r\n"
        b"<p>hi</p>\r\n"
        b"--xyz--\r\n"
        b"This is the epilogue.\r\n"
    )
    plain, html = parse_multipart(body, 'multipart/alternative; boundary="xyz"')
    assert plain.headers == Headers() and plain.content_type == "text/plain"
    assert plain.body == b"plain text, no headers"
    assert html.headers.get("Content-Type") == "text/html; charset=utf-8"
    assert html.media_type == ("text/html", (("charset", "utf-8"),))
    assert html.body == b"<p>hi</p>"


def test_nested_multipart() -> None:
    inner_type, inner = build_multipart(
        [BodyPart(Headers([("Content-Type", "application/sdp")]), SDP)],
        subtype="alternative",
        boundary="in",
    )
    outer_type, outer = build_multipart(
        [
            BodyPart(Headers([("Content-Type", "text/plain")]), b"note"),
            BodyPart(Headers([("Content-Type", inner_type)]), inner),
        ],
        boundary="out",
    )
    found = find_part(outer, outer_type, "application/sdp")
    assert found is not None and found.body == SDP
    single = find_part(SDP, "application/sdp", "application/sdp")
    assert single is not None and single.body == SDP
    assert find_part(SDP, None, "application/sdp") is None
    assert find_part(SDP, "application/sdp", "text/plain") is None


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"--b\r\n\r\nx\r\n--b--", "text/plain", 415),
        (b"--b\r\n\r\nx\r\n--b--", "multipart/mixed", 400),
        (b"--b\r\n\r\nx\r\n--b--", "multipart/mixed;boundary=" + "b" * 71, 400),
        (b"no boundary at all", "multipart/mixed;boundary=b", 400),
        (b"--b\r\n\r\nx\r\n", "multipart/mixed;boundary=b", 400),
        (b"--bX\r\n\r\nx\r\n--b--", "multipart/mixed;boundary=b", 400),
        (b"--b\r\nContent-Type: text/plain\r\nx\r\n--b--", "multipart/mixed;boundary=b", 400),
        (b"--b\r\nno colon\r\n\r\nx\r\n--b--", "multipart/mixed;boundary=b", 400),
        (b"--b\r\n", "multipart/mixed;boundary=b", 400),
    ],
    ids=[
        "not-multipart",
        "no-boundary",
        "long-boundary",
        "absent",
        "unclosed",
        "bad-delimiter",
        "no-blank-line",
        "bad-header",
        "truncated",
    ],  # fmt: skip
)
def test_malformed_multipart(body: bytes, content_type: str, status: int) -> None:
    with pytest.raises(ParseError) as caught:
        parse_multipart(body, content_type)
    assert caught.value.status_hint == status


def test_build_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        build_multipart([])
    with pytest.raises(ValueError):
        build_multipart([BodyPart()], boundary="bad\r\nboundary")


def test_chosen_boundary_avoids_part_content() -> None:
    parts = [BodyPart(Headers([("Content-Type", "text/plain")]), b"x")]
    content_type, _ = build_multipart(parts)
    boundary = boundary_of(content_type)
    tricky = [BodyPart(Headers([("Content-Type", "text/plain")]), boundary.encode())]
    tricky_type, tricky_body = build_multipart(tricky)
    assert boundary_of(tricky_type) != boundary
    assert parse_multipart(tricky_body, tricky_type) == tricky

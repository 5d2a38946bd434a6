"""Answers to bad requests (RFC 3261 §8.2), each with the headers the RFC asks for."""

from __future__ import annotations

import pytest

from sipdialer.sip.message import Response, parse_message
from sipdialer.sip.peer import Peer
from sipdialer.sip.ua import UaConfig, UserAgentCore

SOURCE = Peer("UDP", "127.0.0.1", 5099)


def request(method: str = "INVITE", uri: str = "sip:bob@127.0.0.1", *extra: str,
            body: str = "", cseq_method: str | None = None, mf: str = "70") -> bytes:  # fmt: skip
    lines = [
        f"{method} {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-test-1;rport",
        f"Max-Forwards: {mf}",
        "From: <sip:alice@127.0.0.1>;tag=a1",
        "To: <sip:bob@127.0.0.1>",
        "Call-ID: reject-test@127.0.0.1",
        f"CSeq: 1 {cseq_method or method}",
        "Contact: <sip:alice@127.0.0.1:5099>",
        *extra,
        f"Content-Length: {len(body)}",
        "",
        body,
    ]
    return "\r\n".join(lines).encode()


def answer(data: bytes) -> Response | None:
    ua = UserAgentCore(UaConfig(port=5060))
    ua.receive_data(data, SOURCE, 0.0)
    out = ua.data_to_send()
    finals = []
    for raw, peer in out:
        message = parse_message(raw)
        assert isinstance(message, Response)
        assert (peer.host, peer.port) == ("127.0.0.1", 5099)
        if message.status_code >= 200:
            finals.append(message)
    assert len(finals) <= 1
    return finals[0] if finals else None


@pytest.mark.parametrize(
    ("data", "status", "header", "value"),
    [
        (request("SUBSCRIBE"), 405, "Allow", "INVITE"),
        (request("FOOBAR"), 501, "Allow", "INVITE"),
        (request(uri="http://example.com/"), 416, None, None),
        (request("INVITE", "sip:bob@127.0.0.1", "Require: 100rel, foo"), 420, "Unsupported",
         "100rel, foo"),
        (request("INVITE", "sip:bob@127.0.0.1", "Content-Type: text/plain", body="hi"), 415,
         "Accept", "application/sdp"),
        (request("INVITE", "sip:bob@127.0.0.1", "Content-Type: application/sdp",
                 "Content-Encoding: gzip", body="v=0\r\n"), 415, "Accept-Encoding", "identity"),
        (request("INVITE", "sip:bob@127.0.0.1", "Accept: text/html"), 406, None, None),
        (request(mf="0"), 483, None, None),
        (request("INFO", "sip:bob@127.0.0.1").replace(b"To: <sip:bob@127.0.0.1>",
                                                      b"To: <sip:bob@127.0.0.1>;tag=gone"),
         481, None, None),
        (request("OPTIONS", cseq_method="INVITE"), 400, None, None),
        (request().replace(b"127.0.0.1 SIP/2.0", b"127.0.0.1 SIP/3.0"),
         505, None, None),
    ],
)  # fmt: skip
def test_rejections(data: bytes, status: int, header: str | None, value: str | None) -> None:
    response = answer(data)
    assert response is not None and response.status_code == status
    if header is not None:
        assert value is not None
        assert value in (response.headers.get(header) or "")
    assert response.call_id == "reject-test@127.0.0.1"
    assert response.cseq.number == 1


def test_400_names_the_problem() -> None:
    response = answer(request(cseq_method="BYE"))
    assert response is not None and response.status_code == 400
    assert "CSeq" in response.reason


def test_unparsable_request_gets_400_with_routing_headers() -> None:
    data = request().replace(b"Max-Forwards: 70", b"Max-Forwards: many")
    response = answer(data)
    assert response is not None and response.status_code == 400
    assert "Max-Forwards" in response.reason


def test_garbage_and_bad_responses_are_dropped() -> None:
    assert answer(b"\x00\x01garbage\r\n\r\n") is None
    assert answer(b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n") is None
    assert answer(request("ACK").replace(b"Max-Forwards: 70", b"Max-Forwards: x")) is None


def test_options_answered_with_allow_accept_supported() -> None:
    response = answer(request("OPTIONS"))
    assert response is not None and response.status_code == 200
    for name in ("Allow", "Accept", "Supported"):
        assert response.headers.get(name)
    assert response.to.tag


def test_response_routed_by_received_and_rport() -> None:
    ua = UserAgentCore(UaConfig(port=5060))
    data = request("OPTIONS").replace(b"127.0.0.1:5099;branch", b"10.1.2.3:5099;branch")
    ua.receive_data(data, Peer("UDP", "127.0.0.7", 40000), 0.0)
    [(raw, peer)] = ua.data_to_send()
    assert (peer.host, peer.port) == ("127.0.0.7", 40000)
    via = parse_message(raw).top_via
    assert via.received == "127.0.0.7" and via.rport == 40000

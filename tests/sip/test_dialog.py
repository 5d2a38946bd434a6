"""Dialog state (RFC 3261 §12): IDs, route sets, CSeq rules and in-dialog requests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipdialer.sip.dialog import (
    TRANSITIONS,
    Dialog,
    DialogInput,
    DialogState,
    dialog_id_of_request,
    dialog_id_of_response,
)
from sipdialer.sip.errors import LocalProtocolError, RemoteProtocolError
from sipdialer.sip.message import Request, Response, parse_message
from sipdialer.sip.peer import Peer

PEER = Peer("UDP", "127.0.0.1", 5062)

INVITE = (
    b"INVITE sip:bob@127.0.0.1:5062 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-d1\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:alice@127.0.0.1>;tag=alice-tag\r\n'
    b"To: <sip:bob@127.0.0.1>\r\n"
    b"Call-ID: dialog-1@127.0.0.1\r\n"
    b"CSeq: 10 INVITE\r\n"
    b"Contact: <sip:alice@127.0.0.1:5061>\r\n"
    b"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n"
    b"Content-Length: 0\r\n\r\n"
)
OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-d1\r\n"
    b'From: "Alice" <sip:alice@127.0.0.1>;tag=alice-tag\r\n'
    b"To: <sip:bob@127.0.0.1>;tag=bob-tag\r\n"
    b"Call-ID: dialog-1@127.0.0.1\r\n"
    b"CSeq: 10 INVITE\r\n"
    b"Contact: <sip:bob@192.168.1.20:5062>\r\n"
    b"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def invite() -> Request:
    message = parse_message(INVITE)
    assert isinstance(message, Request)
    return message


def ok() -> Response:
    message = parse_message(OK)
    assert isinstance(message, Response)
    return message


def test_uac_dialog_from_2xx() -> None:
    dialog = Dialog.from_uac(invite(), ok(), PEER)
    assert dialog.state is DialogState.CONFIRMED
    assert (dialog.id.call_id, dialog.id.local_tag, dialog.id.remote_tag) == (
        "dialog-1@127.0.0.1", "alice-tag", "bob-tag",
    )  # fmt: skip
    # §12.1.2: the UAC's route set is the Record-Route in reverse order.
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p1.example.com;lr", "sip:p2.example.com;lr",
    ]  # fmt: skip
    assert str(dialog.remote_target) == "sip:bob@192.168.1.20:5062"
    assert dialog.local_seq == 10 and dialog.remote_seq is None
    assert dialog_id_of_response(ok()) == dialog.id


def test_uas_dialog_from_request() -> None:
    dialog = Dialog.from_uas(invite(), "bob-tag", PEER, "<sip:bob@127.0.0.1:5062>")
    assert dialog.state is DialogState.EARLY
    assert (dialog.id.local_tag, dialog.id.remote_tag) == ("bob-tag", "alice-tag")
    # §12.1.1: the UAS keeps the Record-Route order.
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p2.example.com;lr", "sip:p1.example.com;lr",
    ]  # fmt: skip
    assert dialog.remote_seq == 10
    assert dialog.local_uri.tag == "bob-tag"


def test_in_dialog_request_uses_route_set_and_increments_cseq() -> None:
    dialog = Dialog.from_uac(invite(), ok(), PEER)
    bye = dialog.create_request("BYE", via="SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-b")
    assert bye.uri == "sip:bob@192.168.1.20:5062"  # loose routing: target stays
    assert bye.headers.get_all("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert bye.cseq.number == 11 and bye.cseq.method == "BYE"
    assert bye.from_.tag == "alice-tag" and bye.to.tag == "bob-tag"
    assert bye.headers.get("Contact") is None
    info = dialog.create_request("INFO", via="SIP/2.0/UDP h;branch=z9hG4bK-i")
    assert info.cseq.number == 12
    ack = dialog.create_request("ACK", via="SIP/2.0/UDP h;branch=z9hG4bK-a", cseq=10)
    assert ack.cseq.number == 10 and dialog.local_seq == 12


def test_strict_route_becomes_request_uri() -> None:
    response = ok()
    response.headers.set("Record-Route", "<sip:strict.example.com>")
    dialog = Dialog.from_uac(invite(), response, PEER)
    bye = dialog.create_request("BYE", via="SIP/2.0/UDP h;branch=z9hG4bK-s")
    assert bye.uri == "sip:strict.example.com"
    assert bye.headers.get_all("Route") == ["<sip:bob@192.168.1.20:5062>"]


def test_old_cseq_is_refused_with_500() -> None:
    dialog = Dialog.from_uas(invite(), "bob-tag", PEER, "<sip:bob@127.0.0.1:5062>")
    request = invite()
    request.headers.set("CSeq", "9 INFO")
    request.method = "INFO"
    with pytest.raises(RemoteProtocolError) as caught:
        dialog.receive_request(request)
    assert caught.value.status_hint == 500


def test_target_refresh_by_reinvite() -> None:
    dialog = Dialog.from_uas(invite(), "bob-tag", PEER, "<sip:bob@127.0.0.1:5062>")
    reinvite = invite()
    reinvite.headers.set("CSeq", "11 INVITE")
    reinvite.headers.set("Contact", "<sip:alice@10.0.0.9:7000>")
    dialog.receive_request(reinvite)
    assert str(dialog.remote_target) == "sip:alice@10.0.0.9:7000"
    assert dialog.remote_seq == 11


def test_dialog_id_of_request_needs_a_to_tag() -> None:
    assert dialog_id_of_request(invite()) is None
    request = invite()
    request.headers.set("To", "<sip:bob@127.0.0.1>;tag=bob-tag")
    found = dialog_id_of_request(request)
    assert found is not None and (found.local_tag, found.remote_tag) == ("bob-tag", "alice-tag")


def test_dialog_creating_response_needs_to_tag() -> None:
    response = ok()
    response.headers.set("To", "<sip:bob@127.0.0.1>")
    with pytest.raises(RemoteProtocolError):
        Dialog.from_uac(invite(), response, PEER)


@given(state=st.sampled_from(DialogState), input_=st.sampled_from(DialogInput))
def test_table_moves_or_refuses(state: DialogState, input_: DialogInput) -> None:
    dialog = Dialog.from_uac(invite(), ok(), PEER)
    dialog.state = state
    if (state, input_) in TRANSITIONS:
        assert dialog.apply(input_) is TRANSITIONS[state, input_]
    else:
        with pytest.raises(LocalProtocolError):
            dialog.apply(input_)
        assert dialog.state is state


@pytest.mark.parametrize(
    ("contact", "follow", "expected"),
    [
        ("<sip:bob@192.168.1.20:5070>", True, Peer("UDP", "192.168.1.20", 5070)),
        ("<sip:bob@[2001:db8::5]>", True, Peer("UDP", "2001:db8::5", 5060)),
        ("<sip:bob@192.168.1.20:5070>", False, PEER),  # an agent phone behind NAT
        ("<sip:bob@trunk.example.com:5070>", True, PEER),  # a name: no DNS in the core
        ("<sip:bob@192.168.1.20:5070;transport=tcp>", True, PEER),
        ("<sips:bob@192.168.1.20:5070>", True, PEER),
    ],
)
def test_destination_follows_an_ip_literal_remote_target_when_asked(
    contact: str, follow: bool, expected: Peer
) -> None:
    """RFC 3261 §12.2.1.1: in-dialog requests go to the remote target (the 2xx Contact)
    for a UAC that asked for it; otherwise, and whenever the target cannot be used
    without a look-up, to the peer the dialog was set up with."""
    text = OK.replace(b"Contact: <sip:bob@192.168.1.20:5062>", f"Contact: {contact}".encode())
    text = text.replace(b"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n", b"")
    response = parse_message(text)
    assert isinstance(response, Response)
    dialog = Dialog.from_uac(invite(), response, PEER)
    dialog.follow_target = follow
    assert dialog.destination() == expected


def test_destination_keeps_the_peer_with_a_route_set() -> None:
    dialog = Dialog.from_uac(invite(), ok(), PEER)
    dialog.follow_target = True
    assert dialog.route_set and dialog.destination() == PEER

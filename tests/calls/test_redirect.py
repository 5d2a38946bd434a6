"""3xx following: q ordering, sip/sips only, hop limit, loop avoidance."""

from __future__ import annotations

import pytest
from helpers import crlf

from sipdialer.calls.redirect import MAX_REDIRECTS, Redirects, redirect_targets
from sipdialer.sip.message import Response, parse_message
from sipdialer.sip.uri import parse_sip_uri


def response(status: int, *contacts: str) -> Response:
    lines = "".join(f"Contact: {c}\n" for c in contacts)
    message = parse_message(crlf(
        f"SIP/2.0 {status} Moved\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\n"
        f"From: <sip:a@b>;tag=1\nTo: <sip:c@d>;tag=2\nCall-ID: x\nCSeq: 1 INVITE\n{lines}\n"
    ))  # fmt: skip
    assert isinstance(message, Response)
    return message


def targets(resp: Response) -> list[str]:
    return [str(uri) for uri in redirect_targets(resp)]


def test_ordered_by_q_ties_keep_order() -> None:
    resp = response(
        302,
        "<sip:low@a>;q=0.1",
        "<sip:first@a>",  # no q = 1.0
        "<sip:mid1@a>;q=0.5, <sip:mid2@a>;q=0.5",
        "<sip:top@a>;q=1.0",
    )
    assert targets(resp) == ["sip:first@a", "sip:top@a", "sip:mid1@a", "sip:mid2@a",
                             "sip:low@a"]  # fmt: skip


def test_only_sip_and_sips_and_no_uri_headers() -> None:
    resp = response(301, "<tel:+380441234567>", "<http://x.example/>", "<sips:s@b>",
                    "<sip:h@b?Subject=hi>", "<sip:badq@b>;q=2")  # fmt: skip
    assert targets(resp) == ["sips:s@b", "sip:h@b"]
    assert redirect_targets(resp)[1].headers == ()


@pytest.mark.parametrize("status", [305, 380, 200, 404])
def test_not_followed(status: int) -> None:
    assert redirect_targets(response(status, "<sip:x@y>")) == []


def test_no_contact_or_garbage_contact() -> None:
    assert redirect_targets(response(302)) == []
    assert redirect_targets(response(302, "<sip:x@y")) == []


def test_loop_avoidance_and_hop_limit() -> None:
    redirects = Redirects.starting_at(parse_sip_uri("sip:100@trunk"))
    # The first hop skips the original URI (compared by RFC 3261 equivalence).
    first = response(302, "<sip:100@TRUNK>", "<sip:200@trunk>")
    assert str(redirects.next_target(first)) == "sip:200@trunk"
    # Two servers redirecting to each other: both already tried, so we stop.
    assert redirects.next_target(response(302, "<sip:100@trunk>", "<sip:200@trunk>")) is None
    assert redirects.hops == 1
    assert str(redirects.next_target(response(302, "<sip:300@trunk>"))) == "sip:300@trunk"
    assert str(redirects.next_target(response(302, "<sip:400@trunk>"))) == "sip:400@trunk"
    assert redirects.hops == MAX_REDIRECTS
    assert redirects.next_target(response(302, "<sip:500@trunk>")) is None  # limit
    assert [str(u) for u in redirects.tried] == ["sip:100@trunk", "sip:200@trunk",
                                                "sip:300@trunk", "sip:400@trunk"]  # fmt: skip


def test_next_target_skips_what_accept_refuses_without_counting_it() -> None:
    book = Redirects.starting_at(parse_sip_uri("sip:1@trunk"))
    resp = response(302, "<sip:2@elsewhere>;q=0.9", "<sip:3@trunk>;q=0.5")
    target = book.next_target(resp, lambda uri: uri.host == "trunk")
    assert str(target) == "sip:3@trunk" and book.hops == 1
    assert book.next_target(resp, lambda uri: uri.host == "trunk") is None

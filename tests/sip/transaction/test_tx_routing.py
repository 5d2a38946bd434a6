"""Sending responses (RFC 3261 §18.2.1, §18.2.2; RFC 3581)."""

from __future__ import annotations

import pytest

from sipdialer.sip.headers import parse_via
from sipdialer.sip.peer import Peer
from sipdialer.sip.transaction.routing import (
    add_received,
    is_refused_target,
    response_destination,
)

SOURCE = Peer("UDP", "198.51.100.7", 40312)  # what the socket saw (a NAT, say)


@pytest.mark.parametrize(
    ("via", "expected"),
    [
        # sent-by, no received: the sent-by address and port, 5060 by default
        ("SIP/2.0/UDP 198.51.100.7:5070;branch=z9hG4bKa", Peer("UDP", "198.51.100.7", 5070)),
        ("SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKa", Peer("UDP", "198.51.100.7", 5060)),
        # received: that address, at the sent-by port
        ("SIP/2.0/UDP pc33.example.com:5070;branch=z9hG4bKa;received=192.0.2.4",
         Peer("UDP", "192.0.2.4", 5070)),
        # RFC 3581: received + rport value
        ("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKa;received=198.51.100.7;rport=40312",
         Peer("UDP", "198.51.100.7", 40312)),
        # a bare rport never stamped: the packet's source
        ("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKa;rport", SOURCE),
        # maddr wins over received and rport (RFC 3581 §4 applies only without maddr)
        ("SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa;maddr=192.0.2.9;received=198.51.100.7;rport=1",
         Peer("UDP", "192.0.2.9", 5062)),
        # a host name is left for the shell to resolve (RFC 3263 §6)
        ("SIP/2.0/UDP pc33.example.com;branch=z9hG4bKa", Peer("UDP", "pc33.example.com", 5060)),
        # IPv6 received
        ("SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bKa;received=2001:db8::7",
         Peer("UDP", "2001:db8::7", 5060)),
    ],
)  # fmt: skip
def test_unreliable_destinations(via: str, expected: Peer) -> None:
    assert response_destination(parse_via(via), SOURCE) == expected


def test_reliable_transport_answers_on_the_same_connection() -> None:
    source = Peer("TCP", "198.51.100.7", 40312)
    via = parse_via("SIP/2.0/TCP pc33.example.com:5060;branch=z9hG4bKa;maddr=192.0.2.9")
    assert response_destination(via, source) == source


@pytest.mark.parametrize(
    "via",
    [
        "SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23",  # RFC 4475 bcast
        "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa;received=255.255.255.255",
        "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa;maddr=224.0.1.75",
        "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa;maddr=239.255.255.250",
        "SIP/2.0/UDP [ff02::1];branch=z9hG4bKa",
        "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa;received=ff05::fb",
    ],
)
def test_broadcast_and_multicast_are_refused(via: str) -> None:
    assert response_destination(parse_via(via), SOURCE) is None


def test_refused_targets() -> None:
    assert is_refused_target("255.255.255.255")
    assert is_refused_target("224.0.0.1") and is_refused_target("239.1.2.3")
    assert is_refused_target("::ffff:224.0.0.1") and is_refused_target("[ff0e::1]")
    for host in ("192.0.2.255", "10.255.255.255", "223.255.255.255", "2001:db8::1", "host"):
        assert not is_refused_target(host)  # directed broadcasts look like unicast


def test_add_received_only_when_needed() -> None:
    same = parse_via("SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKa")
    assert add_received(same, SOURCE) is same  # §18.2.1: the host already says it
    name = add_received(parse_via("SIP/2.0/UDP pc33.example.com;branch=z9hG4bKa"), SOURCE)
    assert (name.received, name.rport) == ("198.51.100.7", None)
    other = add_received(parse_via("SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKa"), SOURCE)
    assert other.received == "198.51.100.7" and other.branch == "z9hG4bKa"


def test_add_received_fills_rport_even_for_the_same_host() -> None:
    # RFC 3581 §4: with rport, received is added even when it equals sent-by.
    via = parse_via("SIP/2.0/UDP 198.51.100.7:5060;rport;branch=z9hG4bKa")
    stamped = add_received(via, SOURCE)
    assert (stamped.received, stamped.rport) == ("198.51.100.7", 40312)
    assert str(stamped) == (
        "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKa;received=198.51.100.7;rport=40312"
    )
    assert add_received(stamped, SOURCE) is stamped  # idempotent
    assert response_destination(stamped, SOURCE) == SOURCE


def test_add_received_compares_addresses_not_spellings() -> None:
    v6 = parse_via("SIP/2.0/UDP [2001:DB8::1]:5060;branch=z9hG4bKa")
    assert add_received(v6, Peer("UDP", "2001:db8::1", 5060)) is v6

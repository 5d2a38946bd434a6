"""Where a server sends its responses (RFC 3261 §18.2.1, §18.2.2; RFC 3581).

On receipt a server stamps the top Via with the packet's real source (``add_received``);
when answering it reads that Via back (``response_destination``):

1. reliable transport: the connection the request came on, i.e. the source peer;
2. ``maddr``: that address, at the sent-by port (default 5060);
3. ``received``: that address, at ``rport`` when the client asked for symmetric
   response routing (RFC 3581 §4), else at the sent-by port;
4. otherwise the sent-by host and port. A host name is returned as it stands; this
   layer does no DNS (RFC 3263 §6 is the shell's business).

Multicast and the limited broadcast address are refused (``None``): a response there
would reach every host on the segment (RFC 4475 §3.3.14, ``bcast``). A broadcast
*sent-by* never gets that far, because ``add_received`` stamps the real source over
it; what is left are ``maddr`` values and Vias that were never stamped. We never join
multicast groups, so the ``ttl`` rule of §18.2.2 has no use here. Directed broadcasts
(x.y.z.255) cannot be told from unicast without the netmask, so they pass.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from ..headers import Via
from ..peer import Peer
from .keys import default_port

LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


@lru_cache(maxsize=4096)
def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # Cached: every request and response asks about the same few peers, and
    # ipaddress parsing was the top line of the UAS profile (bench/sip_uas.py).
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None  # a host name


def is_refused_target(host: str) -> bool:
    """True for 255.255.255.255, 224.0.0.0/4 and ff00::/8 (and their IPv4-mapped forms)."""
    address = _ip(host)
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address == LIMITED_BROADCAST or address.is_multicast


def same_host(via_host: str, source_host: str) -> bool:
    """§18.2.1: does the sent-by host name the packet's source address?"""
    mine, theirs = _ip(via_host), _ip(source_host)
    return mine is not None and mine == theirs


def add_received(via: Via, source: Peer) -> Via:
    """The top Via a server keeps for a request that arrived from *source* (§18.2.1).

    ``received`` is added when the sent-by host is a name or an address other than the
    source's, and always when the client sent a bare ``rport`` (RFC 3581 §4), which is
    then filled in with the source port. Returns *via* itself when nothing changes.
    """
    params: dict[str, str | None] = {}
    if via.wants_rport:
        params["received"] = source.host
        params["rport"] = str(source.port)
    elif not same_host(via.host, source.host):
        params["received"] = source.host
    if not params or all(dict(via.params).get(k, object()) == v for k, v in params.items()):
        return via
    return via.with_params(**params)


def response_destination(top_via: Via, source: Peer) -> Peer | None:
    """Where to send a response whose top Via is *top_via* (§18.2.2, RFC 3581 §4).

    *source* is where the request came from. ``None`` means "do not send": the Via
    points at a broadcast or multicast address.
    """
    if source.reliable:
        # §18.2.2: reuse the connection the request arrived on. Should it have closed,
        # the shell may open a new one to received/sent-by; that is the shell's call.
        return source
    port = top_via.port if top_via.port is not None else default_port(source.transport)
    if top_via.maddr:
        host = top_via.maddr
    elif top_via.received:
        host = top_via.received
        if top_via.wants_rport:
            port = top_via.rport if top_via.rport is not None else source.port
    elif top_via.wants_rport:
        # A Via that never went through add_received: answer the packet's source.
        host, port = source.host, source.port
    else:
        host = top_via.host
    if is_refused_target(host):
        return None
    return Peer(source.transport, host, port)

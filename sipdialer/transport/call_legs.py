"""The SIP side of one call leg for the call service: handles, dialog, SDP, session timer.

``LegSip`` is what ``transport/calls.py`` keeps per leg besides the pure core's record:
the INVITE handle(s) and the dialog it became, our SDP (one o= session id per leg, the
version bumped each time what we describe changes, RFC 3264 §8), the redirect book
(member leg, ``calls.redirect``), the RFC 4028 timer the far end asked for, and the
refresh in flight. The helpers here only translate between SDP and the media bridge's
``StreamSpec`` (which takes only an IP literal as the peer's media address);
decisions stay in the cores (``sdp_offer``, ``session_timer``, ``Call``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from sipdialer.calls.redirect import Redirects
from sipdialer.calls.session_timer import SessionTimer
from sipdialer.media.bridge import StreamSpec
from sipdialer.sip.dialog import DialogId
from sipdialer.sip.errors import RemoteProtocolError
from sipdialer.sip.headers import Headers
from sipdialer.sip.message import Message, Request
from sipdialer.sip.peer import Peer
from sipdialer.sip.sdp import Direction, SdpError, SessionDescription
from sipdialer.sip.sdp_offer import Negotiated, make_answer, make_offer

from .udp import is_ip_literal

CODECS = ("PCMU", "PCMA")
"What we offer and accept on both legs, in preference order (the relay transcodes)."

_NOT_USER = re.compile(r"[^0-9A-Za-z+*#._\-]")


def sip_user(text: str, default: str) -> str:
    """*text* as the user part of a SIP URI: only unreserved dial characters kept."""
    return _NOT_USER.sub("", text)[:64] or default


def display_name(text: str) -> str:
    """A quoted-string-safe display name (no quotes, backslashes or controls)."""
    return re.sub(r'["\\\x00-\x1f\x7f]', "", text).strip()[:64]


@dataclass
class LegSip:
    """The SIP state of one leg (see the module docstring)."""

    port: int
    "Our RTP port for this leg (the CallMedia's agent_port / member_port)."
    host: str
    "Our media address (c=)."
    handle: str | None = None
    "The INVITE in flight (a redirect replaces it); None once it has a final."
    dialog: DialogId | None = None
    destination: Peer | None = None
    session_id: int = field(default_factory=lambda: secrets.randbelow(2**31) + 1)
    version: int = 1
    direction: Direction = Direction.SENDRECV
    offer: SessionDescription | None = None
    "The SDP we last sent as an offer (to read the peer's answer against)."
    last_sent: bytes = b""
    redirects: Redirects | None = None
    timer: SessionTimer | None = None
    refresh_key: str | None = None
    "The key of our session refresh (UPDATE / re-INVITE) awaiting its response."
    refresh_offer: SessionDescription | None = None
    "The offer of our refresh re-INVITE in flight (glare: an incoming offer gets 491)."
    update_refused: bool = False
    "The peer refused an UPDATE refresh (though in its Allow): refresh by re-INVITE."
    awaiting_ack_answer: bool = False
    "We answered an offer-less re-INVITE with an offer: the ACK carries the answer."
    early: set[DialogId] = field(default_factory=set)
    "The early dialogs (18x with a To-tag) the service maps to this leg (UPDATE, INFO)."
    early_answer: DialogId | None = None
    """The early dialog whose 18x SDP answer (or early UPDATE offer) set the leg's
    StreamSpec: a 2xx of that dialog without SDP keeps it (RFC 6337 §3.1.1)."""

    def new_offer(self) -> SessionDescription:
        """Our offer (initial INVITE, refresh re-INVITE, offer-less re-INVITE's 2xx)."""
        sd = self._describe(lambda version: make_offer(
            self.host, self.port, CODECS, direction=self.direction,
            session_id=self.session_id, session_version=version))  # fmt: skip
        self.offer = sd
        return sd

    def answer(self, offer: SessionDescription) -> tuple[bytes, Negotiated]:
        """Our answer to the peer's (re-)offer; raises ``SdpError``/``NoCommonCodec``."""
        agreed: list[Negotiated] = []

        def build(version: int) -> SessionDescription:
            sd, result = make_answer(offer, self.host, self.port, CODECS,
                                     session_id=self.session_id,
                                     session_version=version)  # fmt: skip
            agreed[:] = [result]
            return sd

        return self._describe(build).to_bytes(), agreed[0]

    def _describe(self, build: Callable[[int], SessionDescription]) -> SessionDescription:
        """Keep the o= version while what we describe is unchanged, else bump it
        (RFC 3264 §8)."""
        sd = build(self.version)
        body = sd.to_bytes()
        if self.last_sent and body != self.last_sent:
            self.version += 1
            sd = build(self.version)
            body = sd.to_bytes()
        self.last_sent = body
        return sd


def sdp_of(message: Message) -> SessionDescription | None:
    """The SDP body of *message*, or None (no body, another type, unparsable).

    A malformed Content-Type raises the SIP core's ``ParseError`` (a
    ``RemoteProtocolError``): it is the peer's fault like a bad body, so it means "no
    usable SDP" too; a 2xx without one is then hung up by the caller, never lost."""
    if not message.body:
        return None
    try:
        if message.content_type not in (None, "application/sdp"):
            return None
        return SessionDescription.parse(message.body)
    except (SdpError, ValueError, RemoteProtocolError):
        return None


def stream_spec(agreed: Negotiated, signal: Peer | None) -> StreamSpec | None:
    """The media bridge's view of an agreement; None for a codec it cannot relay, or
    a c= address that is no IP literal (a host name would be looked up, blocking, by
    every ``sendto`` in the event loop; "10.0.0.1/127" is a multicast TTL form): such an
    SDP is unusable, as a bad one is. *signal*: where the leg's SIP goes (its media from
    that host is the peer's own, for latching)."""
    if agreed.payload_type not in (0, 8) or not is_ip_literal(agreed.remote_address):
        return None
    event_pt = agreed.telephone_event_pt
    if event_pt is not None and not 96 <= event_pt <= 127:
        event_pt = None
    rtcp_port = None if agreed.remote_rtcp is None else agreed.remote_rtcp.port
    return StreamSpec(
        host=agreed.remote_address,
        port=agreed.remote_port,
        payload_type=agreed.payload_type,
        event_pt=event_pt,
        ptime=agreed.ptime,
        rtcp_port=rtcp_port,
        send=agreed.direction.sends and not agreed.remote_hold,
        # A peer that holds us may send nothing at all: never time it out then.
        receive=agreed.direction.receives and not agreed.remote_hold,
        signal_host=None if signal is None else signal.host,
    )


def bare_invite(uri: str) -> Request:
    """Our INVITE as ``session_timer_from_answer`` reads it: we send no Min-SE (we offer
    no timer, ``SessionTimerPolicy.offer`` is off), so an empty request stands for it."""
    return Request(Headers(), b"", "INVITE", uri)


def refresh_request(headers: list[tuple[str, str]]) -> Request:
    """Our refresh as ``session_timer_from_answer`` reads it (its Min-SE)."""
    out = Headers()
    for name, value in headers:
        out.add(name, value)
    return Request(out, b"", "UPDATE", "sip:x")

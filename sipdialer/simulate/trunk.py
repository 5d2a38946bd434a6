"""The loopback SIP trunk: a real SIP UAS on 127.0.0.1 that plays a carrier.

Theory of operation. ``SimTrunk`` listens on UDP (and TCP) through a ``SipEndpoint``.
Each INVITE's dialed number (the Request-URI user) picks the first matching
``Behaviour`` of its table (``behaviour.py``; ``DEFAULT_BEHAVIOURS`` documents the demo's
number plan); an unmatched number is answered 404. The behaviour's schedule runs as one
coroutine per call (``SimUas`` in ``sim_uas.py`` does the SIP/SDP mechanics):

    [401 challenge, retry with credentials] -> 180 | 183+SDP+RTP -> ring s ->
        200+SDP, RTP, [RFC 4733 digits] -> talk s -> BYE   (talk None: wait for BYE)
      | final failure (486, 603, 404, 480, 503 ...)
      | nothing more (status 0): the caller's CANCEL gets 487

A challenged INVITE is not a call: it is counted in ``challenges``; the retry carrying
the right digest (``username``/``password``, realm ``REALM``) becomes the call, a wrong
one is challenged again (our UA then gives up with 401). REGISTER is accepted (with the
same digest when credentials are set) and counted in ``registrations``. OPTIONS, in-dialog
re-INVITE (hold is answered with the mirrored direction), UPDATE and INFO are answered.

Every ``TrunkCall`` records the INVITE, the final status, when it was answered and ended,
who ended it, the negotiated codec, the audio received (decoded PCM16 in sequence order)
and the RFC 4733 digits received.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sipdialer.sip.auth_server import AuthOutcome, DigestServer
from sipdialer.sip.inspect import InspectionPolicy
from sipdialer.sip.message import Request
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.transaction.keys import ServerTransactionKey
from sipdialer.sip.ua import UaConfig
from sipdialer.sip.ua_events import IncomingCall, IncomingRequest, UaEvent

from .behaviour import DEFAULT_BEHAVIOURS, Behaviour, match_behaviour, parse_behaviour
from .sim_media import audio_for
from .sim_uas import SimCall, SimUas, request_user

__all__ = [
    "DEFAULT_BEHAVIOURS",
    "REALM",
    "Behaviour",
    "SimTrunk",
    "TrunkCall",
    "describe",
    "parse_behaviour",
]

REALM = "trunk.sim"
"Digest realm of the trunk's 401 challenges."
DTMF_AFTER = 0.5
"Seconds after answering that a behaviour's ``dtmf`` digits are sent."
REGISTER_EXPIRES = 300


@dataclass
class TrunkCall(SimCall):
    """One call the trunk took on (fields in ``SimCall``); ``behaviour`` is its row."""

    behaviour: Behaviour | None = None


class SimTrunk(SimUas):
    """The simulated carrier (module docstring)."""

    name = "trunk"

    def __init__(
        self,
        behaviours: Sequence[Behaviour] = DEFAULT_BEHAVIOURS,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str | None = None,
        password: str | None = None,
        rtp_ports: str = "40000-40999",
        timers: TimerConfig | None = None,
        tcp: bool = True,
    ) -> None:
        # REGISTER must be allowed, or the core answers it 405 before we see it.
        policy = InspectionPolicy(allow=(*InspectionPolicy().allow, "REGISTER"))
        config = UaConfig(host=host, port=port, user="trunk", user_agent="sipdialer-trunk-sim",
                          timers=timers or TimerConfig(), policy=policy)  # fmt: skip
        super().__init__(config, rtp_ports)
        self.behaviours = tuple(behaviours)
        self.listen = (host, port)
        self.username = username
        self.password = password
        self._tcp = tcp
        self.digest = DigestServer(REALM, secrets.token_bytes(32), algorithms=("MD5",))
        self.calls: list[TrunkCall] = []
        self.challenges = 0
        "INVITEs answered 401 (challenges, and retries with wrong credentials)."
        self.registrations = 0
        "REGISTERs accepted."
        self.last_register: Request | None = None
        self.endpoint.on_request("REGISTER", self._on_register)

    async def start(self) -> tuple[str, int]:
        """Bind and serve; returns the bound SIP address."""
        return await self._start_endpoint(*self.listen, tcp=self._tcp)

    # --- digest ---------------------------------------------------------------------

    def _authorized(self, request: Request) -> tuple[bool, bool]:
        """(accepted, stale) for a request that must carry our digest."""
        value = request.headers.get("Authorization")
        if value is None:
            return False, False
        result = self.digest.verify_header(
            value, request.method, self._lookup, self.endpoint.now, body=request.body
        )
        return result.ok, result.outcome is AuthOutcome.STALE

    def _lookup(self, username: str) -> str | None:
        if self.username is None or self.password is None or username != self.username:
            return None
        return self.password

    def _challenge(self, key: ServerTransactionKey, stale: bool) -> None:
        now = self.endpoint.now
        lines = [("WWW-Authenticate", str(c)) for c in self.digest.challenge(now, stale=stale)]
        self.endpoint.ua.respond(key, 401, now, headers=lines)

    # --- requests -------------------------------------------------------------------

    def _on_invite(self, event: UaEvent) -> None:
        if isinstance(event, IncomingCall):
            behaviour = match_behaviour(self.behaviours, request_user(event.request))
            if behaviour is not None and behaviour.challenge:
                ok, stale = self._authorized(event.request)
                if not ok:
                    self.challenges += 1
                    self._challenge(event.key, stale)
                    return
        super()._on_invite(event)

    def _new_call(self, event: IncomingCall) -> TrunkCall:
        number = request_user(event.request)
        call = TrunkCall(event.key, event.request, number, self.endpoint.now)
        call.behaviour = match_behaviour(self.behaviours, number)
        return call

    async def _on_new_call(self, call: SimCall) -> None:
        assert isinstance(call, TrunkCall)
        b = call.behaviour
        if b is None:
            self._fail(call, 404)
            return
        if b.status not in (0, 200) and b.ring <= 0 and not b.early_media:
            self._fail(call, b.status)
            return
        audio = None
        if b.answers or b.early_media:  # a plain failure needs no SDP (or sockets)
            await self._open_media(call)
            if call.ended or not self._negotiate(call, b.codec):
                return
            audio = audio_for(b.tone, b.wav)
        self._ring(call, early=b.early_media, audio=audio)
        if b.never_answers:
            return  # ringing until CANCEL
        await asyncio.sleep(b.ring)
        if not b.answers:
            self._fail(call, b.status)
            return
        if not self._answer(call, audio):
            return
        if b.dtmf:
            media = call.media
            assert media is not None
            self._later(call, DTMF_AFTER, lambda: media.send_dtmf(b.dtmf))
        if b.talk is not None:
            await asyncio.sleep(b.talk)
            self._hang_up(call)

    def _on_register(self, event: UaEvent) -> None:
        if not isinstance(event, IncomingRequest):
            return
        request, ua, now = event.request, self.endpoint.ua, self.endpoint.now
        if self.username is not None:
            ok, stale = self._authorized(request)
            if not ok:
                self._challenge(event.key, stale)
                return
        expires_text = request.headers.get("Expires")
        expires = int(expires_text) if expires_text and expires_text.isdigit() else None
        headers = []
        for contact in request.headers.get_all("Contact"):
            if contact.strip() == "*":
                continue
            if "expires=" not in contact.lower():
                contact += f";expires={REGISTER_EXPIRES if expires is None else expires}"
            headers.append(("Contact", contact))
        headers.append(("Expires", str(REGISTER_EXPIRES if expires is None else expires)))
        ua.respond(event.key, 200, now, headers=headers)
        self.registrations += 1
        self.last_register = request
        self._notify()


def describe(call: SimCall) -> str:
    """One log line for an ended call."""
    talk = "" if call.duration is None else f" talk={call.duration:.1f}s"
    codec = "-" if call.payload_type is None else {0: "PCMU", 8: "PCMA"}.get(call.payload_type, "?")
    parts = [
        f"call number={call.number or '-'} status={call.status}",
        f"ended_by={call.ended_by}{talk} codec={codec}",
        f"rtp_in={call.media.audio_packets if call.media else 0}",
    ]
    if call.dtmf:
        parts.append(f"dtmf={call.dtmf}")
    if call.cancelled:
        parts.append("cancelled")
    return " ".join(parts)

"""Simulated agent phones: register to a registrar with digest, then take calls.

Theory of operation. A ``SimPhone`` is one SIP phone (one extension) on its own
``SipEndpoint`` (UDP, an ephemeral port), so several share a process. ``start()``
REGISTERs its Contact with the registrar, answering the 401 with digest (``user`` /
``password``), and returns after the 200 (a 423 is retried with Min-Expires); the
binding is refreshed, same Call-ID and a higher CSeq, at 80% of the expiry the
registrar granted; ``close()`` un-REGISTERs (Expires: 0).

Each incoming INVITE plays out ``behaviour`` as it was when the INVITE arrived (it may be
changed between calls):

    180 -> answer_after s -> 200 + SDP, tone RTP, [RFC 4733 dtmf at dtmf_at s]
           -> [hangup_after s -> BYE]            (None: wait for the dialer's BYE)
    180 -> answer_after s -> reject (486 or 603)
    180 ... forever (never_answer) until CANCEL -> 487

``nat_port_shift`` makes the phone send its RTP from the port its SDP names plus that
shift, as behind a NAT (``sim_media``), to test symmetric latching. Every ``PhoneCall``
keeps the INVITE (``request``, ``dialer_headers``, ``header("Call-Info")``), the status,
the times, who ended it, the audio received and the digits received.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace

from sipdialer.sip.message import Response
from sipdialer.sip.peer import Peer
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.ua import UaConfig
from sipdialer.sip.ua_auth import Account
from sipdialer.sip.ua_events import IncomingCall, RequestFailed, ResponseReceived, UaEvent

from .sim_media import tone_pcm
from .sim_uas import SimCall, SimUas, request_user

__all__ = ["PhoneBehaviour", "PhoneCall", "RegistrationFailed", "SimPhone"]

log = logging.getLogger(__name__)

REGISTER_TIMEOUT = 5.0
"Seconds to wait for the registrar's final answer."
REFRESH_AT = 0.8
"Fraction of the granted expiry after which the binding is refreshed."


class RegistrationFailed(RuntimeError):
    """The registrar refused the REGISTER (``status``) or did not answer (408)."""

    def __init__(self, status: int, reason: str = "") -> None:
        super().__init__(f"REGISTER failed: {status} {reason}".strip())
        self.status = status
        self.min_expires: int | None = None
        "The Min-Expires of a 423."


@dataclass
class PhoneBehaviour:
    """What the agent at this phone does with the next call."""

    answer_after: float = 0.3
    "Seconds of 180 Ringing before the 200."
    reject: int | None = None
    "486 or 603 instead of answering."
    never_answer: bool = False
    "180 forever (until CANCEL)."
    tone: float = 440.0
    "Hz of the tone the phone sends once answered."
    codec: str = "PCMU"
    dtmf: str = ""
    "Digits sent as RFC 4733 ``dtmf_at`` seconds after answering."
    dtmf_at: float = 0.5
    hangup_after: float | None = None
    "The agent hangs up (BYE) this long after answering; None waits for the dialer."
    nat_port_shift: int = 0
    "Send RTP from the advertised port + this (symmetric latching tests)."


@dataclass
class PhoneCall(SimCall):
    """One call the phone took (fields in ``SimCall``); ``behaviour`` as it was."""

    behaviour: PhoneBehaviour | None = None


class SimPhone(SimUas):
    """One simulated agent phone (module docstring)."""

    name = "phone"

    def __init__(
        self,
        user: str,
        password: str,
        registrar: tuple[str, int],
        behaviour: PhoneBehaviour | None = None,
        *,
        host: str = "127.0.0.1",
        rtp_ports: str = "41000-41999",
        expires: int = 300,
        timers: TimerConfig | None = None,
    ) -> None:
        config = UaConfig(host=host, port=0, user=user, user_agent="sipdialer-sim-phone",
                          timers=timers or TimerConfig())  # fmt: skip
        super().__init__(config, rtp_ports)
        self.user = user
        self.account = Account(user, password)
        self.registrar = Peer("UDP", *registrar)
        self.behaviour = behaviour or PhoneBehaviour()
        self.expires = expires
        self.calls: list[PhoneCall] = []
        self.registered = False
        self.registrations = 0
        "REGISTERs the registrar accepted (refreshes included)."
        self.address: tuple[str, int] | None = None
        self._register_call_id: str | None = None
        self._cseq = 1
        self._waiting: dict[str, asyncio.Future[Response | int]] = {}
        self._refresh: asyncio.TimerHandle | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self.endpoint.on_event(self._on_register_event)

    async def start(self) -> None:
        """Bind, REGISTER with digest; returns after the 200 (raises RegistrationFailed)."""
        self.address = await self._start_endpoint(self.host, 0, tcp=False)
        await self.register(self.expires)

    async def close(self) -> None:
        """Un-REGISTER (Expires: 0), hang up, close."""
        if self._refresh is not None:
            self._refresh.cancel()
        if self._refreshing is not None:
            self._refreshing.cancel()
        if self.registered:
            with contextlib.suppress(RegistrationFailed, TimeoutError):
                await self.register(0)
        await super().close()

    # --- registration ---------------------------------------------------------------

    async def register(self, expires: int) -> None:
        """REGISTER (0 removes the binding) and wait for the final answer; a 423 is
        retried once with the registrar's Min-Expires (RFC 3261 §10.2.8)."""
        try:
            await self._register_once(expires)
        except RegistrationFailed as exc:
            if exc.min_expires is None:
                raise
            self.expires = max(self.expires, exc.min_expires)
            await self._register_once(exc.min_expires)

    async def _register_once(self, expires: int) -> None:
        ua, target = self.endpoint.ua, self.registrar
        aor = f"sip:{self.user}@{target.host}"
        request = ua.new_request(
            "REGISTER", f"sip:{target.host}:{target.port}", target, from_uri=aor, to_uri=aor,
            call_id=self._register_call_id, cseq=self._cseq,
            headers=[("Expires", str(expires))],
        )  # fmt: skip
        self._register_call_id = request.call_id
        future: asyncio.Future[Response | int] = asyncio.get_running_loop().create_future()
        key = ua.send(request, target, self.endpoint.now, credentials=self.account)
        self._waiting[key] = future
        self.endpoint.flush()
        try:
            answer = await asyncio.wait_for(future, REGISTER_TIMEOUT)
        finally:
            self._waiting.pop(key, None)
        if isinstance(answer, int):
            raise RegistrationFailed(answer, "no response")
        self._cseq = answer.cseq.number + 1
        if not answer.is_success:
            failure = RegistrationFailed(answer.status_code, answer.reason)
            min_expires = answer.headers.get("Min-Expires") or ""
            if answer.status_code == 423 and min_expires.strip().isdigit():
                failure.min_expires = int(min_expires)
            raise failure
        self.registrations += 1
        self.registered = expires > 0
        self._notify()
        if self.registered:
            self._schedule_refresh(_granted(answer, expires))

    def _schedule_refresh(self, granted: int) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
        loop = asyncio.get_running_loop()
        self._refresh = loop.call_later(max(1.0, granted * REFRESH_AT), self._refresh_now)

    def _refresh_now(self) -> None:
        self._refresh = None
        self._refreshing = asyncio.ensure_future(self._refresh_binding())

    async def _refresh_binding(self) -> None:
        try:
            await self.register(self.expires)
        except (RegistrationFailed, TimeoutError) as exc:
            log.warning("phone %s: refreshing the registration failed: %s", self.user, exc)
            self.registered = False

    def _on_register_event(self, event: UaEvent) -> None:
        if isinstance(event, ResponseReceived) and event.key in self._waiting:
            if event.response.status_code >= 200:
                future = self._waiting[event.key]
                if not future.done():
                    future.set_result(event.response)
        elif isinstance(event, RequestFailed) and event.key in self._waiting:
            future = self._waiting[event.key]
            if not future.done():
                future.set_result(event.status)

    # --- calls ----------------------------------------------------------------------

    def _new_call(self, event: IncomingCall) -> PhoneCall:
        call = PhoneCall(event.key, event.request, request_user(event.request), self.endpoint.now)
        call.behaviour = replace(self.behaviour)
        return call

    async def _on_new_call(self, call: SimCall) -> None:
        assert isinstance(call, PhoneCall) and call.behaviour is not None
        b = call.behaviour
        answering = b.reject is None and not b.never_answer
        if answering:
            await self._open_media(call, nat_port_shift=b.nat_port_shift)
            if call.ended or not self._negotiate(call, b.codec):
                return
        self._ring(call)
        if b.never_answer:
            return
        await asyncio.sleep(b.answer_after)
        if b.reject is not None:
            self._fail(call, b.reject)
            return
        if not self._answer(call, tone_pcm(b.tone)):
            return
        if b.dtmf:
            media = call.media
            assert media is not None
            self._later(call, b.dtmf_at, lambda: media.send_dtmf(b.dtmf))
        if b.hangup_after is not None:
            await asyncio.sleep(b.hangup_after)
            self._hang_up(call)


def _granted(response: Response, asked: int) -> int:
    """The expiry the registrar granted: our Contact's expires, else Expires, else ours."""
    for contact in response.headers.get_all("Contact"):
        lower = contact.lower()
        if "expires=" in lower:
            value = lower.split("expires=", 1)[1].split(";", 1)[0].strip()
            if value.isdigit():
                return int(value)
    expires = response.headers.get("Expires")
    return int(expires) if expires and expires.strip().isdigit() else asked

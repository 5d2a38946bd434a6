"""What the simulated trunk and the simulated phones share: one answering SIP party.

Theory of operation. ``SimUas`` owns a ``SipEndpoint`` and a ``PortPool`` and keeps one
``SimCall`` per INVITE it took on. A subclass decides what to do with a new call
(``_on_new_call``: answer, refuse, ring) and writes that as a coroutine per call, using
the helpers here, which do the SIP and SDP parts:

- ``_ring(call, early=...)`` sends 180, or 183 with the SDP answer and starts the early
  media; ``_answer(call)`` sends 200 with the SDP answer and starts the audio;
  ``_fail(call, status)`` sends a final failure; ``_hang_up(call)`` sends BYE.
- The SDP answer comes from ``sdp_offer.make_answer``: the party's preferred codec when
  the offer has it, else the other G.711 law (488 when the offer has neither). An
  INVITE without SDP gets our offer in the 200 and the answer is read from the ACK
  (RFC 3264 late offer), media starting then.
- In-dialog: a re-INVITE or an UPDATE with SDP is answered 200 with an answer whose
  direction mirrors the offer (sendonly -> recvonly, inactive -> inactive), and sending
  stops while we are held; OPTIONS, INFO and an UPDATE without SDP get 200 (an INFO
  ``Signal=`` digit counts as DTMF). Out-of-dialog OPTIONS is answered by the core.
- RTP ports: every party of the process built with the same ``rtp_ports`` range shares
  one ``PortPool``, so several phones in one process do not race for the same pairs.
- The end of a call, whatever its cause (our final failure, CANCEL -> 487, BYE either
  way, no ACK), goes through ``_end``: times and who ended it are recorded, the call's
  task and timers are cancelled, its media is closed, ``on_call_ended`` is called and
  ``wait_calls`` waiters wake up.

Times (``started_at``, ``answered_at``, ``ended_at``) are the event loop's clock.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sipdialer.media.ports import PortPool
from sipdialer.sip.dialog import DialogId
from sipdialer.sip.message import Request
from sipdialer.sip.sdp import NoCommonCodec, SdpError, SessionDescription
from sipdialer.sip.sdp_offer import Negotiated, make_answer, make_offer, negotiated
from sipdialer.sip.transaction.keys import ServerTransactionKey
from sipdialer.sip.ua import UaConfig
from sipdialer.sip.ua_events import (
    CallCancelled,
    CallConfirmed,
    DialogTerminated,
    IncomingCall,
    IncomingRequest,
    UaEvent,
)
from sipdialer.sip.uri import SipUri
from sipdialer.transport.endpoint import SipEndpoint

from .sim_media import SimMedia

log = logging.getLogger(__name__)


@dataclass
class SimCall:
    """One INVITE a simulated party took on, and what happened to it."""

    key: ServerTransactionKey
    request: Request
    "The INVITE as received (headers: From, X-Dialer-*, Call-Info ...)."
    number: str
    "The Request-URI user (the dialed number, or the phone's extension)."
    started_at: float
    status: int | None = None
    "The final status we sent (487 after CANCEL)."
    answered_at: float | None = None
    confirmed_at: float | None = None
    "When the ACK for our 200 arrived."
    ended_at: float | None = None
    ended_by: str | None = None
    "Our party's name when we sent the final failure or BYE, else ``remote``."
    cancelled: bool = False
    payload_type: int | None = None
    "The codec negotiated (0 PCMU, 8 PCMA)."
    dialog: DialogId | None = None
    media: SimMedia | None = None
    negotiated: Negotiated | None = None
    on_hold: bool = False
    "The peer holds us now (its last offer was sendonly/inactive/c=0.0.0.0)."
    holds: int = 0
    "How many times the peer put us on hold."
    reinvites: int = 0
    info_dtmf: str = ""
    "Digits received as SIP INFO (application/dtmf-relay)."
    answer_sdp: bytes = b""
    our_offer: SessionDescription | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    timers: list[asyncio.TimerHandle] = field(default_factory=list, repr=False)
    _session: int = field(default_factory=lambda: secrets.randbelow(2**31), repr=False)
    _version: int = 1

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    @property
    def received(self) -> NDArray[np.int16]:
        """The audio received: decoded PCM16 in sequence order."""
        return self.media.received if self.media is not None else np.zeros(0, dtype=np.int16)

    @property
    def dtmf(self) -> str:
        """RFC 4733 digits received (one per event), then any SIP INFO digits."""
        return (self.media.dtmf if self.media is not None else "") + self.info_dtmf

    @property
    def duration(self) -> float | None:
        """Seconds from the 200 to the end, for answered calls that ended."""
        if self.answered_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.answered_at

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    @property
    def dialer_headers(self) -> dict[str, str]:
        """The INVITE's ``X-Dialer-*`` headers by name."""
        return {n: v for n, v in self.request.headers if n.lower().startswith("x-dialer-")}


def request_user(request: Request) -> str:
    try:
        uri = request.request_uri
    except ValueError:
        return ""
    return uri.user or "" if isinstance(uri, SipUri) else ""


_INFO_SIGNAL = re.compile(r"^\s*Signal\s*=\s*([0-9*#A-Da-d])", re.MULTILINE)


class SimUas:
    """The shared answering party; see the module docstring."""

    name = "sim"
    "Recorded as ``ended_by`` when we end a call."

    def __init__(self, config: UaConfig, rtp_ports: str) -> None:
        self.endpoint = SipEndpoint(config)
        self.host = config.host
        self._ports = shared_pool(rtp_ports)
        self.calls: list[Any] = []
        self._by_key: dict[ServerTransactionKey, SimCall] = {}
        self._by_dialog: dict[DialogId, SimCall] = {}
        self._changed: asyncio.Event | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.on_call_ended: Callable[[Any], None] | None = None
        "Called once per call when it ends (the CLI logs a line)."
        self.endpoint.on_request("INVITE", self._on_invite)
        self.endpoint.on_request("UPDATE", self._on_update)
        for method in ("OPTIONS", "INFO"):
            self.endpoint.on_request(method, self._on_in_dialog)
        self.endpoint.on_event(self._on_event)

    # --- lifecycle ------------------------------------------------------------------

    async def _start_endpoint(self, host: str, port: int, *, tcp: bool) -> tuple[str, int]:
        self._changed = asyncio.Event()
        return await self.endpoint.start(host, port, tcp=tcp)

    async def close(self) -> None:
        """Hang up live calls with BYE, stop every call, close media and the endpoint."""
        for call in self.calls:
            if call.ended:
                continue
            if call.dialog is not None and call.answered_at is not None:
                self._hang_up(call)
            else:
                self._fail(call, 480)
        for call in self.calls:
            if call.task is not None and not call.task.done():
                call.task.cancel()
        await self._drain_closing()
        await self.endpoint.close()

    async def _drain_closing(self) -> None:
        while self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)

    async def wait_calls(self, n: int, timeout: float) -> None:
        """Wait until ``n`` calls have ended; raises ``TimeoutError`` after ``timeout``."""
        await self.wait_until(lambda: sum(c.ended for c in self.calls) >= n, timeout)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until ``predicate()`` holds (checked on every call change)."""
        assert self._changed is not None, "start() first"
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    # --- new calls ------------------------------------------------------------------

    def _new_call(self, event: IncomingCall) -> SimCall:
        """Build the subclass's call record (TrunkCall, PhoneCall)."""
        raise NotImplementedError

    def _on_new_call(self, call: SimCall) -> Coroutine[Any, Any, None]:
        """The coroutine that plays out ``call`` (ring, answer, hang up ...)."""
        raise NotImplementedError

    def _on_invite(self, event: UaEvent) -> None:
        if isinstance(event, IncomingRequest) and event.dialog is not None:
            self._on_reinvite(event)
        elif isinstance(event, IncomingCall):
            self._take_call(event)

    def _take_call(self, event: IncomingCall) -> None:
        call = self._new_call(event)
        self.calls.append(call)
        self._by_key[event.key] = call
        call.task = asyncio.ensure_future(self._run_call(call))
        self._notify()

    async def _run_call(self, call: SimCall) -> None:
        try:
            await self._on_new_call(call)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("simulated call %s failed", call.number)
            if not call.ended:
                self._fail(call, 500)
        finally:
            self.endpoint.flush()

    async def _open_media(self, call: SimCall, *, nat_port_shift: int = 0) -> None:
        call.media = await SimMedia.open(self.host, self._ports, nat_port_shift=nat_port_shift)
        if call.ended:  # cancelled while the sockets were being bound
            self._close_media(call)

    def _negotiate(self, call: SimCall, codec: str) -> bool:
        """Prepare our SDP for ``call`` from its offer; on failure answer 488."""
        assert call.media is not None
        if not call.request.body:
            call.our_offer = make_offer(self.host, call.media.port, (codec,),
                                        session_id=call._session, session_version=1)  # fmt: skip
            call.answer_sdp = call.our_offer.to_bytes()
            return True
        try:
            offer = SessionDescription.parse(call.request.body)
            answer, agreed = self._make_answer(call, offer, codec)
        except SdpError as exc:
            self._fail(call, 488, reason=f"Not Acceptable Here ({exc})"[:100])
            return False
        call.answer_sdp = answer.to_bytes()
        self._apply(call, agreed)
        return True

    def _make_answer(
        self, call: SimCall, offer: SessionDescription, codec: str
    ) -> tuple[SessionDescription, Negotiated]:
        """Answer with ``codec`` if offered, else the other G.711 law (NoCommonCodec)."""
        assert call.media is not None
        other = "PCMA" if codec.upper() == "PCMU" else "PCMU"
        for supported in ((codec,), (other,)):
            try:
                return make_answer(offer, self.host, call.media.port, supported,
                                   session_id=call._session,
                                   session_version=call._version)  # fmt: skip
            except NoCommonCodec:
                if supported == (other,):
                    raise
        raise AssertionError("unreachable")

    def _apply(self, call: SimCall, agreed: Negotiated) -> None:
        """Point the media at what was agreed; send only when the peer lets us."""
        call.negotiated = agreed
        call.payload_type = agreed.payload_type
        held = agreed.remote_hold
        if held and not call.on_hold:
            call.holds += 1
        call.on_hold = held
        if call.media is not None:
            remote = (agreed.remote_address, agreed.remote_port)
            call.media.configure(remote, agreed.payload_type, agreed.telephone_event_pt)

    def _may_send(self, call: SimCall) -> bool:
        agreed = call.negotiated
        return agreed is not None and agreed.direction.sends and not agreed.remote_hold

    # --- the helpers a call's coroutine uses ----------------------------------------

    def _ring(self, call: SimCall, *, early: bool = False, audio: Any = None) -> None:
        """180, or 183 with our SDP answer and early media (``audio`` PCM16)."""
        ua, now = self.endpoint.ua, self.endpoint.now
        if early and call.request.body and call.answer_sdp:
            call.dialog = ua.respond(call.key, 183, now, body=call.answer_sdp)
            if call.media is not None and audio is not None and self._may_send(call):
                call.media.start(audio)
        else:
            call.dialog = ua.respond(call.key, 180, now)
        self._index_dialog(call)
        self.endpoint.flush()

    def _answer(self, call: SimCall, audio: Any = None) -> bool:
        """200 with our SDP; the audio starts now (or at the ACK for a late offer)."""
        if call.ended:
            return False
        ua, now = self.endpoint.ua, self.endpoint.now
        call.dialog = ua.respond(call.key, 200, now, body=call.answer_sdp)
        call.status = 200
        call.answered_at = now
        self._by_key.pop(call.key, None)
        self._index_dialog(call)
        if call.media is not None and audio is not None:
            call.media.audio = audio  # kept for a late offer's ACK and for resume
            if self._may_send(call):
                call.media.start(audio)
        self.endpoint.flush()
        self._notify()
        return True

    def _fail(self, call: SimCall, status: int, *, reason: str | None = None) -> None:
        if call.ended:
            return
        self.endpoint.ua.respond(call.key, status, self.endpoint.now, reason=reason)
        call.status = status
        self._end(call, by=self.name)
        self.endpoint.flush()

    def _hang_up(self, call: SimCall) -> None:
        """BYE; ``DialogTerminated`` (by us) then ends the call."""
        if call.dialog is not None and not call.ended:
            self.endpoint.ua.bye(call.dialog, self.endpoint.now)
            self.endpoint.flush()

    def _later(self, call: SimCall, delay: float, action: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        call.timers.append(loop.call_later(delay, action))

    def _index_dialog(self, call: SimCall) -> None:
        if call.dialog is not None:
            self._by_dialog[call.dialog] = call

    # --- events ---------------------------------------------------------------------

    def _on_event(self, event: UaEvent) -> None:
        if isinstance(event, CallCancelled):
            call = self._by_key.get(event.key)
            if call is not None and not call.ended:
                call.cancelled = True
                call.status = 487
                self._end(call, by="remote")
        elif isinstance(event, CallConfirmed):
            call = self._by_dialog.get(event.dialog)
            if call is not None and not event.reinvite:
                call.confirmed_at = self.endpoint.now
                self._late_answer(call, event.ack)
                self._notify()
        elif isinstance(event, DialogTerminated):
            call = self._by_dialog.pop(event.dialog, None)
            if call is not None and not call.ended:
                self._end(call, by="remote" if event.by_remote else self.name)

    def _late_answer(self, call: SimCall, ack: Request) -> None:
        """The SDP answer of a late-offer call arrives in the ACK."""
        if call.our_offer is None or not ack.body or call.media is None:
            return
        try:
            agreed = negotiated(call.our_offer, SessionDescription.parse(ack.body))
        except SdpError:
            return
        self._apply(call, agreed)
        if self._may_send(call):
            call.media.start()

    def _on_update(self, event: UaEvent) -> None:
        if isinstance(event, IncomingRequest) and event.dialog is not None and event.request.body:
            self._on_reinvite(event)
        else:
            self._on_in_dialog(event)

    def _on_reinvite(self, event: IncomingRequest) -> None:
        """A re-INVITE (or an UPDATE with SDP) in one of our dialogs."""
        assert event.dialog is not None
        ua, now = self.endpoint.ua, self.endpoint.now
        call = self._by_dialog.get(event.dialog)
        if call is None or call.media is None or call.payload_type is None:  # late offer
            ua.respond(event.key, 200 if call is not None else 481, now,
                       body=call.answer_sdp if call is not None else b"")  # fmt: skip
            return
        call.reinvites += 1
        codec = "PCMA" if call.payload_type == 8 else "PCMU"
        if not event.request.body:  # offer-less re-INVITE: offer what we have
            ua.respond(event.key, 200, now, body=call.answer_sdp)
            return
        call._version += 1
        try:
            offer = SessionDescription.parse(event.request.body)
            answer, agreed = self._make_answer(call, offer, codec)
        except SdpError as exc:
            ua.respond(event.key, 488, now, reason=f"Not Acceptable Here ({exc})"[:100])
            return
        call.answer_sdp = answer.to_bytes()
        ua.respond(event.key, 200, now, body=call.answer_sdp)
        self._apply(call, agreed)
        if self._may_send(call):
            if not call.media.sending:
                call.media.start()
        else:
            call.media.stop()
        self._notify()

    def _on_in_dialog(self, event: UaEvent) -> None:
        if not isinstance(event, IncomingRequest):
            return
        request = event.request
        call = self._by_dialog.get(event.dialog) if event.dialog is not None else None
        if request.method == "INFO" and call is not None:
            match = _INFO_SIGNAL.search(request.body.decode("utf-8", "replace"))
            if match:
                call.info_dtmf += match.group(1).upper()
        self.endpoint.ua.respond(event.key, 200, self.endpoint.now)

    def _end(self, call: SimCall, *, by: str) -> None:
        call.ended_at = self.endpoint.now
        call.ended_by = by
        self._by_key.pop(call.key, None)
        if call.dialog is not None:
            self._by_dialog.pop(call.dialog, None)
        for timer in call.timers:
            timer.cancel()
        call.timers.clear()
        task = call.task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        self._close_media(call)
        if self.on_call_ended is not None:
            try:
                self.on_call_ended(call)
            except Exception:
                log.exception("on_call_ended failed")
        self._notify()

    def _close_media(self, call: SimCall) -> None:
        if call.media is None:
            return
        call.media.stop()
        closing = asyncio.ensure_future(call.media.close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)


_POOLS: dict[str, PortPool] = {}


def shared_pool(rtp_ports: str) -> PortPool:
    """The process's one ``PortPool`` for the range ``rtp_ports`` (module docstring)."""
    pool = _POOLS.get(rtp_ports)
    if pool is None:
        pool = _POOLS[rtp_ports] = PortPool.from_range(rtp_ports)
    return pool

"""Feature-code calls: a phone dials ``*1``/``*2``/``*0`` to set its agent's status.

The INVITE is authenticated like a REGISTER (digest against the agent's password,
the same lockout), the status is set, the call is answered with an SDP answer, a
short confirmation beep is sent as RTP and the dialer hangs up with BYE. A dialed
number that is no feature code gets 404 (the dialer takes no other inbound calls).
Decisions live in ``dialer/feature_codes.py``, ``sip/registrar.py`` and ``sdp``;
this shell sequences them and owns the RTP socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable

from sipdialer.config import MediaConfig
from sipdialer.dialer.agents import Agents, AgentStatus
from sipdialer.dialer.feature_codes import FeatureCodeMap
from sipdialer.media.ports import PortPair, PortPool, PortsExhausted
from sipdialer.sip.dialog import DialogId
from sipdialer.sip.registrar import RegisterAnswer
from sipdialer.sip.sdp import SdpError, SessionDescription
from sipdialer.sip.sdp_offer import make_answer
from sipdialer.sip.ua_events import (
    CallConfirmed,
    DialogTerminated,
    IncomingCall,
    IncomingRequest,
    UaEvent,
)
from sipdialer.sip.uri import SipUri

from .beep import BEEP_SECONDS, send_beep
from .endpoint import Handler, SipEndpoint
from .registrar import RegistrarService

log = logging.getLogger(__name__)


class FeatureCallService:
    def __init__(
        self,
        endpoint: SipEndpoint,
        registrar: RegistrarService,
        agents: Agents,
        codes: FeatureCodeMap,
        media: MediaConfig,
        ports: PortPool | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.registrar = registrar
        self.agents = agents
        self.codes = codes
        # The same pool as the media bridge's (PhoneSystem passes it): a beep's port is
        # then never one a bridged call holds.
        self.ports = ports if ports is not None else PortPool.from_range(media.rtp_ports)
        self._pairs: dict[DialogId, PortPair] = {}
        self._calls: dict[DialogId, tuple[str, int, int, int]] = {}
        "Answered feature calls: dialog → (remote RTP host, port, payload type, our port)."
        self._tasks: dict[DialogId, asyncio.Task[None]] = {}
        self.in_dialog: Handler | None = None
        "Gets the in-dialog INVITEs (re-INVITEs) this handler receives: the call service's."
        self.on_status: Callable[[str, AgentStatus], None] | None = None
        "Told (agent id, status) after a feature code set an agent's status (the runner)."
        endpoint.on_request("INVITE", self._on_invite)
        endpoint.on_event(self._on_event)

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_invite(self, event: UaEvent) -> None:
        if isinstance(event, IncomingRequest) and self.in_dialog is not None:
            self.in_dialog(event)
            return
        if not isinstance(event, IncomingCall):
            return
        ua, now, request = self.endpoint.ua, self.endpoint.now, event.request
        user = self.registrar.registrar.authenticate(request, event.peer, now)
        if isinstance(user, RegisterAnswer):
            ua.respond(event.key, user.status, now, reason=user.reason, headers=list(user.headers))
            return
        uri = request.request_uri
        status = self.codes.status_for(uri.user if isinstance(uri, SipUri) else None)
        if status is None:
            ua.respond(event.key, 404, now)
            return
        if user not in self.agents or not self.registrar.is_registered(user):
            ua.respond(event.key, 403, now, reason="Register First")
            return
        try:
            pair = self.ports.allocate()
        except PortsExhausted:
            ua.respond(event.key, 503, now, reason="No Media Ports")
            return
        port = pair.rtp
        try:
            offer = SessionDescription.parse(request.body)
            answer, negotiated = make_answer(
                offer, ua.config.host, port,
                session_id=secrets.randbelow(2**31), session_version=1,
            )  # fmt: skip
        except SdpError as exc:
            self.ports.release(pair)
            ua.respond(event.key, 488, now, reason=f"Not Acceptable Here ({exc})"[:100])
            return
        self.agents[user].set_status(now, status)
        log.info("agent %s set status %s by feature code", user, status.value)
        if self.on_status is not None:
            self.on_status(user, status)
        dialog = ua.respond(event.key, 200, now, body=answer.to_bytes())
        if dialog is None:
            self.ports.release(pair)
            return
        remote = (negotiated.remote_address, negotiated.remote_port, negotiated.payload_type,
                  port)  # fmt: skip
        self._calls[dialog] = remote
        self._pairs[dialog] = pair

    def _release(self, dialog: DialogId) -> None:
        pair = self._pairs.pop(dialog, None)
        if pair is not None:
            self.ports.release(pair)

    def _on_event(self, event: UaEvent) -> None:
        if isinstance(event, CallConfirmed) and event.dialog in self._calls:
            host, port, pt, local = self._calls[event.dialog]
            self._tasks[event.dialog] = asyncio.ensure_future(
                self._confirm(event.dialog, host, port, pt, local)
            )
        elif isinstance(event, DialogTerminated):
            self._calls.pop(event.dialog, None)
            task = self._tasks.pop(event.dialog, None)
            if task is None:
                self._release(event.dialog)  # never confirmed: no beep holds the port
            if task is not None and not event.by_remote:
                return  # our own BYE after the beep
            if task is not None:
                task.cancel()

    async def _confirm(self, dialog: DialogId, host: str, port: int, pt: int, local: int) -> None:
        address = (self.endpoint.ua.config.host, local)
        try:
            await asyncio.wait_for(send_beep(host, port, pt, address), BEEP_SECONDS + 2)
        except (OSError, TimeoutError) as exc:
            log.info("confirmation tone to %s:%d failed: %s", host, port, exc)
        finally:
            self._release(dialog)
            if self.endpoint.ua.dialog(dialog) is not None:
                self.endpoint.ua.bye(dialog, self.endpoint.now)
                self.endpoint.flush()

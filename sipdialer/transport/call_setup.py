"""Setting up the legs of a progressive call: the part of the call service that sends.

``CallSetup`` is the base of ``transport.calls.CallService`` (the ``ua_base``/``ua_uac``
split of the UA, applied to the call service): the shared state (calls by id, by INVITE
handle, by dialog), ``LiveCall``, and the steps that need IO before or while an INVITE
goes out: the agent's binding and the call's RTP ports (``_originate``), the trunk's
address and gate (``_dial``), building and sending each leg's INVITE (``_send_invite``),
following a 3xx to the trunk's own address only (``_at_trunk``, ``_redirect``) and
reading an SDP answer into the media bridge (``_apply_answer``). The rules these
follow are in ``transport.calls``'s docstring.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from sipdialer.calls.call import Call
from sipdialer.calls.call_legs import Leg, LegState
from sipdialer.calls.causes import HangupCause, LocalFailure
from sipdialer.calls.headers import dialer_headers
from sipdialer.calls.redirect import Redirects
from sipdialer.calls.routes import NoRoute, RoutePlan, plan_route
from sipdialer.calls.trunks import TrunkGate, TrunkGates
from sipdialer.config import Config
from sipdialer.media.bridge import CallMedia, MediaManager, PortsExhausted
from sipdialer.sip.bindings import ip_or_none
from sipdialer.sip.dialog import DialogId
from sipdialer.sip.message import Message
from sipdialer.sip.peer import Peer
from sipdialer.sip.sdp import SdpError
from sipdialer.sip.sdp_offer import negotiated
from sipdialer.sip.ua_auth import Account
from sipdialer.sip.uri import SipUri, parse_sip_uri

from .call_legs import LegSip, display_name, sdp_of, sip_user, stream_spec
from .endpoint import SipEndpoint
from .registrar import RegistrarService

log = logging.getLogger("sipdialer.transport.calls")


@dataclass
class LiveCall:
    """One call in the service: its pure core and what the shell holds for it."""

    core: Call
    media: CallMedia | None = None
    agent: LegSip | None = None
    member: LegSip | None = None
    plan: RoutePlan | None = None
    gate: TrunkGate | None = None
    "The trunk gate that admitted the member leg: released when the call ends."
    dialing: bool = False
    timer: asyncio.TimerHandle | None = None
    timer_at: float | None = None
    recording: str | None = None
    agent_target: tuple[str, Peer] | None = None
    "(Request-URI, address) of the agent's binding."
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def sip(self, leg: Leg) -> LegSip | None:
        return self.agent if leg is Leg.AGENT else self.member


class CallSetup:
    """The shared state and the sending half of ``CallService`` (module docstring)."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        registrar: RegistrarService,
        config: Config,
        media: MediaManager,
    ) -> None:
        self.endpoint = endpoint
        self.registrar = registrar
        self.config = config
        self.media = media
        self.gates = TrunkGates.from_config(config.trunks)
        self._calls: dict[str, LiveCall] = {}
        self._handles: dict[str, tuple[LiveCall, Leg]] = {}
        self._dialogs: dict[DialogId, tuple[LiveCall, Leg]] = {}
        self._resolved: dict[str, str] = {}

    def _run(self, live: LiveCall) -> None:
        """Execute the core's commands and publish its events (``CallService``)."""
        raise NotImplementedError

    def _on_media_timeout(self, call_id: str) -> None:
        """The media bridge saw no RTP for media_timeout (``CallService``)."""
        raise NotImplementedError

    # --- setting a call up --------------------------------------------------------------

    def _spawn(self, live: LiveCall, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        live.tasks.add(task)
        task.add_done_callback(lambda t: self._task_done(live, t))

    def _task_done(self, live: LiveCall, task: asyncio.Task[None]) -> None:
        live.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: setup failed", live.core.call_id, exc_info=task.exception())
            live.core.hangup(HangupCause.CRASH, self.endpoint.now)
            self._run(live)

    async def _originate(self, live: LiveCall) -> None:
        core = live.core
        order = core.order
        bindings = self.registrar.lookup(order.agent_id)
        if not bindings:
            core.agent_not_reachable(LocalFailure.NO_BINDING, self.endpoint.now)
            self._run(live)
            return
        try:
            media = await self.media.open(order.call_id, self._on_media_timeout)
        except (PortsExhausted, OSError) as exc:
            log.error("call %s: no RTP ports: %s", order.call_id, exc)
            core.hangup(HangupCause.SWITCH_CONGESTION, self.endpoint.now)
            self._run(live)
            return
        if core.ending:  # hung up while the ports were being bound: CLOSE has run
            media.close()
            return
        live.media = media
        binding = bindings[0]
        live.agent_target = (str(binding.uri), binding.target())
        live.agent = LegSip(media.agent_port, media.host)
        core.offer_agent(self.endpoint.now)
        self._run(live)

    async def _dial(self, live: LiveCall, plan: RoutePlan, gate: TrunkGate) -> None:
        core = live.core
        trunk = plan.trunk
        try:
            host = await self._resolve(trunk.host)
        except OSError as exc:
            log.warning("trunk %s: cannot resolve %s: %s", trunk.name, trunk.host, exc)
            core.member_not_dialed(HangupCause.NORMAL_TEMPORARY_FAILURE, self.endpoint.now,
                                   trunk=trunk.name, dialed=plan.dialed)  # fmt: skip
            self._run(live)
            return
        loop = asyncio.get_running_loop()
        while True:
            if core.ending:
                self._run(live)
                return
            wait = gate.admit(loop.time())
            if wait is None:
                break
            if math.isinf(wait):  # the last line went while we waited for cps
                core.member_not_dialed(HangupCause.NORMAL_CIRCUIT_CONGESTION, self.endpoint.now,
                                       trunk=trunk.name, dialed=plan.dialed)  # fmt: skip
                self._run(live)
                return
            await asyncio.sleep(max(0.0, wait - loop.time()))
        live.gate = gate
        assert live.media is not None
        destination = Peer(trunk.transport.upper(), host, trunk.port)
        live.member = LegSip(live.media.member_port, live.media.host, destination=destination)
        core.dial_member(self.endpoint.now, trunk=trunk.name, dialed=plan.dialed,
                         call_timeout=plan.call_timeout)  # fmt: skip
        self._run(live)

    async def _resolve(self, host: str) -> str:
        if ip_or_none(host) is not None:
            return host.strip("[]")
        cached = self._resolved.get(host)
        if cached is not None:
            return cached
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        if not infos:
            raise OSError(f"no address for {host}")
        address = str(infos[0][4][0])
        self._resolved[host] = address
        return address

    def _send_invite(self, live: LiveCall, leg: Leg, headers: list[tuple[str, str]]) -> None:
        ua, now, order = self.endpoint.ua, self.endpoint.now, live.core.order
        host = ua.config.host
        if leg is Leg.AGENT:
            assert live.agent is not None and live.agent_target is not None
            sip = live.agent
            uri, sip.destination = live.agent_target
            from_uri = f"sip:{sip_user(order.number, 'dialer')}@{host}"
            handle = ua.invite(
                uri, sip.destination, now, from_uri=from_uri,
                to_uri=f"sip:{sip_user(order.agent_id, 'agent')}@{host}",
                from_name=display_name(order.member_name) or None,
                body=sip.new_offer().to_bytes(), headers=headers,
            )  # fmt: skip
        else:
            assert live.member is not None and live.plan is not None
            sip = live.member
            trunk = live.plan.trunk
            user = sip_user(live.plan.dialed, "s")
            uri = f"sip:{user}@{_host_port(trunk.host, trunk.port)}"
            if sip.redirects is None:
                sip.redirects = Redirects.starting_at(parse_sip_uri(uri))
            handle = self._invite_member(live, uri, headers)
        sip.handle = handle
        self._handles[handle] = (live, leg)

    def _invite_member(self, live: LiveCall, uri: str, headers: list[tuple[str, str]]) -> str:
        ua, now = self.endpoint.ua, self.endpoint.now
        assert live.member is not None and live.plan is not None
        sip, trunk = live.member, live.plan.trunk
        assert sip.destination is not None
        caller_id = sip_user(live.plan.caller_id, "")
        caller = caller_id or ua.config.user
        credentials = Account(trunk.username, trunk.password) if trunk.username else None
        if caller_id:
            # RFC 3325: many trunks take the caller ID from P-Asserted-Identity, not From.
            pai = f"<sip:{caller_id}@{_bracket(trunk.host)}>"
            headers = [*headers, ("P-Asserted-Identity", pai)]
        return ua.invite(
            uri, sip.destination, now, from_uri=f"sip:{caller}@{_bracket(trunk.host)}",
            body=sip.new_offer().to_bytes(), headers=headers, credentials=credentials,
            follow_target=True,  # a trunk's 2xx Contact is its remote target, no NAT
        )  # fmt: skip

    def _at_trunk(self, live: LiveCall) -> Callable[[SipUri], bool]:
        """Which redirect targets the member leg may follow: the trunk's own address
        (its configured host, or the IP it resolved to; its port; its transport)."""
        assert live.plan is not None and live.member is not None
        trunk, destination = live.plan.trunk, live.member.destination
        names = {trunk.host.strip("[]").lower()}
        if destination is not None:
            names.add(destination.host.lower())
        default_port = 5060  # udp/tcp only (TrunkConfig.transport); sips is not followed

        def accept(uri: SipUri) -> bool:
            transport = (uri.transport or trunk.transport).lower()
            return (
                uri.scheme == "sip"
                and uri.host.strip("[]").lower() in names
                and (uri.port or default_port) == trunk.port
                and transport == trunk.transport.lower()
            )

        return accept

    def _redirect(self, live: LiveCall, target: SipUri) -> bool:
        """Send the member INVITE again for a 3xx's *target* (at the trunk's address,
        ``_at_trunk``): its user part routed again, so strip/prepend and the caller ID
        apply. False (the 3xx is then the final) when it routes to another trunk or
        nowhere, or the leg is no longer ringing."""
        sip, order = live.member, live.core.order
        assert sip is not None and live.plan is not None
        if live.core.member.state not in (LegState.INVITING, LegState.RINGING):
            return False
        try:
            plan = plan_route(self.config, target.user or "", order.variables)
        except NoRoute:
            return False
        if plan.trunk.name != live.plan.trunk.name:
            log.info("call %s: the redirect to %s routes to trunk %s, not %s", order.call_id,
                     target, plan.trunk.name, live.plan.trunk.name)  # fmt: skip
            return False
        live.plan = plan
        trunk = plan.trunk
        uri = f"sip:{sip_user(plan.dialed, 's')}@{_host_port(trunk.host, trunk.port)}"
        handle = self._invite_member(live, uri, dialer_headers(order))
        sip.handle = handle
        self._handles[handle] = (live, Leg.MEMBER)
        live.core.invite_replaced(Leg.MEMBER)  # its CANCEL waits for its own 1xx
        return True

    def _apply_answer(self, live: LiveCall, leg: Leg, message: Message) -> bool:
        """Read the SDP answer in a 183/200 into the leg's StreamSpec; True if usable."""
        sip = live.sip(leg)
        if sip is None or sip.offer is None or live.media is None:
            return False
        answer = sdp_of(message)
        if answer is None:
            return False
        try:
            spec = stream_spec(negotiated(sip.offer, answer), sip.destination)
        except SdpError:
            return False
        if spec is None:
            return False
        if leg is Leg.AGENT:
            live.media.set_agent(spec)
        else:
            live.media.set_member(spec)
        return True


def _bracket(host: str) -> str:
    """An IPv6 literal in brackets, as a URI's host (RFC 3261 §25.1)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _host_port(host: str, port: int) -> str:
    return f"{_bracket(host)}:{port}"

"""The call service: the asyncio shell that runs each progressive call's pure core.

Theory of operation. ``CallService(endpoint, registrar, agents, config, media)`` keeps one
``LiveCall`` per ``CallOrder``: the pure ``calls.call.Call`` (every decision: leg
lifecycle, causes, who hung up, what to CANCEL or BYE), the call's ``CallMedia`` (two RTP
port pairs) and the SIP state of each leg (``transport.call_legs.LegSip``). The engine
drives it with ``originate(order)``, ``dial_member(call_id)``, ``bridge(call_id)`` and
``hangup(call_id, cause)``; subscribers hear the core's events through
``on_event(callback)`` (``calls.events``; ``CallEnded`` last, once, with the recording
path filled in).

The shell's own work, all IO or SIP mechanics:

* **Agent leg.** The INVITE goes to the agent's best registered binding
  (``RegistrarService.lookup``: the Contact URI as Request-URI, ``Binding.target()`` as
  the address; the same endpoint the phone registered with, which pyVoIP insists on).
  No binding: the core ends the call with USER_NOT_REGISTERED. From carries the member's
  number and name, so the phone shows who it is about to talk to.
* **Member leg.** ``calls.routes.plan_route`` picks the trunk (no route:
  NO_ROUTE_DESTINATION). The trunk's host is resolved once with ``loop.getaddrinfo``
  (UDP sends need an IP literal; failure: NORMAL_TEMPORARY_FAILURE, as sofia's 503).
  ``calls.trunks.TrunkGates`` applies ``max_calls`` and ``cps``: **a call over
  max_calls fails at once with NORMAL_CIRCUIT_CONGESTION** (a progressive dialer must not
  queue an answered agent behind a full trunk); a call held back only by cps waits for
  its start (``admit`` says until when). The line is released when the call ends. A 401/407
  is answered by the UA with the trunk's username/password. A 300/301/302 is followed to
  its best untried Contact **at the trunk's own address** (its configured host or the
  address it resolved to, and its port), at most ``MAX_REDIRECTS`` hops
  (``calls.redirect``); the new user part is routed again (``plan_route``: strip,
  prepend, caller ID), and must route to the same trunk. A 3xx naming anywhere else is
  the leg's final (NORMAL_UNSPECIFIED): following it would send the member's number,
  and the trunk's digest answer, to whoever the 3xx names.
* **SDP.** Our offers come from ``sdp_offer.make_offer`` (PCMU, PCMA, telephone-event)
  with the CallMedia's local ports; answers in a 183 or 200 are read with
  ``sdp_offer.negotiated`` into ``media.bridge.StreamSpec``. A 2xx without a usable
  answer is hung up (INCOMPATIBLE_DESTINATION), except a 2xx without SDP in the early
  dialog whose 18x answer is applied: that answer stands (RFC 6337 §3.1.1).
* **In-dialog requests** (``transport.call_dialog``): re-INVITE and UPDATE from either
  side are answered with an SDP answer and the leg's StreamSpec updated (hold: the
  peer's sendonly/inactive/c=0.0.0.0 stops what we send it and its media timeout); an
  offer-less re-INVITE gets our offer in the 2xx and its answer in the ACK. RFC 4028 session
  timers the far end asks for are honoured: we refresh when we are the refresher,
  and hang up with RECOVERY_ON_TIMER_EXPIRE when the session expires unrefreshed (a
  refused UPDATE refresh falls back to a re-INVITE); glare gets 491 / 500. The member
  leg's in-dialog requests go to the trunk's 2xx Contact when it is an IP literal
  (``Dialog.follow_target``); an agent phone's go back to its source address (NAT).
  The member INVITE carries the caller ID in From and in P-Asserted-Identity (RFC 3325).
* **Timers.** One ``loop.call_at`` per call for the earliest of the core's ring
  deadlines and the legs' session timers; the core is never called before its deadline.

Files: this one holds the API, the command loop, the UA events and the timers;
``call_setup`` the sending half (bindings, ports, routes, gates, INVITEs, redirects);
``call_dialog`` in-dialog requests and session refreshes; ``call_legs`` each leg's SIP
state and the SDP <-> StreamSpec translation.

The 200-after-CANCEL race needs nothing here: the UA ACKs and BYEs such a 200 and
reports a failure (487), which the core does not judge (its local cause stands).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from sipdialer.calls.call import Call
from sipdialer.calls.call_legs import (
    CallOrderError,
    Command,
    Leg,
    LegState,
    Media,
    MediaAction,
    SendBye,
    SendCancel,
    SendInvite,
)
from sipdialer.calls.causes import HangupCause, LocalFailure, lookup_cause, reason_header
from sipdialer.calls.events import CallEnded, CallEvent, CallOrder
from sipdialer.calls.routes import NoRoute, plan_route
from sipdialer.calls.session_timer import session_timer_from_answer
from sipdialer.config import Config
from sipdialer.dialer.agents import Agents
from sipdialer.media.bridge import MediaManager
from sipdialer.sip.dialog import DialogId
from sipdialer.sip.ua_events import (
    CallAnswered,
    CallConfirmed,
    CallFailed,
    CallProgress,
    DialogTerminated,
    RequestFailed,
    ResponseReceived,
    UaEvent,
)

from .call_dialog import InDialog
from .call_legs import bare_invite
from .call_setup import CallSetup, LiveCall
from .endpoint import SipEndpoint
from .registrar import RegistrarService

log = logging.getLogger(__name__)

Listener = Callable[[CallEvent], None]

SHUTDOWN_GRACE = 2.0
"Seconds ``close()`` waits for the CANCELs/BYEs of live calls to be answered."


class CallService(CallSetup):
    """Runs progressive calls on a ``SipEndpoint``; see the module docstring."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        registrar: RegistrarService,
        agents: Agents,
        config: Config,
        media: MediaManager,
    ) -> None:
        super().__init__(endpoint, registrar, config, media)
        self.agents = agents
        "Kept for the engine's wiring; the service only reports, it never moves an agent."
        self._listeners: list[Listener] = []
        self._closing = False
        self.in_dialog = InDialog(self)
        endpoint.on_event(self._on_ua_event)
        endpoint.on_request("UPDATE", self.in_dialog.on_request)
        endpoint.on_request("INFO", self.in_dialog.on_info)
        endpoint.on_request("OPTIONS", self.in_dialog.on_options)

    # --- the engine's API -------------------------------------------------------------

    def on_event(self, listener: Listener) -> None:
        """Hear every call event (``calls.events``)."""
        self._listeners.append(listener)

    @property
    def active(self) -> int:
        return len(self._calls)

    def call(self, call_id: str) -> Call | None:
        live = self._calls.get(call_id)
        return None if live is None else live.core

    def originate(self, order: CallOrder) -> None:
        """Ring the agent of *order* (OfferAgent). Events follow; never raises for
        telephony failures (they end the call with a cause)."""
        if order.call_id in self._calls:
            raise CallOrderError(f"call {order.call_id} exists already")
        core = Call(order, self.endpoint.now, host=self.endpoint.ua.config.host)
        live = LiveCall(core)
        self._calls[order.call_id] = live
        if self._closing:
            core.hangup(HangupCause.SYSTEM_SHUTDOWN, self.endpoint.now)
            self._run(live)
            return
        self._spawn(live, self._originate(live))

    def dial_member(self, call_id: str) -> None:
        """Dial the member (DialMember) once the agent answered."""
        live = self._calls.get(call_id)
        if live is None or live.core.ending:
            return  # the call ended meanwhile (a race with the engine's order)
        core, now = live.core, self.endpoint.now
        if live.dialing:
            raise CallOrderError(f"call {call_id}: the member leg was already dialed")
        core.check_member_order()
        order = core.order
        try:
            plan = plan_route(self.config, order.number, order.variables)
        except NoRoute as exc:
            log.info("call %s: %s", call_id, exc)
            core.member_not_dialed(HangupCause.NO_ROUTE_DESTINATION, now)
            self._run(live)
            return
        live.plan = plan
        gate = self.gates[plan.trunk.name]
        if gate.full:
            log.info("call %s: trunk %s is at max_calls (%d)", call_id, plan.trunk.name,
                     gate.max_calls)  # fmt: skip
            core.member_not_dialed(HangupCause.NORMAL_CIRCUIT_CONGESTION, now,
                                   trunk=plan.trunk.name, dialed=plan.dialed)  # fmt: skip
            self._run(live)
            return
        live.dialing = True
        self._spawn(live, self._dial(live, plan, gate))

    def bridge(self, call_id: str) -> None:
        """Join the two legs' audio (Bridge) once the member answered."""
        live = self._calls.get(call_id)
        if live is not None:
            live.core.bridge(self.endpoint.now)
            self._run(live)

    def hangup(self, call_id: str, cause: HangupCause | str = HangupCause.NORMAL_CLEARING) -> None:
        """End the call (Hangup): CANCEL what rings, BYE what is up. Harmless when it
        is over already. ``cause`` may be a cause name (``dialer.commands.Hangup``); a
        name that is no channel cause (the dialer's own, or unknown) hangs up with
        NORMAL_CLEARING."""
        live = self._calls.get(call_id)
        if live is not None:
            known = lookup_cause(cause)
            channel = known if isinstance(known, HangupCause) else HangupCause.NORMAL_CLEARING
            live.core.hangup(channel, self.endpoint.now)
            self._run(live)

    async def close(self) -> None:
        """Hang up every live call with SYSTEM_SHUTDOWN and wait (a little) for the
        legs to close; a CANCEL left unanswered is taken as answered 487."""
        self._closing = True
        for live in list(self._calls.values()):
            live.core.hangup(HangupCause.SYSTEM_SHUTDOWN, self.endpoint.now)
            self._run(live)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_GRACE
        while self._calls and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for live in list(self._calls.values()):
            for leg in (Leg.AGENT, Leg.MEMBER):
                if live.core.leg(leg).state is LegState.CANCELLING:
                    live.core.rejected(leg, 487, self.endpoint.now)
            self._run(live)
        for live in list(self._calls.values()):
            for task in list(live.tasks):
                task.cancel()

    # --- executing the core's commands ------------------------------------------------

    def _run(self, live: LiveCall) -> None:
        """Execute what the core asked for, publish its events, re-arm, send."""
        core = live.core
        while True:
            commands = core.commands()
            events = []
            while (event := core.next_event()) is not None:
                events.append(event)
            if not commands and not events:
                break
            for command in commands:
                try:
                    self._execute(live, command)
                except Exception:
                    log.exception("call %s: %s failed", core.call_id, command)
            for event in events:
                self._publish(live, event)
        self._arm(live)
        self.endpoint.flush()

    def _execute(self, live: LiveCall, command: Command) -> None:
        ua, now = self.endpoint.ua, self.endpoint.now
        match command:
            case SendInvite(leg=leg, headers=headers):
                self._send_invite(live, leg, list(headers))
            case SendCancel(leg=leg, reason=reason):
                sip = live.sip(leg)
                if sip is not None and sip.handle is not None:
                    ua.cancel(sip.handle, now, reason=reason)
                else:  # between two redirect hops: nothing is in flight to cancel
                    live.core.rejected(leg, 487, now)
            case SendBye(leg=leg, reason=reason):
                sip = live.sip(leg)
                if sip is not None and sip.dialog is not None:
                    ua.bye(sip.dialog, now, reason=reason)
            case Media(action=action):
                self._media(live, action)

    def _media(self, live: LiveCall, action: MediaAction) -> None:
        media = live.media
        if action is MediaAction.CLOSE:
            self._forget(live)
            if media is not None:
                live.recording = media.close()
            return
        if media is None:
            return
        if action is MediaAction.RINGBACK:
            media.ringback()
        elif action is MediaAction.EARLY_MEDIA:
            media.early_media()
        elif action is MediaAction.BRIDGE:
            media.bridge()

    def _publish(self, live: LiveCall, event: CallEvent) -> None:
        if isinstance(event, CallEnded):
            event = replace(event, result=replace(event.result, recording=live.recording))
            self._calls.pop(live.core.call_id, None)
            r = event.result
            log.info("call %s ended: %s (%s) sip %s by %s", r.call_id, r.cause, r.cause_q850,
                     r.sip_code, r.hangup_by)  # fmt: skip
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("call listener failed on %s", type(event).__name__)

    def _forget(self, live: LiveCall) -> None:
        if live.timer is not None:
            live.timer.cancel()
            live.timer = None
        if live.gate is not None:
            live.gate.release()
            live.gate = None
        for sip in (live.agent, live.member):
            if sip is not None:
                if sip.handle is not None:
                    self._handles.pop(sip.handle, None)
                if sip.dialog is not None:
                    self._dialogs.pop(sip.dialog, None)
                for early in sip.early:
                    self._dialogs.pop(early, None)

    # --- UA events --------------------------------------------------------------------

    def _on_ua_event(self, event: UaEvent) -> None:
        if isinstance(event, CallProgress | CallAnswered | CallFailed):
            found = self._handles.get(event.handle)
            if found is None:
                return
            live, leg = found
            if isinstance(event, CallProgress):
                self._on_progress(live, leg, event)
            elif isinstance(event, CallAnswered):
                try:
                    self._on_answered(live, leg, event)
                except Exception:
                    # The UA has ACKed: a dialog nobody BYEs would stay up at the far
                    # end (and the leg would end as a no-answer). Hang it up.
                    log.exception("call %s: handling the %s leg's 2xx failed",
                                  live.core.call_id, leg)  # fmt: skip
                    self._answer_failed(live, leg, event)
            else:
                self._on_failed(live, leg, event)
            self._run(live)
        elif isinstance(event, DialogTerminated):
            found = self._dialogs.pop(event.dialog, None)
            if found is not None and event.by_remote:
                live, leg = found
                request = event.request
                reasons = request.headers.get_all("Reason") if request is not None else []
                live.core.hung_up(leg, self.endpoint.now, reasons, status=event.status)
                self._run(live)
        elif isinstance(event, CallConfirmed) and event.reinvite:
            self.in_dialog.on_confirmed(event)
        elif isinstance(event, ResponseReceived | RequestFailed):
            self.in_dialog.on_response(event)

    def _on_progress(self, live: LiveCall, leg: Leg, event: CallProgress) -> None:
        status = event.response.status_code
        early = False
        sip = live.sip(leg)
        if sip is not None and event.dialog is not None and event.dialog not in self._dialogs:
            # The early dialog takes UPDATE and INFO (RFC 3311 §5.1) before the 2xx.
            sip.early.add(event.dialog)
            self._dialogs[event.dialog] = (live, leg)
        if leg is Leg.MEMBER and status > 100 and sip is not None:
            early = self._apply_answer(live, leg, event.response)
            if early:
                sip.early_answer = event.dialog
        live.core.progress(leg, status, self.endpoint.now, sdp=early)

    def _on_answered(self, live: LiveCall, leg: Leg, event: CallAnswered) -> None:
        now = self.endpoint.now
        sip = live.sip(leg)
        assert sip is not None
        self._handles.pop(event.handle, None)
        sip.handle = None
        sip.dialog = event.dialog
        for early in sip.early:  # the other forks' early dialogs ended with the 2xx
            self._dialogs.pop(early, None)
        sip.early.clear()
        self._dialogs[event.dialog] = (live, leg)
        usable = self._apply_answer(live, leg, event.response)
        if not usable and not event.response.body and sip.early_answer == event.dialog:
            # An early-media gateway's 200 without SDP after its 183's answer: the
            # early answer stands (RFC 6337 §3.1.1), as PBXs take it.
            usable = True
        sip.timer = session_timer_from_answer(bare_invite("sip:x"), event.response, now,
                                              we_are_uac=True)  # fmt: skip
        live.core.answered(leg, now)
        if not usable:
            log.info("call %s: the %s leg answered without a usable SDP answer",
                     live.core.call_id, leg)  # fmt: skip
            live.core.hangup(HangupCause.INCOMPATIBLE_DESTINATION, now)

    def _answer_failed(self, live: LiveCall, leg: Leg, event: CallAnswered) -> None:
        """``_on_answered`` raised: BYE the confirmed dialog ourselves unless the core
        knows the leg is up (its hangup BYEs it then), and end the call with CRASH."""
        now = self.endpoint.now
        sip = live.sip(leg)
        self._handles.pop(event.handle, None)
        if sip is not None:
            sip.handle = None
        core_byes = (
            sip is not None and sip.dialog == event.dialog
            and live.core.leg(leg).state is LegState.UP
        )  # fmt: skip
        if not core_byes:
            self._dialogs.pop(event.dialog, None)
            self.endpoint.ua.bye(event.dialog, now, reason=reason_header(HangupCause.CRASH))
        live.core.hangup(HangupCause.CRASH, now)

    def _on_failed(self, live: LiveCall, leg: Leg, event: CallFailed) -> None:
        now = self.endpoint.now
        sip = live.sip(leg)
        self._handles.pop(event.handle, None)
        if sip is not None:
            sip.handle = None
        response = event.response
        if event.unusable:
            # A 2xx the UA could make no dialog from (it ACKed and BYEd it): the leg
            # ends as our protocol error, not as the 200 it claims to be.
            log.info("call %s: the %s leg's final response was unusable (%d)",
                     live.core.call_id, leg, event.status)  # fmt: skip
            live.core.failed(leg, LocalFailure.PROTOCOL_ERROR, now)
            return
        if response is None:
            failure = LocalFailure.TIMER_B if event.status == 408 else LocalFailure.TRANSPORT_ERROR
            live.core.failed(leg, failure, now)
            return
        if (
            leg is Leg.MEMBER and 300 <= event.status < 400 and not event.cancelled
            and sip is not None and sip.redirects is not None and not live.core.ending
        ):  # fmt: skip
            target = sip.redirects.next_target(response, self._at_trunk(live))
            if target is not None:
                log.info("call %s: %d redirects the member leg to %s", live.core.call_id,
                         event.status, target)  # fmt: skip
                if self._redirect(live, target):
                    return
        live.core.rejected(leg, event.status, now, response.headers.get_all("Reason"))

    def _on_media_timeout(self, call_id: str) -> None:
        live = self._calls.get(call_id)
        if live is not None:
            live.core.media_timeout(self.endpoint.now)
            self._run(live)

    # --- timers -----------------------------------------------------------------------

    def _arm(self, live: LiveCall) -> None:
        if live.core.ended:
            return
        deadlines = [live.core.get_timer()]
        for sip in (live.agent, live.member):
            if sip is not None and sip.timer is not None:
                deadlines.append(sip.timer.get_timer())
        at = min((d for d in deadlines if d is not None), default=None)
        if live.timer is not None and at != live.timer_at:
            live.timer.cancel()
            live.timer = None
        if live.timer is None and at is not None:
            loop = asyncio.get_running_loop()
            live.timer = loop.call_at(at, self._on_timer, live)
        live.timer_at = at

    def _on_timer(self, live: LiveCall) -> None:
        live.timer = None
        now = max(live.timer_at or 0.0, self.endpoint.now)
        live.timer_at = None
        live.core.handle_timer(now)
        for leg in (Leg.AGENT, Leg.MEMBER):
            self.in_dialog.session_timer_due(live, leg, now)
        self._run(live)

    # --- lookups for InDialog -----------------------------------------------------------

    def by_dialog(self, dialog: DialogId) -> tuple[LiveCall, Leg] | None:
        return self._dialogs.get(dialog)

    def run(self, live: LiveCall) -> None:
        self._run(live)

"""One progressive call as telephony: the agent leg, the member leg, and why it ended.

Theory of operation (dialer-semantics §1, causes.md §1). ``Call`` is a pure machine, one
per ``CallOrder``. The engine's orders come in as method calls (``offer_agent``,
``dial_member``, ``bridge``, ``hangup``); the SIP facts of each leg come in translated by
the shell (``progress``, ``answered``, ``rejected``, ``failed``, ``hung_up``), and so do
``media_timeout`` and the ring deadlines (``get_timer`` / ``handle_timer``). Every input
takes ``now``. Outputs are drained after each input: ``commands()`` for the shell
(``call_legs.SendInvite`` / ``SendCancel`` / ``SendBye`` / ``Media``) and
``next_event()`` for the engine (``calls.events``: AgentRinging, AgentAnswered,
AgentFailed, MemberRinging, MemberAnswered, Bridged, and ``CallEnded`` exactly once,
last).

Each leg follows the table of ``call_legs``. The call-level rules live here:

* **Ring timeouts.** The agent leg rings ``order.agent_timeout``, the member leg the
  route's ``call_timeout``, both counted from the INVITE. On expiry we CANCEL and the leg
  ends with NO_ANSWER.
* **CANCEL before a provisional.** RFC 3261 §9.1 lets the CANCEL go only after a 1xx
  (100 included), so the UA defers it; a silent peer would hold the call until Timer B
  (32 s). A leg we CANCEL (ring timeout or any other reason) that has had no provisional
  ends at once with the cause decided then (no sip_code); the UA keeps the INVITE: it
  sends the CANCEL if a 1xx comes and ACKs+BYEs a late 2xx, unheard by the call.
* **When one leg ends the other goes too.** A ringing leg gets CANCEL, an answered one
  BYE, each with ``Reason: Q.850;cause=N`` naming the cause that ended the first leg.
* **Leg causes.** A final response gives ``cause_for_response`` (a ``Reason: Q.850`` in
  it wins over the status table); a received BYE gives ``cause_for_bye``; Timer B and a
  transport error give RECOVERY_ON_TIMER_EXPIRE / NORMAL_TEMPORARY_FAILURE (recorded as
  408 / 503); no binding USER_NOT_REGISTERED. When *we* end a leg (CANCEL or BYE) the
  leg's cause is decided then and the final that follows (the 487, a raced 200 the UA
  hung up) is not judged: our ring timeout gives NO_ANSWER, a CANCEL for any other reason
  (the other leg ended, a Hangup order) ORIGINATOR_CANCEL, so the agent is not penalised
  for it (semantics §1); a BYE we send records the cause it carries.
* **The call's cause** (``CallResult.cause``) is the cause of a ``hangup`` order or of a
  media timeout when one ended the call, else the member leg's when it was dialed, else
  the agent leg's; ``sip_code`` comes from the same leg. ``agent_cause`` is always the
  agent leg's own (for its penalty).
* **Who hung up** (``CallResult.hangup_by``) is the side of the first fact that ended a
  leg: a response, BYE, Timer B or transport error of a leg is that leg's side
  (AGENT/MEMBER); our decisions (ring timeouts, no binding, no route, congestion, Hangup
  orders, media timeout, shutdown) are DIALER.
* **Media.** A member 180/183 without SDP starts the local ringback to the agent; SDP in
  a provisional starts early media (and stays: a later 180 does not go back to
  ringback); ``bridge`` joins the legs; CLOSE when both legs are down, just before
  CallEnded.

Orders that arrive after the call started ending (the engine's DialMember racing the
agent's BYE) are ignored; orders the call cannot take otherwise raise
``CallOrderError``. Pure code: no IO, no clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from .call_legs import (
    RINGING_STATES,
    CallOrderError,
    Command,
    Leg,
    LegInput,
    LegRecord,
    LegState,
    Media,
    MediaAction,
    SendBye,
    SendCancel,
    SendInvite,
)
from .causes import (
    HangupCause,
    LocalFailure,
    cause_for_bye,
    cause_for_local,
    cause_for_response,
    reason_header,
    synthesized_status,
)
from .events import (
    AgentAnswered,
    AgentFailed,
    AgentRinging,
    Bridged,
    CallEnded,
    CallEvent,
    CallOrder,
    CallResult,
    MemberAnswered,
    MemberRinging,
    Side,
)
from .headers import auto_answer_headers, dialer_headers

__all__ = ["Call"]

_SIDE = {Leg.AGENT: Side.AGENT, Leg.MEMBER: Side.MEMBER}


class Call:
    """The state machine of one progressive call; see the module docstring."""

    def __init__(self, order: CallOrder, now: float, *, host: str) -> None:
        """``host`` is ours, for the auto-answer ``Call-Info: <sip:HOST>``."""
        self.order = order
        self.host = host
        self.created_at = now
        self.agent = LegRecord(Leg.AGENT)
        self.member = LegRecord(Leg.MEMBER)
        self.bridged_at: float | None = None
        self.trunk: str | None = None
        self.dialed: str | None = None
        self.ended = False
        "CallEnded was emitted: nothing more will happen."
        self._override: HangupCause | None = None  # a Hangup order or the media timeout
        self._hangup_by: Side | None = None
        self._ringback = False
        self._commands: list[Command] = []
        self._events: deque[CallEvent] = deque()

    @property
    def call_id(self) -> str:
        return self.order.call_id

    @property
    def ending(self) -> bool:
        """Some leg ended or a hangup was decided: no new steps are taken."""
        return self.ended or self._hangup_by is not None

    def leg(self, leg: Leg) -> LegRecord:
        return self.agent if leg is Leg.AGENT else self.member

    # --- outputs --------------------------------------------------------------------

    def commands(self) -> list[Command]:
        """What the shell must do now, in order (drains)."""
        out, self._commands = self._commands, []
        return out

    def next_event(self) -> CallEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The next ring deadline, or None."""
        deadlines = [d for d in (self.agent.deadline, self.member.deadline) if d is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        """Fire due ring timeouts: CANCEL, the leg ends with NO_ANSWER. Spurious calls
        are harmless."""
        for record in (self.agent, self.member):
            if record.deadline is not None and now >= record.deadline:
                record.deadline = None
                if record.state in RINGING_STATES:
                    self._give_up(record, LocalFailure.RING_TIMEOUT, now)

    # --- the engine's orders --------------------------------------------------------

    def offer_agent(self, now: float) -> None:
        """Ring the agent (OfferAgent): INVITE with X-Dialer-* (and auto-answer) headers."""
        if self.ending:
            return
        if self.agent.state is not LegState.IDLE:
            raise CallOrderError(f"call {self.call_id}: the agent leg was already sent")
        headers = dialer_headers(self.order)
        if self.order.auto_answer:
            headers += auto_answer_headers(self.host)
        self._invite(self.agent, tuple(headers), now + self.order.agent_timeout)

    def dial_member(self, now: float, *, trunk: str, dialed: str, call_timeout: float) -> None:
        """Dial the member (DialMember) through ``trunk`` (its name) with the route's
        ``call_timeout``; the agent must be up. ``dialed`` is the number after the
        route's strip/prepend (``calls.routes.RoutePlan`` has all three)."""
        if self.ending:
            return
        self.check_member_order()
        self.trunk, self.dialed = trunk, dialed
        self._invite(self.member, tuple(dialer_headers(self.order)), now + call_timeout)

    def member_not_dialed(self, cause: HangupCause, now: float, *, trunk: str | None = None,
                          dialed: str | None = None) -> None:  # fmt: skip
        """The member leg could not be sent (no route: NO_ROUTE_DESTINATION; the trunk's
        max_calls: NORMAL_CIRCUIT_CONGESTION; no RTP ports ...): the call ends."""
        if self.ending:
            return
        self.check_member_order()
        self.trunk, self.dialed = trunk or self.trunk, dialed or self.dialed
        self._leg_down(self.member, LegInput.FAIL, cause, None, Side.DIALER, now)

    def agent_not_reachable(self, failure: LocalFailure, now: float) -> None:
        """The agent leg cannot be sent: NO_BINDING (USER_NOT_REGISTERED), or another
        local failure (TRANSPORT_ERROR when the binding's address is unusable ...)."""
        if self.ending:
            return
        if self.agent.state is not LegState.IDLE:
            raise CallOrderError(f"call {self.call_id}: the agent leg was already sent")
        self.agent.local = failure
        self._leg_down(self.agent, LegInput.FAIL, cause_for_local(failure),
                       synthesized_status(failure), Side.DIALER, now)  # fmt: skip

    def bridge(self, now: float) -> None:
        """Join the legs' audio (Bridge); both must be up."""
        if self.ending:
            return
        if self.member.state is not LegState.UP or self.agent.state is not LegState.UP:
            raise CallOrderError(f"call {self.call_id}: bridge needs both legs up")
        if self.bridged_at is not None:
            return
        self.bridged_at = now
        self._commands.append(Media(MediaAction.BRIDGE))
        self._events.append(Bridged(self.call_id, now))

    def hangup(self, cause: HangupCause, now: float) -> None:
        """End the call with ``cause`` (Hangup order, SYSTEM_SHUTDOWN ...): CANCEL what
        rings, BYE what is up. Harmless on a call already ending."""
        self._end_by_dialer(cause, now)

    def media_timeout(self, now: float) -> None:
        """No RTP for media_timeout on the bridged call: both legs get BYE."""
        if self.bridged_at is not None:
            self._end_by_dialer(cause_for_local(LocalFailure.MEDIA_TIMEOUT), now)

    # --- SIP facts ------------------------------------------------------------------

    def progress(self, leg: Leg, status: int, now: float, *, sdp: bool = False) -> None:
        """A provisional response on ``leg`` (``sdp``: it carried an SDP answer)."""
        record = self.leg(leg)
        if record.state in RINGING_STATES:
            record.provisional = True
        if status <= 100 or not record.apply(LegInput.PROGRESS):
            return
        if record.state is LegState.CANCELLING:
            return
        first = record.ringing_at is None
        if first:
            record.ringing_at = now
        if leg is Leg.AGENT:
            if first:
                self._events.append(AgentRinging(self.call_id, now))
            return
        if sdp and not record.early_media:
            record.early_media = True
            self._commands.append(Media(MediaAction.EARLY_MEDIA))
        elif not record.early_media and not self._ringback:
            self._ringback = True
            self._commands.append(Media(MediaAction.RINGBACK))
        if first:
            self._events.append(MemberRinging(self.call_id, now, record.early_media))

    def invite_replaced(self, leg: Leg) -> None:
        """A new INVITE replaced the leg's (a redirect hop): no provisional for it yet."""
        self.leg(leg).provisional = False

    def answered(self, leg: Leg, now: float) -> None:
        """A 2xx on ``leg``; the UA has ACKed it."""
        record = self.leg(leg)
        # A 200 that raced our CANCEL never gets here as an answer: the UA ACKs it,
        # hangs it up with BYE and reports a failure (487); ANSWER in CANCELLING is
        # absent from the table, so such a report would be absorbed.
        if not record.apply(LegInput.ANSWER):
            return
        record.deadline = None
        record.answered_at = now
        record.sip_code = 200
        if leg is Leg.AGENT:
            self._events.append(AgentAnswered(self.call_id, now))
        else:
            self._events.append(MemberAnswered(self.call_id, now))

    def rejected(self, leg: Leg, status: int, now: float, reasons: Iterable[str] = ()) -> None:
        """A final failure response (3xx-6xx) on ``leg``; ``reasons`` are its ``Reason``
        header values. After our CANCEL (a 487) the cause decided then stands."""
        record = self.leg(leg)
        if record.state is LegState.CANCELLING:
            self._leg_down(record, LegInput.FAIL, record.cause, status, None, now)
            return
        cause = cause_for_response(status, reasons).cause
        self._leg_down(record, LegInput.FAIL, cause, status, _SIDE[leg], now)

    def failed(self, leg: Leg, failure: LocalFailure, now: float) -> None:
        """No final response: TIMER_B (408) or TRANSPORT_ERROR (503) on ``leg``."""
        record = self.leg(leg)
        status = synthesized_status(failure)
        if record.state is LegState.CANCELLING:
            self._leg_down(record, LegInput.FAIL, record.cause, status, None, now)
            return
        record.local = failure
        self._leg_down(record, LegInput.FAIL, cause_for_local(failure), status, _SIDE[leg], now)

    def hung_up(
        self, leg: Leg, now: float, reasons: Iterable[str] = (), *, status: int | None = None
    ) -> None:
        """The far end of ``leg`` ended its dialog: a BYE (``reasons`` its Reason values),
        or the dialog died (``status`` 408/481 to an in-dialog request, no ACK)."""
        record = self.leg(leg)
        if status is not None and status != 200:
            cause = cause_for_response(status, reasons).cause
        else:
            cause = cause_for_bye(reasons).cause
        self._leg_down(record, LegInput.BYE_RECEIVED, cause, None, _SIDE[leg], now)

    # --- mechanics ------------------------------------------------------------------

    def check_member_order(self) -> None:
        """Raise ``CallOrderError`` unless the member may be dialed now (the agent is up,
        the member leg not dialed yet). Harmless to ask; the shell asks before waiting."""
        if self.agent.state is not LegState.UP:
            raise CallOrderError(f"call {self.call_id}: dial the member after the agent answers")
        if self.member.state is not LegState.IDLE or self.member.cause is not None:
            raise CallOrderError(f"call {self.call_id}: the member leg was already dialed")

    def _invite(self, record: LegRecord, headers: tuple[tuple[str, str], ...],
                deadline: float) -> None:  # fmt: skip
        record.apply(LegInput.INVITE)
        record.deadline = deadline
        self._commands.append(SendInvite(record.leg, headers))

    def _give_up(self, record: LegRecord, failure: LocalFailure, now: float) -> None:
        """Our ring timeout on ``record``: CANCEL, NO_ANSWER, the other leg follows."""
        cause = cause_for_local(failure)
        self._cancel(record, cause, reason=cause, local=failure)
        self._first_end(Side.DIALER)
        self._close_unprovisional(record, now)
        self._follow(record.leg, cause, now)

    def _end_by_dialer(self, cause: HangupCause, now: float) -> None:
        if self.ended:
            return
        if self._override is None and self._hangup_by is None:
            self._override = cause
        self._first_end(Side.DIALER)
        for record in (self.agent, self.member):
            self._release(record, cause, now)
        self._maybe_finish(now)

    def _release(self, record: LegRecord, cause: HangupCause, now: float) -> None:
        """End ``record`` because of ``cause`` decided elsewhere: CANCEL or BYE."""
        if record.leg is Leg.AGENT and record.state is LegState.IDLE and record.cause is None:
            # Hung up before the agent leg went out (shutdown while it was being set up).
            self._leg_down(record, LegInput.FAIL, HangupCause.ORIGINATOR_CANCEL, None, None, now)
        elif record.state in RINGING_STATES:
            self._cancel(record, HangupCause.ORIGINATOR_CANCEL, reason=cause,
                         local=LocalFailure.OTHER_LEG_ENDED)  # fmt: skip
            self._close_unprovisional(record, now)
        elif record.state is LegState.UP:
            self._leg_down(record, LegInput.BYE_SENT, cause, record.sip_code, None, now,
                           send=True)  # fmt: skip

    def _cancel(self, record: LegRecord, cause: HangupCause, *, reason: HangupCause,
                local: LocalFailure) -> None:  # fmt: skip
        record.apply(LegInput.CANCEL)
        record.deadline = None
        record.cause = cause
        record.local = local
        self._commands.append(SendCancel(record.leg, reason_header(reason)))

    def _close_unprovisional(self, record: LegRecord, now: float) -> None:
        """A CANCEL before any provisional waits in the UA for one (RFC 3261 §9.1), maybe
        until Timer B (32 s) for a silent peer: the leg ends now with the cause decided,
        and the UA keeps the INVITE (CANCEL after a late 1xx, ACK+BYE for a late 2xx)."""
        if record.state is LegState.CANCELLING and not record.provisional:
            self._leg_down(record, LegInput.FAIL, record.cause, None, None, now)

    def _leg_down(
        self,
        record: LegRecord,
        input_: LegInput,
        cause: HangupCause | None,
        sip_code: int | None,
        side: Side | None,
        now: float,
        *,
        send: bool = False,
    ) -> None:
        """``record`` ends with ``cause``; the other leg follows; maybe the call ends."""
        was = record.state
        if not record.apply(input_):
            return
        if send:
            self._commands.append(SendBye(record.leg, reason_header(cause or _DEFAULT)))
        record.deadline = None
        record.ended_at = now
        if record.cause is None:
            record.cause = cause
        if sip_code is not None:
            record.sip_code = sip_code
        if record.leg is Leg.AGENT and was is not LegState.UP:
            agent_cause = record.cause or _DEFAULT
            self._events.append(AgentFailed(self.call_id, now, agent_cause.name, record.sip_code))
        if side is not None:
            self._first_end(side)
        self._follow(record.leg, record.cause or _DEFAULT, now)

    def _follow(self, ended: Leg, cause: HangupCause, now: float) -> None:
        """The ``ended`` leg is gone (or going): release the other, then maybe finish."""
        self._release(self.leg(ended.other), cause, now)
        self._maybe_finish(now)

    def _first_end(self, side: Side) -> None:
        if self._hangup_by is None:
            self._hangup_by = side

    def _maybe_finish(self, now: float) -> None:
        if self.ended or self.agent.live or self.member.live:
            return
        if self.agent.state is LegState.IDLE and self.agent.cause is None:
            return  # not started yet
        self.ended = True
        self._commands.append(Media(MediaAction.CLOSE))
        self._events.append(CallEnded(self.call_id, now, self._result(now)))

    def _result(self, now: float) -> CallResult:
        source = self.member if self.member.dialed else self.agent
        cause = self._override or source.cause or _DEFAULT
        return CallResult(
            call_id=self.call_id,
            created_at=self.created_at,
            ended_at=now,
            cause=cause.name,
            cause_q850=int(cause),
            sip_code=source.sip_code,
            hangup_by=self._hangup_by or Side.DIALER,
            agent_answered_at=self.agent.answered_at,
            member_ringing_at=self.member.ringing_at,
            member_answered_at=self.member.answered_at,
            bridged_at=self.bridged_at,
            agent_cause=None if self.agent.cause is None else self.agent.cause.name,
            agent_sip_code=self.agent.sip_code,
            trunk=self.trunk,
            dialed=self.dialed,
        )


_DEFAULT = HangupCause.NORMAL_CLEARING
"The cause of a leg that ended with nothing more specific (a plain BYE)."

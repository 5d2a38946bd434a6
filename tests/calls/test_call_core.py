"""The pure per-call machine (``calls.call``): every cause path and each agent-leg outcome
on a fake clock, table-driven; then the rules around them (commands, once-only end,
ignored and refused orders, timers)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

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
from sipdialer.calls.causes import HangupCause, LocalFailure
from sipdialer.calls.events import (
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

A, M = Leg.AGENT, Leg.MEMBER
ORDER = CallOrder(
    call_id="c1", campaign="reminders", member_id="42", member_name="Olena", number="+380441234567",
    agent_id="101", variables={"product": "x"}, agent_timeout=15.0,
)  # fmt: skip


class Harness:
    """A call on a fake clock; collects everything it outputs."""

    def __init__(self, order: CallOrder = ORDER) -> None:
        self.now = 100.0
        self.call = Call(order, self.now, host="192.0.2.10")
        self.events: list[CallEvent] = []
        self.sent: list[Command] = []

    def drain(self) -> None:
        self.sent += self.call.commands()
        while (event := self.call.next_event()) is not None:
            self.events.append(event)

    def at(self, t: float) -> Harness:
        self.now = 100.0 + t
        return self

    def do(self, step: Callable[[Call, float], None]) -> None:
        step(self.call, self.now)
        self.drain()

    def tick(self, t: float) -> None:
        self.at(t)
        self.call.handle_timer(self.now)
        self.drain()

    @property
    def result(self) -> CallResult:
        ended = [e for e in self.events if isinstance(e, CallEnded)]
        assert len(ended) == 1 and self.events[-1] is ended[0]
        return ended[0].result

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


# --- steps -------------------------------------------------------------------------------


def offer(c: Call, now: float) -> None:
    c.offer_agent(now)


def dial(c: Call, now: float) -> None:
    c.dial_member(now, trunk="provider", dialed="0441234567", call_timeout=60.0)


def ring(leg: Leg, sdp: bool = False) -> Callable[[Call, float], None]:
    return lambda c, now: c.progress(leg, 183 if sdp else 180, now, sdp=sdp)


def trying(leg: Leg) -> Callable[[Call, float], None]:
    return lambda c, now: c.progress(leg, 100, now)


def answer(leg: Leg) -> Callable[[Call, float], None]:
    return lambda c, now: c.answered(leg, now)


def reject(leg: Leg, status: int, *reasons: str) -> Callable[[Call, float], None]:
    return lambda c, now: c.rejected(leg, status, now, reasons)


def fail(leg: Leg, failure: LocalFailure) -> Callable[[Call, float], None]:
    return lambda c, now: c.failed(leg, failure, now)


def bye(leg: Leg, *reasons: str) -> Callable[[Call, float], None]:
    return lambda c, now: c.hung_up(leg, now, reasons)


def bridge(c: Call, now: float) -> None:
    c.bridge(now)


def hangup(cause: HangupCause) -> Callable[[Call, float], None]:
    return lambda c, now: c.hangup(cause, now)


def no_binding(c: Call, now: float) -> None:
    c.agent_not_reachable(LocalFailure.NO_BINDING, now)


def not_dialed(cause: HangupCause) -> Callable[[Call, float], None]:
    return lambda c, now: c.member_not_dialed(cause, now, trunk="provider", dialed="044")


def media_timeout(c: Call, now: float) -> None:
    c.media_timeout(now)


AGENT_UP = [offer, ring(A), answer(A)]
MEMBER_UP = [*AGENT_UP, dial, ring(M), answer(M), bridge]


@dataclass(frozen=True)
class Case:
    name: str
    steps: list[Callable[[Call, float], None]]
    cause: str
    q850: int
    sip_code: int | None
    hangup_by: Side
    agent_cause: str | None
    tick: float | None = None
    "Advance the clock to this many seconds and fire timers after the steps."
    after_tick: tuple[Callable[[Call, float], None], ...] = ()


CASES = [
    # --- agent-leg outcomes (semantics §1 table) ---
    Case("agent busy 486", [offer, ring(A), reject(A, 486)], "USER_BUSY", 17, 486,
         Side.AGENT, "USER_BUSY"),
    Case("agent DND 600", [offer, reject(A, 600)], "USER_BUSY", 17, 600, Side.AGENT, "USER_BUSY"),
    Case("agent reject 603", [offer, ring(A), reject(A, 603)], "CALL_REJECTED", 21, 603,
         Side.AGENT, "CALL_REJECTED"),
    Case("agent 480", [offer, reject(A, 480)], "NO_USER_RESPONSE", 18, 480, Side.AGENT,
         "NO_USER_RESPONSE"),
    Case("agent 404", [offer, reject(A, 404)], "UNALLOCATED_NUMBER", 1, 404, Side.AGENT,
         "UNALLOCATED_NUMBER"),
    Case("agent Reason wins", [offer, reject(A, 486, 'Q.850;cause=21;text="x"')],
         "CALL_REJECTED", 21, 486, Side.AGENT, "CALL_REJECTED"),
    Case("agent no answer", [offer, ring(A)], "NO_ANSWER", 19, 487, Side.DIALER, "NO_ANSWER",
         tick=15.0, after_tick=(reject(A, 487),)),
    Case("agent not registered", [no_binding], "USER_NOT_REGISTERED", 806, None, Side.DIALER,
         "USER_NOT_REGISTERED"),
    Case("agent Timer B", [offer, fail(A, LocalFailure.TIMER_B)], "RECOVERY_ON_TIMER_EXPIRE",
         102, 408, Side.AGENT, "RECOVERY_ON_TIMER_EXPIRE"),
    Case("agent transport error", [offer, fail(A, LocalFailure.TRANSPORT_ERROR)],
         "NORMAL_TEMPORARY_FAILURE", 41, 503, Side.AGENT, "NORMAL_TEMPORARY_FAILURE"),
    Case("agent hangs up before dial", [*AGENT_UP, bye(A)], "NORMAL_CLEARING", 16, 200,
         Side.AGENT, "NORMAL_CLEARING"),
    Case("hangup order while agent rings", [offer, ring(A), hangup(HangupCause.MANAGER_REQUEST),
         reject(A, 487)], "MANAGER_REQUEST", 703, 487, Side.DIALER, "ORIGINATOR_CANCEL"),
    # --- member-leg failures: cause from the final code (causes.md §1) ---
    *[
        Case(f"member {status}", [*AGENT_UP, dial, ring(M), reject(M, status)], cause, q850,
             status, Side.MEMBER, cause)
        for status, cause, q850 in [
            (486, "USER_BUSY", 17), (603, "CALL_REJECTED", 21), (404, "UNALLOCATED_NUMBER", 1),
            (480, "NO_USER_RESPONSE", 18), (503, "NORMAL_TEMPORARY_FAILURE", 41),
            (302, "NORMAL_UNSPECIFIED", 31), (488, "INCOMPATIBLE_DESTINATION", 88),
        ]
    ],
    Case("member 503 with Reason Q.850 34",
         [*AGENT_UP, dial, reject(M, 503, "Q.850;cause=34")], "NORMAL_CIRCUIT_CONGESTION", 34,
         503, Side.MEMBER, "NORMAL_CIRCUIT_CONGESTION"),
    Case("member no answer", [*AGENT_UP, dial, ring(M)], "NO_ANSWER", 19, 487, Side.DIALER,
         "NO_ANSWER", tick=80.0, after_tick=(reject(M, 487),)),
    Case("member 200 raced our CANCEL", [*AGENT_UP, dial, ring(M)], "NO_ANSWER", 19, 487,
         Side.DIALER, "NO_ANSWER", tick=80.0, after_tick=(answer(M), reject(M, 487))),
    Case("member Timer B", [*AGENT_UP, dial, fail(M, LocalFailure.TIMER_B)],
         "RECOVERY_ON_TIMER_EXPIRE", 102, 408, Side.MEMBER, "RECOVERY_ON_TIMER_EXPIRE"),
    Case("member transport error", [*AGENT_UP, dial, fail(M, LocalFailure.TRANSPORT_ERROR)],
         "NORMAL_TEMPORARY_FAILURE", 41, 503, Side.MEMBER, "NORMAL_TEMPORARY_FAILURE"),
    Case("no route", [*AGENT_UP, not_dialed(HangupCause.NO_ROUTE_DESTINATION)],
         "NO_ROUTE_DESTINATION", 3, None, Side.DIALER, "NO_ROUTE_DESTINATION"),
    Case("trunk max_calls", [*AGENT_UP, not_dialed(HangupCause.NORMAL_CIRCUIT_CONGESTION)],
         "NORMAL_CIRCUIT_CONGESTION", 34, None, Side.DIALER, "NORMAL_CIRCUIT_CONGESTION"),
    Case("agent hangs up while member rings",
         [*AGENT_UP, dial, ring(M), bye(A), reject(M, 487)], "ORIGINATOR_CANCEL", 487, 487,
         Side.AGENT, "NORMAL_CLEARING"),
    # --- answered calls ---
    Case("member hangs up first", [*MEMBER_UP, bye(M)], "NORMAL_CLEARING", 16, 200,
         Side.MEMBER, "NORMAL_CLEARING"),
    Case("member BYE with Reason", [*MEMBER_UP, bye(M, "Q.850;cause=31")], "NORMAL_UNSPECIFIED",
         31, 200, Side.MEMBER, "NORMAL_UNSPECIFIED"),
    Case("agent hangs up first", [*MEMBER_UP, bye(A)], "NORMAL_CLEARING", 16, 200, Side.AGENT,
         "NORMAL_CLEARING"),
    Case("media timeout", [*MEMBER_UP, media_timeout], "MEDIA_TIMEOUT", 804, 200, Side.DIALER,
         "MEDIA_TIMEOUT"),
    Case("shutdown", [*MEMBER_UP, hangup(HangupCause.SYSTEM_SHUTDOWN)], "SYSTEM_SHUTDOWN", 701,
         200, Side.DIALER, "SYSTEM_SHUTDOWN"),
    Case("shutdown while member rings",
         [*AGENT_UP, dial, ring(M), hangup(HangupCause.SYSTEM_SHUTDOWN), reject(M, 487)],
         "SYSTEM_SHUTDOWN", 701, 487, Side.DIALER, "SYSTEM_SHUTDOWN"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cause_paths(case: Case) -> None:
    h = Harness()
    for i, step in enumerate(case.steps):
        h.at(i * 0.5).do(step)
    if case.tick is not None:
        h.tick(case.tick)
        for step in case.after_tick:
            h.do(step)
    result = h.result
    assert (result.cause, result.cause_q850, result.sip_code) == (
        case.cause, case.q850, case.sip_code,
    )  # fmt: skip
    assert result.hangup_by is case.hangup_by
    assert result.agent_cause == case.agent_cause
    assert h.call.ended and not h.call.agent.live and not h.call.member.live
    assert h.sent[-1] == Media(MediaAction.CLOSE)
    assert h.sent.count(Media(MediaAction.CLOSE)) == 1
    failed = [e for e in h.events if isinstance(e, AgentFailed)]
    if result.agent_answered_at is None:  # each unanswered agent leg reports its own cause
        assert [(f.cause, f.sip_code) for f in failed] == [
            (case.agent_cause, result.agent_sip_code)
        ]
    else:
        assert not failed


def test_answered_call_in_order() -> None:
    h = Harness()
    for i, step in enumerate([offer, ring(A), answer(A), dial, ring(M), answer(M), bridge]):
        h.at(i).do(step)
    h.at(20).do(bye(M))
    assert h.kinds() == [
        "AgentRinging", "AgentAnswered", "MemberRinging", "MemberAnswered", "Bridged",
        "CallEnded",
    ]  # fmt: skip
    invite_a, invite_m = (c for c in h.sent if isinstance(c, SendInvite))
    assert invite_a.leg is A and invite_m.leg is M
    names = [n for n, _ in invite_a.headers]
    assert names[:4] == [
        "X-Dialer-Campaign", "X-Dialer-Member-Id", "X-Dialer-Member-Name", "X-Dialer-Number",
    ]  # fmt: skip
    assert ("X-Dialer-Var-product", "x") in invite_a.headers
    assert "Call-Info" not in names and invite_m.headers == invite_a.headers
    assert Media(MediaAction.RINGBACK) in h.sent and Media(MediaAction.BRIDGE) in h.sent
    assert SendBye(A, 'Q.850;cause=16;text="NORMAL_CLEARING"') in h.sent
    r = h.result
    assert (r.agent_answered_at, r.member_ringing_at, r.member_answered_at, r.bridged_at) == (
        102.0, 104.0, 105.0, 106.0,
    )  # fmt: skip
    assert r.talk_seconds == 14.0 and r.trunk == "provider" and r.dialed == "0441234567"
    assert r.created_at == 100.0 and r.ended_at == 120.0


def test_auto_answer_headers_on_the_agent_leg_only() -> None:
    order = CallOrder("c2", "camp", "1", "n", "123", "101", auto_answer=True)
    h = Harness(order)
    for step in [offer, ring(A), answer(A), dial]:
        h.do(step)
    invite_a, invite_m = (c for c in h.sent if isinstance(c, SendInvite))
    assert ("Call-Info", "<sip:192.0.2.10>;answer-after=0") in invite_a.headers
    assert ("Alert-Info", "<http://localhost>;info=alert-autoanswer") in invite_a.headers
    assert all(name != "Call-Info" for name, _ in invite_m.headers)


def test_early_media_then_180_keeps_early_media() -> None:
    h = Harness()
    for step in [*AGENT_UP, dial, ring(M, sdp=True), ring(M)]:
        h.do(step)
    media = [c for c in h.sent if isinstance(c, Media)]
    assert media == [Media(MediaAction.EARLY_MEDIA)]
    ringing = [e for e in h.events if isinstance(e, MemberRinging)]
    assert len(ringing) == 1 and ringing[0].early_media


def test_ringback_then_early_media() -> None:
    h = Harness()
    for step in [*AGENT_UP, dial, ring(M), ring(M, sdp=True), answer(M), bridge]:
        h.do(step)
    media = [c.action for c in h.sent if isinstance(c, Media)]
    assert media == [MediaAction.RINGBACK, MediaAction.EARLY_MEDIA, MediaAction.BRIDGE]
    assert [e.early_media for e in h.events if isinstance(e, MemberRinging)] == [False]


def test_ring_timeouts_come_from_the_order_and_the_route() -> None:
    h = Harness()
    h.do(offer)
    assert h.call.get_timer() == 115.0
    h.at(1).do(answer(A))
    assert h.call.get_timer() is None
    h.at(2).do(dial)
    h.do(trying(M))  # a provisional: the CANCEL can go out, the leg waits for its 487
    assert h.call.get_timer() == 162.0
    h.tick(61.9)  # early: nothing happens
    assert not any(isinstance(c, SendCancel) for c in h.sent)
    h.tick(62.0)
    assert SendCancel(M, 'Q.850;cause=19;text="NO_ANSWER"') in h.sent
    assert SendBye(A, 'Q.850;cause=19;text="NO_ANSWER"') in h.sent
    assert not h.call.ended and h.call.member.state is LegState.CANCELLING
    h.do(reject(M, 487))
    assert h.result.cause == "NO_ANSWER"


def test_member_failure_hangs_up_the_agent_with_the_members_cause() -> None:
    h = Harness()
    for step in [*AGENT_UP, dial, reject(M, 486)]:
        h.do(step)
    assert SendBye(A, 'Q.850;cause=17;text="USER_BUSY"') in h.sent
    assert h.result.hangup_by is Side.MEMBER


def test_agent_bye_cancels_the_ringing_member_with_the_agents_reason() -> None:
    h = Harness()
    for step in [*AGENT_UP, dial, ring(M), bye(A, "Q.850;cause=16")]:
        h.do(step)
    assert SendCancel(M, 'Q.850;cause=16;text="NORMAL_CLEARING"') in h.sent
    assert not h.call.ended  # waits for the 487
    h.do(reject(M, 487))
    assert h.result.cause == "ORIGINATOR_CANCEL"


def test_media_timeout_byes_both_legs() -> None:
    h = Harness()
    for step in [*MEMBER_UP, media_timeout]:
        h.do(step)
    reason = 'Q.850;cause=16;text="MEDIA_TIMEOUT"'  # 804 is no Q.850 value (RFC 3326)
    assert SendBye(A, reason) in h.sent and SendBye(M, reason) in h.sent


def test_media_timeout_before_bridge_is_ignored() -> None:
    h = Harness()
    for step in [*AGENT_UP, media_timeout]:
        h.do(step)
    assert not h.call.ending


def test_call_ended_once_and_late_facts_absorbed() -> None:
    h = Harness()
    for step in [*MEMBER_UP, bye(M), bye(A), reject(M, 500), answer(A), ring(M),
                 hangup(HangupCause.NORMAL_CLEARING), media_timeout]:  # fmt: skip
        h.do(step)
    assert h.kinds().count("CallEnded") == 1 and h.kinds()[-1] == "CallEnded"
    assert sum(isinstance(c, SendBye) for c in h.sent) == 1


def test_orders_after_the_call_started_ending_are_ignored() -> None:
    h = Harness()
    for step in [*AGENT_UP, bye(A), dial, bridge]:
        h.do(step)
    assert not any(isinstance(c, SendInvite) and c.leg is M for c in h.sent)
    assert h.result.dialed is None


@pytest.mark.parametrize(
    "steps",
    [[offer, dial], [offer, ring(A), dial], [*AGENT_UP, bridge], [*AGENT_UP, dial, bridge],
     [*AGENT_UP, dial, dial], [offer, no_binding], [offer, offer]],
    ids=["dial-before-offer-answered", "dial-while-agent-rings", "bridge-before-dial",
         "bridge-before-member-answers", "dial-twice", "no-binding-after-offer", "offer-twice"],
)  # fmt: skip
def test_orders_out_of_turn_raise(steps: list[Callable[[Call, float], None]]) -> None:
    h = Harness()
    for step in steps[:-1]:
        h.do(step)
    with pytest.raises(CallOrderError):
        h.do(steps[-1])


def test_hangup_before_the_agent_leg_went_out() -> None:
    h = Harness()
    h.do(hangup(HangupCause.SYSTEM_SHUTDOWN))
    assert h.kinds() == ["AgentFailed", "CallEnded"]
    assert h.result.cause == "SYSTEM_SHUTDOWN" and h.result.agent_cause == "ORIGINATOR_CANCEL"
    assert not any(isinstance(c, SendInvite | SendCancel | SendBye) for c in h.sent)


def test_agent_ringing_once_and_100_ignored() -> None:
    h = Harness()
    h.do(offer)
    h.do(lambda c, now: c.progress(A, 100, now))
    assert h.events == []
    h.do(ring(A))
    h.do(ring(A, sdp=True))
    assert [type(e) for e in h.events] == [AgentRinging]
    h.do(answer(A))
    assert isinstance(h.events[-1], AgentAnswered)


def test_bridge_twice_is_one_bridge() -> None:
    h = Harness()
    for step in [*MEMBER_UP, bridge]:
        h.do(step)
    assert sum(isinstance(e, Bridged) for e in h.events) == 1
    assert [isinstance(e, MemberAnswered) for e in h.events].count(True) == 1


# --- a CANCEL before any provisional (RFC 3261 §9.1: the UA defers it) ------------------


def test_agent_ring_timeout_before_any_provisional_ends_the_call_at_once() -> None:
    """A silent phone (no 100 even): the call must not wait for Timer B (32 s)."""
    h = Harness()
    h.do(offer)
    h.tick(15.0)
    assert SendCancel(A, 'Q.850;cause=19;text="NO_ANSWER"') in h.sent  # the UA defers it
    assert h.call.ended and h.call.agent.state is LegState.ENDED
    assert Media(MediaAction.CLOSE) in h.sent
    r = h.result
    assert (r.cause, r.agent_cause, r.sip_code, r.hangup_by) == (
        "NO_ANSWER", "NO_ANSWER", None, Side.DIALER)  # fmt: skip
    assert h.kinds() == ["AgentFailed", "CallEnded"]
    h.do(reject(A, 487))  # the late 487 after a late 1xx: absorbed
    h.do(answer(A))
    assert h.kinds() == ["AgentFailed", "CallEnded"]


def test_member_ring_timeout_before_any_provisional_ends_the_call_at_once() -> None:
    h = Harness()
    for step in [*AGENT_UP, dial]:
        h.do(step)
    h.tick(62.0)
    assert SendCancel(M, 'Q.850;cause=19;text="NO_ANSWER"') in h.sent
    assert SendBye(A, 'Q.850;cause=19;text="NO_ANSWER"') in h.sent
    r = h.result
    assert (r.cause, r.sip_code, r.hangup_by, r.agent_cause) == (
        "NO_ANSWER", None, Side.DIALER, "NO_ANSWER")  # fmt: skip


def test_a_100_makes_the_ring_timeout_wait_for_the_487() -> None:
    h = Harness()
    h.do(offer)
    h.do(trying(A))
    h.tick(15.0)
    assert not h.call.ended and h.call.agent.state is LegState.CANCELLING
    h.do(reject(A, 487))
    assert (h.result.cause, h.result.sip_code) == ("NO_ANSWER", 487)


def test_hangup_before_the_members_provisional_ends_the_call_at_once() -> None:
    """Any CANCEL, not only the ring timeout's: the agent's BYE while the member INVITE
    has had no answer at all."""
    h = Harness()
    for step in [*AGENT_UP, dial, bye(A)]:
        h.do(step)
    assert any(isinstance(c, SendCancel) and c.leg is M for c in h.sent)
    assert h.result.cause == "ORIGINATOR_CANCEL" and h.result.hangup_by is Side.AGENT


def test_a_redirect_hop_needs_its_own_provisional() -> None:
    """The 100 of the first INVITE says nothing of the one a 3xx made us send."""
    h = Harness()
    for step in [*AGENT_UP, dial, trying(M)]:
        h.do(step)
    h.call.invite_replaced(M)
    h.tick(62.0)
    assert h.call.ended and h.result.sip_code is None

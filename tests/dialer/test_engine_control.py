"""dialer/engine.py: campaign run/stop, waking, races around a lease on its way, restarts.

Here the tests hold ``MemberLeased`` back (the rig answers leases at once) to put inputs
between a ``LeaseMember`` and its answer, as a slow store would.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from engine_rig import OWNER, T0, Rig, campaign, kinds, of

from sipdialer.dialer.agents import AgentState, AgentStatus
from sipdialer.dialer.campaign import CampaignState
from sipdialer.dialer.commands import (
    AgentRegistered,
    AgentStatusChanged,
    CampaignRun,
    CampaignStop,
    FinishAttempt,
    LeaseMember,
    MemberLeased,
    MembersChanged,
    MemberStatusReceived,
    MemberTerminated,
    OfferAgent,
    SaveMember,
    UpdateAttempt,
)
from sipdialer.dialer.dispositions import DispositionKind, NotWaiting, StatusResult
from sipdialer.dialer.engine import UnknownCampaign

K = DispositionKind


def held_lease(rig: Rig, *agents: str) -> tuple[LeaseMember, MemberLeased]:
    """Log in ``agents`` (default all), dispatch straight on the engine and lease by hand,
    without feeding the answer."""
    for agent in rig.engine.agents:
        if agents and agent.id not in agents:
            continue
        agent.set_registered(T0, True)
        agent.set_status(T0, AgentStatus.AVAILABLE)
    lease = of(rig.engine.handle_timer(T0), LeaseMember)[0]
    moment = datetime.fromtimestamp(T0, UTC)
    member = rig.members.lease_next(lease.campaign_id, moment, owner=OWNER, zones=lease.zones)
    return lease, MemberLeased(lease.campaign_id, lease.agent_id, member)


def test_stop_lets_calls_finish_and_run_resumes() -> None:
    rig = Rig()
    first, second = rig.add("c", "100"), rig.add("c", "101")
    cid = of(rig.start(), OfferAgent)[0].order.call_id
    rig.feed(CampaignStop("c"), T0 + 1)
    out = rig.call(cid, "NORMAL_CLEARING", talk=30, at=T0 + 40)
    assert of(out, FinishAttempt)[0].disposition.kind is K.OK  # judged as usual
    assert of(rig.run_timers(T0 + 600), OfferAgent) == []  # no new calls
    assert rig.engine.campaign("c").state is CampaignState.STOPPED
    out = rig.feed(CampaignRun("c"), T0 + 601)
    assert [o.order.member_id for o in of(out, OfferAgent)] == [str(second)]
    assert rig.state(first).ended_with == "NORMAL_CLEARING"


def test_a_lease_answered_after_stop_hands_the_member_back() -> None:
    rig = Rig()
    m = rig.add()
    _, answer = held_lease(rig)
    rig.feed(CampaignStop("c"), T0 + 1)
    out = rig.feed(answer, T0 + 1)
    assert kinds(out) == ["ReleaseAgent", "SaveMember"]
    assert of(out, SaveMember)[0].disposition is None
    assert rig.members.rows[m].owner is None and rig.state(m).attempts == 0
    assert rig.engine.agents["a1"].state is AgentState.WAITING
    assert rig.engine.campaign("c").lines == 0


def test_agent_leaving_while_reserved_passes_the_member_to_another() -> None:
    rig = Rig([campaign(agents=("a1", "a2"))], agents=("a1", "a2"))
    rig.add()
    lease, answer = held_lease(rig, "a1")
    assert lease.agent_id == "a1"
    rig.feed(AgentRegistered("a2", True), T0 + 1)
    rig.feed(AgentStatusChanged("a2", AgentStatus.AVAILABLE), T0 + 1)  # its lease: empty
    rig.feed(AgentStatusChanged("a1", AgentStatus.BREAK), T0 + 1)
    out = rig.feed(answer, T0 + 1)
    assert [o.order.agent_id for o in of(out, OfferAgent)] == ["a2"]
    assert rig.engine.agents["a1"].state is AgentState.WAITING


def test_unregistered_agent_while_reserved_and_none_left() -> None:
    rig = Rig()
    m = rig.add()
    _, answer = held_lease(rig)
    rig.feed(AgentRegistered("a1", False), T0 + 1)
    out = rig.feed(answer, T0 + 1)
    assert of(out, OfferAgent) == [] and of(out, SaveMember)[0].state == rig.state(m)
    assert rig.members.rows[m].owner is None


def test_terminate_while_the_lease_is_on_its_way() -> None:
    rig = Rig()
    m = rig.add()
    _, answer = held_lease(rig)
    rig.feed(MemberTerminated("c", m), T0 + 1)  # the store holds it leased: EndMember no-op
    out = rig.feed(answer, T0 + 1)
    assert of(out, OfferAgent) == []
    assert rig.state(m).ended_with == "MANAGER_REQUEST"


def test_members_changed_wakes_an_idle_campaign() -> None:
    rig = Rig()
    later = datetime.fromtimestamp(T0 + 3600, UTC)
    rig.add("c", "100", next_call_at=later)
    out = rig.start()
    assert of(out, OfferAgent) == [] and rig.engine.get_timer() == T0 + 3600
    new = rig.add("c", "200")
    out = rig.feed(MembersChanged("c", frozenset({None})), T0 + 5)
    assert [o.order.member_id for o in of(out, OfferAgent)] == [str(new)]


def test_no_member_at_all_finishes_at_once() -> None:
    rig = Rig()
    out = rig.start()
    assert kinds(out)[-1] == "CampaignFinished"
    assert rig.engine.campaign("c").state is CampaignState.FINISHED


def test_restored_wait_is_judged_at_its_deadline() -> None:
    rig = Rig([campaign(wait_for_result=True)], login=False)
    m = rig.add()
    moment = datetime.fromtimestamp(T0, UTC)
    leased = rig.members.lease_next("c", moment, owner=OWNER, zones=None)
    assert leased is not None
    waiting = replace(leased.state, waiting_on="100")
    rig.members.release(m, waiting, owner=OWNER)
    rig.engine.restore_waiting(replace(leased, state=waiting), "old-call", T0 + 30)
    assert rig.engine.get_timer() == T0 + 30
    out = rig.tick(T0 + 30)
    update = of(out, UpdateAttempt)[0]
    assert (update.call_id, update.disposition.kind) == ("old-call", K.RETRY)
    assert rig.state(m).attempts == 1 and not rig.state(m).waiting


def test_status_for_a_restored_wait() -> None:
    rig = Rig([campaign(wait_for_result=True)], login=False)
    m = rig.add()
    moment = datetime.fromtimestamp(T0, UTC)
    leased = rig.members.lease_next("c", moment, owner=OWNER, zones=None)
    assert leased is not None
    waiting = replace(leased.state, waiting_on="100")
    rig.members.release(m, waiting, owner=OWNER)
    rig.engine.restore_waiting(replace(leased, state=waiting), "old-call", T0 + 30)
    rig.feed(MemberStatusReceived("c", m, StatusResult(success=True)), T0 + 5)
    assert rig.state(m).ended_with == "NORMAL_CLEARING"


def test_agent_freed_by_our_cancel_takes_the_next_call_before_call_ended() -> None:
    rig = Rig()
    first, second = rig.add("c", "100"), rig.add("c", "200")
    cid = of(rig.start(), OfferAgent)[0].order.call_id
    rig.feed(MemberTerminated("c", first), T0 + 1)
    out = rig.fail_agent(cid, "ORIGINATOR_CANCEL", at=T0 + 1)  # AgentFailed, then CallEnded
    offers = of(out, OfferAgent)
    assert [o.order.member_id for o in offers] == [str(second)]
    agent = rig.engine.agents["a1"]
    assert agent.state is AgentState.RINGING  # CallEnded of the first call left it alone
    rig.call(offers[0].order.call_id, "NORMAL_CLEARING", talk=30, at=T0 + 40)
    assert rig.state(first).ended_with == "MANAGER_REQUEST"
    assert rig.state(second).ended_with == "NORMAL_CLEARING"


def test_a_refused_input_changes_nothing() -> None:
    rig = Rig()
    m = rig.add("c", "100")
    rig.add("c", "200")
    cid = of(rig.start(), OfferAgent)[0].order.call_id
    rig.call(cid, "NORMAL_CLEARING", talk=30, at=T0 + 40)  # wrap-up until T0 + 50
    assert rig.engine.get_timer() == T0 + 50
    with pytest.raises(NotWaiting, match="not waiting"):
        rig.feed(MemberStatusReceived("c", m, StatusResult(success=True)), T0 + 60)
    with pytest.raises(KeyError):
        rig.feed(AgentStatusChanged("nobody", AgentStatus.BREAK), T0 + 60)
    with pytest.raises(UnknownCampaign):
        rig.feed(CampaignStop("nope"), T0 + 60)
    assert rig.engine.agents["a1"].state is AgentState.WRAP_UP  # the due wrap-up still due
    assert rig.engine.get_timer() == T0 + 50
    assert of(rig.tick(T0 + 60), OfferAgent)  # and the next call goes out

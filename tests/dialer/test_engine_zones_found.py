"""Members in a time zone the engine never saw are dialed (review defect).

Members added straight into the store (``sipdialer import``, another node) send no
``MembersChanged``: the engine kept listing only the zones it knew, so such a member was
never leased and the campaign never finished. An empty lease with members remaining now
carries the source's zones (``MemberLeased.zones``) and the engine learns them.
"""

from __future__ import annotations

from engine_rig import T0, Rig, campaign, of

from sipdialer.dialer.commands import CampaignFinished, LeaseMember


def test_a_member_in_an_unseen_zone_is_dialed_and_the_campaign_finishes() -> None:
    rig = Rig([campaign()])  # the engine knows the zone None only
    member = rig.add("c", "100", timezone="America/New_York")  # behind the engine's back
    out = rig.start()
    out += rig.run_timers(T0 + 60)
    (offer,) = rig.offers(out)
    leases = of(rig.log, LeaseMember)
    assert "America/New_York" in leases[-1].zones  # learned from the empty lease
    out = rig.call(offer.order.call_id, "NORMAL_CLEARING", talk=30.0, at=T0 + 100)
    out += rig.run_timers(T0 + 200)
    assert rig.state(member).ended_with == "NORMAL_CLEARING"
    assert of(rig.log, CampaignFinished), "the campaign finishes once its member is done"
    assert rig.engine.campaigns["c"].state.value == "finished"


def test_known_zones_do_not_wake_the_campaign_again() -> None:
    rig = Rig([campaign()], zones={"c": ("America/New_York", None)})
    rig.add("c", "100", timezone="America/New_York", next_call_at=None)
    rig.start()
    (offer,) = rig.offers()
    rig.call(offer.order.call_id, "NO_ANSWER", at=T0 + 10)  # retried 600 s later
    rig.run_timers(T0 + 100)
    before = len(of(rig.log, LeaseMember))
    rig.run_timers(T0 + 500)
    assert len(of(rig.log, LeaseMember)) == before  # idle until due: no lease loop

"""The status API (dialer-semantics §4) over real HTTP, on members that really wait for a
result: campaign ``wfr`` has wait_for_result, agent 101's SimPhone answers, the SimTrunk
answers numbers 1xxx and hangs up, and the member then waits (tests/api/apirig.py). Each
field of the body is checked for its effect on the member and its attempts: success,
reset_retries, next_after_sec, next_communication, stop_communications (a list and
"all"), comment; and 409 for a member that is not waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apirig import PLAIN, WFR, Rig, add, locs, member, running_dialer


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with running_dialer(tmp_path, ports=47500) as running:
        yield running


async def dial_until_waiting(rig: Rig, mid: str, number: str) -> dict[str, Any]:
    """Wait for the member's call on ``number`` to end with the member waiting."""
    data: dict[str, Any] = await rig.wait_for(
        f"{WFR}/members/{mid}", lambda m: m["status"] == "waiting", timeout=8
    )
    assert data["waiting_on"] == number
    return data


async def waiting_member(rig: Rig, body: dict[str, Any]) -> str:
    reply = await rig.client.put("/api/v2/agents/101/status", json={"status": "Available"})
    assert reply.status_code == 200
    added = await add(rig, WFR, body, autoRun="true")
    mid: str = added["members"][0]["id"]
    await dial_until_waiting(rig, mid, body["communications"][0]["number"])
    return mid


async def attempts_of(rig: Rig, mid: str) -> list[dict[str, Any]]:
    page = (await rig.client.get(f"{WFR}/attempts", params={"member": mid})).json()
    return list(reversed(page["items"]))  # oldest first


async def test_status_success_ends_the_member_and_stores_the_comment(rig: Rig) -> None:
    mid = await waiting_member(rig, member("1001", "1002"))
    path = f"{WFR}/members/{mid}"
    # A waiting member can be neither edited nor deleted.
    assert (await rig.client.put(path, json={"name": "x"})).status_code == 409
    assert (await rig.client.delete(path)).status_code == 409
    assert ["body", "success"] in locs(
        await rig.client.put(f"{path}/status", json={"success": "maybe"})
    )
    assert ["body", "sucess"] in locs(await rig.client.put(f"{path}/status", json={"sucess": True}))
    reply = await rig.client.put(f"{path}/status", json={"success": True, "comment": "sold"})
    assert reply.status_code == 200, reply.text
    done = reply.json()
    assert done["status"] == "ended" and done["end_cause"] == "NORMAL_CLEARING"
    assert {c["state"] for c in done["communications"]} == {"stopped"}
    assert done["attempts"] == 1
    (attempt,) = await attempts_of(rig, mid)
    assert attempt["comment"] == "sold" and attempt["disposition"] == "ok"
    assert attempt["result"]["success"] is True and attempt["agent"] == "101"
    assert attempt["number"] == "1001" and attempt["cause"] == "NORMAL_CLEARING"
    # Not waiting any more (and a member never dialed): 409 with a clear message.
    reply = await rig.client.put(f"{path}/status", json={"success": True})
    assert reply.status_code == 409 and "not waiting" in reply.json()["detail"]
    fresh = (await add(rig, PLAIN, member("8000")))["members"][0]["id"]
    assert (await rig.client.put(f"{PLAIN}/members/{fresh}/status", json={})).status_code == 409
    assert (await rig.client.put(f"{WFR}/members/999999/status", json={})).status_code == 404
    # The attempts list filters.
    for params, count in [({"disposition": "ok"}, 1), ({"disposition": "retry"}, 0),
                          ({"agent": "101"}, 1), ({"number": "1001"}, 1), ({"number": "1002"}, 0),
                          ({"cause": "NORMAL_CLEARING"}, 1), ({"member": "abc"}, 0),
                          ({"since": "2000-01-01"}, 1), ({"until": "2000-01-01"}, 0)]:  # fmt: skip
        page = (await rig.client.get(f"{WFR}/attempts", params=params)).json()
        assert page["total"] == count, params
    assert ["query", "disposition"] in locs(
        await rig.client.get(f"{WFR}/attempts", params={"disposition": "meh"})
    )


async def test_status_next_communication_and_next_after_sec(rig: Rig) -> None:
    mid = await waiting_member(rig, member("1001"))
    path = f"{WFR}/members/{mid}"
    # A number of another member (one that is never dialed: expired) is a conflict.
    other = (await add(rig, WFR, member("1900", expire="2000-01-01")))["members"][0]["id"]
    reply = await rig.client.put(f"{path}/status", json={"next_communication": "1900"})
    assert reply.status_code == 409 and f"member {other}" in reply.json()["detail"]
    assert (await rig.client.get(path)).json()["status"] == "waiting"
    # next_after_sec 0: the member is dialed again at once; next_communication is new, so it
    # is added on top and is the number dialed.
    reply = await rig.client.put(
        f"{path}/status", json={"next_after_sec": 0, "next_communication": "1-0-0-3"}
    )
    assert reply.status_code == 200, reply.text
    waiting = await dial_until_waiting(rig, mid, "1003")
    numbers = {c["number"]: c for c in waiting["communications"]}
    assert (
        set(numbers) == {"1001", "1003"}
        and numbers["1003"]["priority"] > numbers["1001"]["priority"]
    )
    assert waiting["attempts"] == 1  # the first attempt was counted, no reset
    # next_after_sec 3600: no attempt before an hour from now.
    before = datetime.now(UTC)
    reply = await rig.client.put(f"{path}/status", json={"next_after_sec": 3600})
    later = reply.json()
    assert later["status"] == "ready" and later["attempts"] == 2
    due = datetime.fromisoformat(later["next_call_at"])
    assert before + timedelta(seconds=3590) < due < before + timedelta(seconds=3610)
    assert [a["number"] for a in await attempts_of(rig, mid)] == ["1001", "1003"]


async def test_status_reset_retries_and_stop_communications(rig: Rig) -> None:
    mid = await waiting_member(rig, member("1001", "1002"))
    path = f"{WFR}/members/{mid}"
    # Stop 1001 (the one just tried) and reset the counters: the next call goes to 1002.
    reply = await rig.client.put(
        f"{path}/status",
        json={"reset_retries": True, "next_after_sec": 0, "stop_communications": ["1001"]},
    )
    assert reply.status_code == 200, reply.text
    waiting = await dial_until_waiting(rig, mid, "1002")
    assert waiting["attempts"] == 0
    states = {c["number"]: (c["state"], c["attempts"]) for c in waiting["communications"]}
    assert states == {"1001": ("stopped", 0), "1002": ("active", 0)}
    # "all": no number left, the member ends.
    reply = await rig.client.put(
        f"{path}/status", json={"stop_communications": "all", "comment": "wrong person"}
    )
    done = reply.json()
    assert done["status"] == "ended" and done["end_cause"] == "NO_COMMUNICATIONS"
    assert {c["state"] for c in done["communications"]} == {"stopped"}
    assert [a["comment"] for a in await attempts_of(rig, mid)] == [None, "wrong person"]
    for body, loc in [({"stop_communications": "some"}, ["body", "stop_communications"]),
                      ({"next_after_sec": -1}, ["body", "next_after_sec"]),
                      ({"next_communication": "abc"}, ["body", "next_communication"])]:  # fmt: skip
        assert loc in locs(await rig.client.put(f"{path}/status", json=body))

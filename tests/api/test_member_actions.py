"""The campaign page's member actions and settings over real HTTP (``routes_page``):
``PUT .../members/{mid}/stop`` (stop all numbers), ``PUT .../members/{mid}/reset``
(reset attempts) for ready, ended and waiting members, and ``GET .../settings``. Members
that really wait for a result come from campaign ``wfr`` of :mod:`apirig`."""

from __future__ import annotations

from pathlib import Path

from apirig import PLAIN, PLAIN_ID, WFR, add, member, running_dialer


async def test_settings_stop_and_reset(tmp_path: Path) -> None:
    async with running_dialer(tmp_path, ports=57300) as rig:
        reply = await rig.client.get(f"{PLAIN}/settings")
        assert reply.status_code == 200, reply.text
        settings = reply.json()
        assert settings["id"] == PLAIN_ID and settings["name"] == "plain"
        assert settings["campaign"]["limit"] == 2 and settings["campaign"]["calendar"] == "always"
        assert (await rig.client.get("/api/v2/dialer/nope/settings")).status_code == 404

        # A ready member (campaign "plain" has no agents: never dialed).
        mid = (await add(rig, PLAIN, member("5001", "5002")))["members"][0]["id"]
        reply = await rig.client.put(f"{PLAIN}/members/{mid}/stop")
        assert reply.status_code == 200, reply.text
        data = reply.json()
        assert data["status"] == "ended" and data["end_cause"] == "MANAGER_REQUEST"
        assert [c["state"] for c in data["communications"]] == ["stopped", "stopped"]
        # Reset: it starts over, every number active again.
        reply = await rig.client.put(f"{PLAIN}/members/{mid}/reset")
        assert reply.status_code == 200, reply.text
        data = reply.json()
        assert data["status"] == "ready" and data["end_cause"] is None
        assert data["attempts"] == 0
        assert [c["state"] for c in data["communications"]] == ["active", "active"]
        assert (await rig.client.put(f"{PLAIN}/members/999999/stop")).status_code == 404

        # A member waiting for a result: stop is the status result {"stop_communications":
        # "all"}; reset is refused (the status API's reset_retries is the way).
        reply = await rig.client.put("/api/v2/agents/101/status", json={"status": "Available"})
        assert reply.status_code == 200
        wid = (await add(rig, WFR, member("1001", "1002"), autoRun="true"))["members"][0]["id"]
        await rig.wait_for(f"{WFR}/members/{wid}", lambda m: m["status"] == "waiting", 8)
        reply = await rig.client.put(f"{WFR}/members/{wid}/reset")
        assert reply.status_code == 409 and "reset_retries" in reply.json()["detail"]
        reply = await rig.client.put(f"{WFR}/members/{wid}/stop")
        assert reply.status_code == 200, reply.text
        data = reply.json()
        assert data["status"] == "ended", data
        assert [c["state"] for c in data["communications"]] == ["stopped", "stopped"]
        attempts = (await rig.client.get(f"{WFR}/attempts", params={"member": wid})).json()
        assert attempts["items"][0]["result"]["stop_communications"] == "all"

"""Access to the dashboard's pages and data over real HTTP (uvicorn on 127.0.0.1): the
pages hold no data; every data route wants the API tokens (supervisor) or the agent's
SIP credentials (console), and each kind of session admits only its own routes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from dashrig import HEADERS, KEY, TOKEN, running_dialer

from sipdialer.api.app import create_app
from sipdialer.api.dashboard import dashboard_routers
from sipdialer.dialer.agents import AgentStatus

DATA_ROUTES = ("/events", "/dashboard/snapshot", "/agent/state", "/agent/events", "/metrics")


async def first_event(client: httpx.AsyncClient, path: str) -> tuple[str, dict[str, object]]:
    """The first named event of an SSE stream (skipping the retry: line)."""
    async with client.stream("GET", path) as reply:
        assert reply.status_code == 200, path
        assert reply.headers["content-type"].startswith("text/event-stream")
        event = ""
        async for line in reply.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event:
                return event, json.loads(line[6:])
    raise AssertionError("stream ended")


async def test_pages_and_data_need_credentials(tmp_path: Path) -> None:
    async with running_dialer(tmp_path, phones=()) as rig:
        anonymous = httpx.AsyncClient(base_url=rig.base, timeout=5.0)
        forged = {"sipdialer_supervisor": "s:x:9999999999:00", "sipdialer_agent": "a:101"}
        forger = httpx.AsyncClient(base_url=rig.base, timeout=5.0, cookies=forged)
        try:
            for page in ("/", "/agent", "/static/dashboard.js", "/static/agent.js",
                         "/static/common.js", "/static/style.css"):  # fmt: skip
                reply = await anonymous.get(page)
                assert reply.status_code == 200, page
                # The pages are the same for everyone: no agent, campaign or member in them.
                for secret in ("Agent 101", rig.campaign("demo"), "pw101", TOKEN):
                    assert secret not in reply.text, (page, secret)
            for path in DATA_ROUTES:
                assert (await anonymous.get(path)).status_code == 401, path
                assert (await forger.get(path)).status_code == 401, path
                wrong = {"X-Access-Token": TOKEN, "X-Key": "nope"}
                assert (await anonymous.get(path, headers=wrong)).status_code == 401, path
            for name in ("../dashboard.py", "..%2Fdashboard.py", ".hidden.js", "nope.js", "x.py"):
                assert (await anonymous.get(f"/static/{name}")).status_code == 404, name
            assert (await anonymous.get("/dashboard/snapshot", headers=HEADERS)).status_code == 200
        finally:
            await anonymous.aclose()
            await forger.aclose()


async def test_supervisor_session(tmp_path: Path) -> None:
    async with running_dialer(tmp_path, phones=()) as rig:
        browser = httpx.AsyncClient(base_url=rig.base, timeout=5.0)
        try:
            bad = await browser.post("/dashboard/login", json={"token": TOKEN, "key": "x"})
            assert bad.status_code == 401 and "sipdialer_supervisor" not in bad.cookies
            good = await browser.post("/dashboard/login", json={"token": TOKEN, "key": KEY})
            assert good.status_code == 204
            assert "httponly" in good.headers["set-cookie"].lower()
            assert "samesite=strict" in good.headers["set-cookie"].lower()
            snapshot = (await browser.get("/dashboard/snapshot")).json()
            assert {a["id"] for a in snapshot["agents"]} == {"101", "102", "103", "201"}
            assert {c["name"] for c in snapshot["campaigns"]} == {"demo", "wfr"}
            event, data = await asyncio.wait_for(first_event(browser, "/events"), 5)
            assert event == "snapshot" and len(data["agents"]) == 4  # type: ignore[arg-type]
            assert (await browser.get("/metrics")).status_code == 200
            # A supervisor is not an agent.
            assert (await browser.get("/agent/state")).status_code == 401
            await browser.post("/dashboard/logout")
            assert (await browser.get("/dashboard/snapshot")).status_code == 401
        finally:
            await browser.aclose()


async def test_agent_session(tmp_path: Path) -> None:
    async with running_dialer(tmp_path, phones=()) as rig:
        browser = httpx.AsyncClient(base_url=rig.base, timeout=5.0)
        try:
            for extension, password in (("101", "pw102"), ("999", "pw101"), ("101", "")):
                reply = await browser.post(
                    "/agent/login", json={"extension": extension, "password": password}
                )
                assert reply.status_code in (401, 422), (extension, password)
            reply = await browser.post(
                "/agent/login", json={"extension": "101", "password": "pw101"}
            )
            assert reply.status_code == 204
            state = (await browser.get("/agent/state")).json()
            assert state["agent"]["id"] == "101" and state["card"] is None
            assert "102" not in json.dumps(state)  # only its own agent
            event, data = await asyncio.wait_for(first_event(browser, "/agent/events"), 5)
            assert event == "console" and data["agent"]["id"] == "101"  # type: ignore[index]
            # The supervisor's data is not an agent's.
            for path in ("/events", "/dashboard/snapshot", "/metrics"):
                assert (await browser.get(path)).status_code == 401, path
            # State changes want the console's header (a cross-site form cannot send it).
            body = {"status": "Available"}
            assert (await browser.put("/agent/status", json=body)).status_code == 403
            reply = await browser.put("/agent/status", json=body, headers={"X-Console": "1"})
            assert reply.status_code == 200, reply.text
            agent = rig.system.agents["101"]
            assert agent.status is AgentStatus.AVAILABLE
            api = (await rig.client.get("/api/v2/agents")).json()
            items = api if isinstance(api, list) else api.get("items", [])
            assert any(a.get("id") == "101" and a.get("status") == "Available" for a in items)
            # A result for a member that was never this agent's call is refused.
            await rig.add_members("wfr", [{"name": "X", "communications": [{"number": "1000"}]}])
            member = rig.runner.members.list(rig.campaign("wfr")).members[0].member_id
            reply = await browser.put(
                "/agent/result", headers={"X-Console": "1"},
                json={"campaign": "wfr", "member": member, "success": True},
            )  # fmt: skip
            assert reply.status_code == 403, reply.text
        finally:
            await browser.aclose()


async def test_dashboard_routers_plug_into_create_app(tmp_path: Path) -> None:
    """The one-line wiring: ``create_app(..., extra_routers=dashboard_routers(...))``."""
    async with running_dialer(tmp_path, phones=()) as rig:
        app = create_app(rig.runner, rig.config,
                         extra_routers=dashboard_routers(rig.runner, rig.config))  # fmt: skip
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/")).status_code == 200
            assert (await client.get("/metrics")).status_code == 401
            assert (await client.get("/metrics", headers=HEADERS)).status_code == 200
            assert (await client.get("/dashboard/snapshot", headers=HEADERS)).status_code == 200
            assert (await client.get("/api/v2/dialer", headers=HEADERS)).status_code == 200


async def test_repeated_failed_sign_ins_lock(tmp_path: Path) -> None:
    """The console must not be a way around the SIP lockout to guess phone passwords."""
    async with running_dialer(tmp_path, phones=()) as rig:
        async with httpx.AsyncClient(base_url=rig.base, timeout=5.0) as browser:
            for _ in range(5):
                reply = await browser.post(
                    "/agent/login", json={"extension": "102", "password": "guess"}
                )
                assert reply.status_code == 401
            reply = await browser.post(
                "/agent/login", json={"extension": "102", "password": "pw102"}
            )
            assert reply.status_code == 429 and "sipdialer_agent" not in reply.cookies
            # The same address is locked out of the supervisor's form too.
            reply = await browser.post("/dashboard/login", json={"token": TOKEN, "key": KEY})
            assert reply.status_code == 429


def test_supervisor_lockout_is_per_address_and_token_not_global() -> None:
    """Failed sign-ins with a guessed token lock the guesser's address and that token,
    never every supervisor (a constant lockout key would let anyone lock them all out)."""
    from sipdialer.api.dashboard_session import Sessions, supervisor_lockout_key
    from sipdialer.config import ApiToken

    sessions = Sessions([ApiToken(token="real", key="k")], [], clock=lambda: 1000.0)
    for attempt in range(10):
        sessions.failed("192.0.2.7", supervisor_lockout_key(f"guess{attempt}"))
    assert sessions.locked("192.0.2.7", supervisor_lockout_key("real"))  # the guesser
    assert not sessions.locked("198.51.100.1", supervisor_lockout_key("real"))  # others

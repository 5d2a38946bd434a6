"""The REST API over real HTTP (uvicorn on 127.0.0.1, httpx) against the running dialer:
PhoneSystem + DialerRunner, a SimTrunk and a SimPhone as agent 101 (tests/api/apirig.py).

Every route, 401 for missing or wrong credentials, 422 naming the field, 404 for unknown
ids, 409 for members in the wrong state, ``autoRun``, CSV import, and each field of the
status body (dialer-semantics §4) on a member that really waits for a result after a
call the phone answered and the trunk hung up.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from apirig import (
    HEADERS,
    PLAIN,
    PLAIN_ID,
    WFR,
    Rig,
    add,
    config_text,
    locs,
    member,
    running_dialer,
)
from fastapi import APIRouter
from helpers import free_port

from sipdialer.api.app import create_app
from sipdialer.api.server import ApiServer, api_task
from sipdialer.app import serve
from sipdialer.config import parse_config


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with running_dialer(tmp_path) as running:
        yield running


# --- authentication -----------------------------------------------------------------------

ROUTES = [
    ("GET", "/api/v2/dialer"),
    ("GET", f"{PLAIN}"),
    ("PUT", f"{PLAIN}/state/run"),
    ("POST", f"{PLAIN}/members"),
    ("POST", f"{PLAIN}/members/import"),
    ("GET", f"{PLAIN}/members"),
    ("GET", f"{PLAIN}/members/1"),
    ("PUT", f"{PLAIN}/members/1"),
    ("DELETE", f"{PLAIN}/members/1"),
    ("PUT", f"{PLAIN}/members/1/status"),
    ("PUT", f"{PLAIN}/members/1/terminate"),
    ("GET", f"{PLAIN}/attempts"),
    ("GET", "/api/v2/agents"),
    ("PUT", "/api/v2/agents/101/status"),
]


async def test_every_route_needs_a_token_pair(rig: Rig) -> None:
    wrong = [
        {},
        {"X-Access-Token": HEADERS["X-Access-Token"]},  # key missing
        {"X-Key": HEADERS["X-Key"]},
        {"X-Access-Token": HEADERS["X-Access-Token"], "X-Key": "nope"},
        {"X-Access-Token": "other", "X-Key": HEADERS["X-Key"]},  # halves of two pairs
        {"X-Access-Token": "", "X-Key": ""},
    ]
    async with httpx.AsyncClient(base_url=rig.base, timeout=5) as bare:
        for method, path in ROUTES:
            for headers in wrong:
                reply = await bare.request(method, path, headers=headers, json={})
                assert reply.status_code == 401, (method, path, headers, reply.text)
                assert "X-Access-Token" in reply.json()["detail"]
        # The second configured pair works as well as the first.
        reply = await bare.get(
            "/api/v2/dialer", headers={"X-Access-Token": "other", "X-Key": "pair"}
        )
        assert reply.status_code == 200
        # The documentation needs no token and lists every path of DESIGN.md.
        assert (await bare.get("/docs")).status_code == 200
        spec = (await bare.get("/openapi.json")).json()
    paths = set(spec["paths"])
    assert {
        "/api/v2/dialer", "/api/v2/dialer/{id}", "/api/v2/dialer/{id}/state/{action}",
        "/api/v2/dialer/{id}/members", "/api/v2/dialer/{id}/members/{mid}",
        "/api/v2/dialer/{id}/members/{mid}/status", "/api/v2/dialer/{id}/attempts",
        "/api/v2/dialer/{id}/members/{mid}/terminate",
        "/api/v2/dialer/{id}/members/import", "/api/v2/agents", "/api/v2/agents/{id}/status",
    } <= paths  # fmt: skip
    assert {"AccessToken", "Key"} <= set(spec["components"]["securitySchemes"])
    # The dashboard's paths are left free.
    assert not paths & {"/", "/agent", "/metrics", "/static", "/events"}


# --- campaigns ------------------------------------------------------------------------------


async def test_campaigns_list_get_run_stop(rig: Rig) -> None:
    listed = (await rig.client.get("/api/v2/dialer")).json()
    assert [c["name"] for c in listed] == ["plain", "wfr"]
    plain = listed[0]
    assert plain["id"] == PLAIN_ID and plain["limit"] == 2 and plain["agents"] == []
    assert listed[1]["wait_for_result"] is True and listed[1]["agents"] == ["101"]
    by_id = (await rig.client.get(f"/api/v2/dialer/{PLAIN_ID}")).json()
    by_name = (await rig.client.get(PLAIN)).json()
    assert by_id == by_name == plain

    reply = await rig.client.put(f"{PLAIN}/state/stop")
    assert reply.status_code == 200 and reply.json()["state"] == "stopped"
    assert (await rig.client.get(PLAIN)).json()["state"] == "stopped"
    reply = await rig.client.put(f"/api/v2/dialer/{PLAIN_ID}/state/run")
    assert reply.json()["state"] == "running"

    assert locs(await rig.client.put(f"{PLAIN}/state/pause")) == [["path", "action"]]
    for method, path in [("GET", "/api/v2/dialer/nope"), ("PUT", "/api/v2/dialer/nope/state/run"),
                         ("GET", "/api/v2/dialer/nope/members"),
                         ("GET", "/api/v2/dialer/nope/attempts")]:  # fmt: skip
        reply = await rig.client.request(method, path)
        assert reply.status_code == 404 and "nope" in reply.json()["detail"]


# --- members --------------------------------------------------------------------------------


async def test_add_one_or_many_refuses_duplicates_per_member(rig: Rig) -> None:
    one = await add(rig, PLAIN, member("+38 (044) 123-45-67", "2000", name="Ann",
                                       variables={"crm": 7, "vip": True}, timezone="Europe/Kyiv",
                                       expire=4102444800000))  # fmt: skip
    assert one["added"] == 1 and one["refused"] == 0 and one["started"] is False
    mid = one["members"][0]["id"]
    got = (await rig.client.get(f"{PLAIN}/members/{mid}")).json()
    assert got["name"] == "Ann" and got["status"] == "ready" and got["dialer"] == PLAIN_ID
    assert [c["number"] for c in got["communications"]] == ["+380441234567", "2000"]
    assert got["variables"] == {"crm": "7", "vip": "true"} and got["timezone"] == "Europe/Kyiv"
    assert got["expire"] == 4102444800000

    many = await add(rig, PLAIN, [member("3000"), member("2000"), member("3001", "3000")])
    assert (many["added"], many["refused"]) == (1, 2)
    first, dup, dup_in_batch = many["members"]
    assert first["id"] and first["error"] is None
    assert dup["id"] is None and "2000" in dup["error"] and mid in dup["error"]
    assert dup_in_batch["id"] is None and "3000" in dup_in_batch["error"]
    listed = (await rig.client.get(f"{PLAIN}/members")).json()
    assert listed["total"] == 2


async def test_bad_member_bodies_get_422_naming_the_field(rig: Rig) -> None:
    cases: list[tuple[Any, list[Any]]] = [
        (member("12a"), ["body", "communications", 0, "number"]),
        ({"name": "x"}, ["body", "communications"]),
        ({"communications": []}, ["body", "communications"]),
        (member("1", priority="high"), ["body", "priority"]),
        (member("1", timezone="Mars/Olympus"), ["body", "timezone"]),
        (member("1", expire="soon"), ["body", "expire"]),
        ([member("1"), member("2", "x")], ["body", 1, "communications", 1, "number"]),
        ("just text", ["body"]),
        ([], ["body"]),
    ]
    for body, loc in cases:
        reply = await rig.client.post(f"{PLAIN}/members", json=body)
        assert loc in locs(reply), (body, reply.text)
        text = ".".join(str(p) for p in loc)
        assert any(line.startswith(text) for line in reply.json()["errors"]), reply.text
    json_type = {"Content-Type": "application/json"}
    reply = await rig.client.post(f"{PLAIN}/members", content=b"{not json", headers=json_type)
    assert locs(reply)[0][0] == "body"
    # Bytes that are not even UTF-8 are FastAPI's 400 "error parsing the body" (not a 500).
    reply = await rig.client.post(f"{PLAIN}/members", content=b"{not json\xff", headers=json_type)
    assert reply.status_code == 400
    assert (await rig.client.get(f"{PLAIN}/members")).json()["total"] == 0


async def test_auto_run_starts_the_campaign(rig: Rig) -> None:
    await rig.client.put(f"{PLAIN}/state/stop")
    added = await add(rig, PLAIN, member("4000"))
    assert added["started"] is False
    assert (await rig.client.get(PLAIN)).json()["state"] == "stopped"
    added = await add(rig, PLAIN, member("4001"), autoRun="true")
    assert added["started"] is True
    campaign = (await rig.client.get(PLAIN)).json()
    assert campaign["state"] == "running" and campaign["members"]["total"] == 2


async def test_list_filters_and_pages(rig: Rig) -> None:
    await add(rig, PLAIN, [member(f"5{i:03}", name=f"Name {i}") for i in range(25)])
    page = (await rig.client.get(f"{PLAIN}/members", params={"page": 2, "size": 10})).json()
    assert page["total"] == 25 and page["page"] == 2 and page["size"] == 10
    assert [m["name"] for m in page["items"]] == [f"Name {i}" for i in range(10, 20)]
    last = (await rig.client.get(f"{PLAIN}/members", params={"page": 3, "size": 10})).json()
    assert len(last["items"]) == 5
    named = (await rig.client.get(f"{PLAIN}/members", params={"name": "name 1"})).json()
    assert named["total"] == 11  # 1, 10..19
    by_number = (await rig.client.get(f"{PLAIN}/members", params={"number": "5-007"})).json()
    assert [m["name"] for m in by_number["items"]] == ["Name 7"]
    assert (await rig.client.get(f"{PLAIN}/members", params={"number": "9999"})).json()[
        "total"
    ] == 0
    ready = (await rig.client.get(f"{PLAIN}/members", params={"status": "ready"})).json()
    ended = (await rig.client.get(f"{PLAIN}/members", params={"status": "ended"})).json()
    assert (ready["total"], ended["total"]) == (25, 0)
    assert (await rig.client.get(f"{WFR}/members")).json()["total"] == 0  # per campaign
    bad: list[tuple[dict[str, str | int], str]] = [
        ({"size": 1001}, "size"), ({"page": 0}, "page"), ({"status": "gone"}, "status"),
        ({"number": "x"}, "number"),
    ]  # fmt: skip
    for params, field in bad:
        assert ["query", field] in locs(await rig.client.get(f"{PLAIN}/members", params=params))


async def test_get_edit_delete_one_member(rig: Rig) -> None:
    ids = [
        m["id"]
        for m in (await add(rig, PLAIN, [member("6000", "6001"), member("6100")]))["members"]
    ]
    other = (await add(rig, WFR, member("6200")))["members"][0]["id"]
    path = f"{PLAIN}/members/{ids[0]}"

    for missing in ("999999", "abc", "-1", "1.5", other):  # other: a member of another campaign
        for method in ("GET", "PUT", "DELETE"):
            reply = await rig.client.request(method, f"{PLAIN}/members/{missing}", json={})
            assert reply.status_code == 404, (method, missing, reply.text)

    reply = await rig.client.put(path, json={"name": "Renamed", "priority": 5,
                                             "variables": {"a": "b"},
                                             "communications": [{"number": "6001", "priority": 9},
                                                                {"number": "6002"}]})  # fmt: skip
    assert reply.status_code == 200, reply.text
    edited = reply.json()
    assert edited["name"] == "Renamed" and edited["priority"] == 5
    assert edited["variables"] == {"a": "b"}
    assert [(c["number"], c["priority"]) for c in edited["communications"]] == [
        ("6001", 9), ("6002", 0)]  # fmt: skip
    assert (await rig.client.get(path)).json() == edited
    # Only the keys given change; a number of another member is a conflict.
    reply = await rig.client.put(path, json={"expire": "2030-01-01"})
    assert reply.json()["name"] == "Renamed" and reply.json()["expire"] == 1893456000000
    reply = await rig.client.put(path, json={"communications": [{"number": "6100"}]})
    assert reply.status_code == 409 and "6100" in reply.json()["detail"]
    assert ["body", "priority"] in locs(await rig.client.put(path, json={"priority": "x"}))
    # Terminate (manager request): the member ends at once; again is harmless.
    terminated = f"{PLAIN}/members/{ids[1]}/terminate"
    for _ in range(2):
        reply = await rig.client.put(terminated)
        assert reply.status_code == 200, reply.text
        assert reply.json()["status"] == "ended"
        assert reply.json()["end_cause"] == "MANAGER_REQUEST"
    assert (await rig.client.put(f"{PLAIN}/members/{other}/terminate")).status_code == 404
    # Numbers freed by the edit can be used again; the deleted member is gone.
    reply = await rig.client.delete(path)
    assert reply.status_code == 200 and reply.json()["id"] == ids[0]
    assert (await rig.client.get(path)).status_code == 404
    assert (await rig.client.delete(path)).status_code == 404
    assert (await add(rig, PLAIN, member("6001")))["added"] == 1


# --- CSV import -----------------------------------------------------------------------------

CSV_CP1251 = (
    "ФИО;Телефон;Мобильный;Приоритет\n"
    "Іванов Іван;+380441110001;+380501110001;5\n"
    "Петренко;12ab;;1\n"  # a bad number: line 3
    "Сидоренко;+380441110003;;\n"
    ";;;\n"  # blank: skipped
    "Коваль;+380441110001;;\n"  # the number of line 2 again: line 6
).encode("cp1251")


async def test_import_csv_over_the_api(rig: Rig) -> None:
    params = {"encoding": "cp1251", "delimiter": ";", "skip_header": "true",
              "map": "name=ФИО,number=Телефон,number=Мобильный,priority=Приоритет"}  # fmt: skip
    reply = await rig.client.post(f"{PLAIN}/members/import", params=params, content=CSV_CP1251,
                                  headers={"Content-Type": "text/csv"})  # fmt: skip
    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert (report["rows"], report["imported"]) == (4, 2)
    assert [r["line"] for r in report["refused"]] == [3, 6]
    assert "12ab" in report["refused"][0]["reason"]
    listed = (await rig.client.get(f"{PLAIN}/members")).json()["items"]
    assert [m["name"] for m in listed] == ["Іванов Іван", "Сидоренко"]
    assert [c["number"] for c in listed[0]["communications"]] == ["+380441110001", "+380501110001"]
    assert listed[0]["priority"] == 5
    # A re-import adds nothing twice: every good row is now refused as a duplicate.
    again = (await rig.client.post(f"{PLAIN}/members/import", params=params,
                                   content=CSV_CP1251)).json()  # fmt: skip
    assert again["imported"] == 0 and [r["line"] for r in again["refused"]] == [2, 3, 4, 6]
    for bad, field in [({"encoding": "utf-16"}, "encoding"), ({"delimiter": "ab"}, "delimiter"),
                       ({"map": "nam=0"}, "map"), ({"map": "number=Phone"}, "map")]:  # fmt: skip
        reply = await rig.client.post(f"{PLAIN}/members/import", params=params | bad,
                                      content=CSV_CP1251)  # fmt: skip
        assert locs(reply) == [["query", field]], reply.text
    reply = await rig.client.post(f"{PLAIN}/members/import", params={"autoRun": "true"},
                                  content=b"Olga,7000\n")  # fmt: skip
    assert reply.json()["imported"] == 1 and reply.json()["started"] is True
    # A map of one column (a regression: it used to fail inside the importer).
    reply = await rig.client.post(f"{PLAIN}/members/import", params={"map": "number=0"},
                                  content=b"\xff\xfe\n7001\n")  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert reply.json()["imported"] == 1 and reply.json()["refused"][0]["line"] == 1


# --- agents ---------------------------------------------------------------------------------


async def test_agents_list_and_status(rig: Rig) -> None:
    agents = (await rig.client.get("/api/v2/agents")).json()
    assert [(a["id"], a["name"], a["registered"]) for a in agents] == [("101", "Alice", True)]
    assert agents[0]["status"] == "LoggedOut" and agents[0]["campaigns"] == ["wfr"]
    for sent, shown in [
        ("Break", "Break"),
        ("available", "Available"),
        ("logged_out", "LoggedOut"),
    ]:
        reply = await rig.client.put("/api/v2/agents/101/status", json={"status": sent})
        assert reply.status_code == 200 and reply.json()["status"] == shown
        assert rig.system.agents["101"].status.value == shown
    assert (await rig.client.put("/api/v2/agents/999/status",
                                 json={"status": "Break"})).status_code == 404  # fmt: skip
    for body, loc in [({"status": "Lunch"}, ["body", "status"]), ({}, ["body", "status"]),
                      ({"status": "Break", "extra": 1}, ["body", "extra"])]:  # fmt: skip
        assert loc in locs(await rig.client.put("/api/v2/agents/101/status", json=body))


# --- the server: in the dialer's loop, extra routers, graceful stop, bind errors ----------


async def test_server_extra_routers_graceful_close_and_bind_error(rig: Rig) -> None:
    extra = APIRouter()
    arrived, release = asyncio.Event(), asyncio.Event()

    @extra.get("/metrics")
    async def slow() -> dict[str, str]:
        arrived.set()
        await release.wait()
        return {"served": "after close began"}

    sigint = signal.getsignal(signal.SIGINT)
    app = create_app(rig.runner, rig.config, extra_routers=[extra])
    server = ApiServer(app, rig.config.api, grace=2.0)
    host, port = await server.start()
    assert signal.getsignal(signal.SIGINT) is sigint  # uvicorn left the signals alone
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=5) as client:
        # Extra routers need no token; the API's routes still do.
        assert (await client.get("/api/v2/agents")).status_code == 401
        pending = asyncio.create_task(client.get("/metrics"))
        await asyncio.wait_for(arrived.wait(), 3)
        closing = asyncio.create_task(server.close())
        await asyncio.sleep(0.2)
        assert not closing.done()  # waits for the request in progress
        release.set()
        reply = await pending
        assert reply.status_code == 200 and reply.json() == {"served": "after close began"}
        await asyncio.wait_for(closing, 3)
        with pytest.raises(httpx.ConnectError):
            await client.get("/docs")
    await server.close()  # twice is harmless

    # An address in use is an OSError for the caller, and the loop (the dialer) goes on.
    busy = ApiServer(app, rig.config.api.model_copy(update={"listen": rig.base[7:]}))
    with pytest.raises(OSError):
        await busy.start()
    assert (await rig.client.get("/api/v2/dialer")).status_code == 200


async def test_api_task_serves_inside_the_running_dialer(tmp_path: Path) -> None:
    """``sipdialer.app.serve(..., extra=[api_task(config)])``: what ``sipdialer run`` does."""
    port = free_port()
    text = config_text(tmp_path / "run.db", ("127.0.0.1", free_port()), "47400-47499")
    text = text.replace('[api]\nlisten = "127.0.0.1:0"', f'[api]\nlisten = "127.0.0.1:{port}"')
    config = parse_config(text)
    stop = asyncio.Event()
    running = asyncio.create_task(serve(config, stop, extra=[api_task(config, grace=1.0)]))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=HEADERS) as client:
        for _ in range(100):
            try:
                reply = await client.get("/api/v2/dialer/plain")
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.05)
        assert reply.status_code == 200 and reply.json()["id"] == PLAIN_ID
        stop.set()
        assert await asyncio.wait_for(running, 10) == 0
        with pytest.raises(httpx.ConnectError):
            await client.get("/api/v2/dialer")

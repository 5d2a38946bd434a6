"""Inputs that used to give a 500 (review defects).

* Member ids above 2**31-1: the store's id columns are 32-bit integers on PostgreSQL,
  where such a parameter is an error. The API treats them as unknown ids (404, or no
  match for the attempts filter) and the console's result body refuses them (422).
* A session cookie with non-ASCII characters: ``hmac.compare_digest`` on str raised
  TypeError (and ``int("²")`` ValueError); such a cookie is simply invalid (401).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from dashrig import running_dialer, until
from fastapi import HTTPException
from pydantic import ValidationError

from sipdialer.api.dashboard_agent import ConsoleResult
from sipdialer.api.dashboard_session import Sessions
from sipdialer.api.routes_common import member_id_of, parse_member_id

INT32 = 2**31 - 1


def test_member_ids_beyond_int32_are_unknown() -> None:
    assert parse_member_id(str(INT32)) == INT32
    assert member_id_of("1") == 1
    for text in (str(INT32 + 1), "99999999999", "999999999999999999", "0", "²", "-1", ""):
        assert member_id_of(text) is None, text
        with pytest.raises(HTTPException) as caught:
            parse_member_id(text)
        assert caught.value.status_code == 404


def test_console_result_refuses_a_member_id_beyond_int32() -> None:
    assert ConsoleResult.model_validate({"campaign": "c", "member": INT32}).member == INT32
    with pytest.raises(ValidationError):
        ConsoleResult.model_validate({"campaign": "c", "member": INT32 + 1})


def test_non_ascii_cookies_are_invalid_not_errors() -> None:
    sessions = Sessions((), (), secret=b"k" * 32, clock=lambda: 1000.0)
    for cookie in ("a:101:9999999999:é", "a:101:²:00", "s:é:9999999999:00"):
        assert sessions.agent(cookie) is None, cookie
        assert sessions.supervisor(cookie) is False, cookie


async def test_a_crafted_cookie_gives_401_not_500(tmp_path: Path) -> None:
    async with running_dialer(tmp_path, phones=()) as rig:
        async with httpx.AsyncClient(base_url=rig.base, timeout=5.0) as client:
            for value in ("a:101:9999999999:é", "a:101:²:00"):
                raw = f"sipdialer_agent={value}".encode()
                reply = await client.get("/agent/state", headers=[(b"Cookie", raw)])
                assert reply.status_code == 401, (value, reply.text)


async def test_console_result_with_another_members_number_is_409(tmp_path: Path) -> None:
    """The console's result goes through the runner's check (review defect: the node
    stopped on the store's refusal); the member keeps waiting for a valid result."""
    async with running_dialer(tmp_path, phones=("201",), ports=55000) as rig:
        async with httpx.AsyncClient(base_url=rig.base, timeout=5.0) as browser:
            login = {"extension": "201", "password": "pw201"}
            assert (await browser.post("/agent/login", json=login)).status_code == 204
            console = {"X-Console": "1"}
            body = {"status": "Available"}
            assert (await browser.put("/agent/status", json=body, headers=console)).is_success
            members = [{"name": n, "communications": [{"number": n}]} for n in ("1000", "1001")]
            await rig.add_members("wfr", members)
            cid = rig.campaign("wfr")
            rig.runner.set_campaign_state(cid, True)
            await until(lambda: rig.runner.campaign_view(cid).waiting == 1)
            page = rig.runner.members.list(cid).members
            waiting = next(m for m in page if m.status == "waiting")
            other = next(m for m in page if m.member_id != waiting.member_id)
            taken = other.state.numbers[0].number
            result = {"campaign": "wfr", "member": waiting.member_id, "next_communication": taken}
            reply = await browser.put("/agent/result", json=result, headers=console)
            assert reply.status_code == 409, reply.text
            assert f"member {other.member_id}" in reply.json()["detail"]
            assert not rig.runner.broken and not rig.runner.failed.is_set()
            assert rig.runner.campaign_view(cid).waiting == 1
            big = {"campaign": "wfr", "member": INT32 + 1, "success": True}
            assert (
                await browser.put("/agent/result", json=big, headers=console)
            ).status_code == 422
            ok = {"campaign": "wfr", "member": waiting.member_id, "success": True}
            reply = await browser.put("/agent/result", json=ok, headers=console)
            assert reply.status_code == 200, reply.text

"""Real phones register to the running PhoneSystem with digest: sipp (UDP and TCP,
register then unregister) and pyVoIP 1.6.8 (stays registered across refreshes).

pyVoIP's refresh (read in pyVoIP/SIP.py, 1.6.8): it asks ``Expires:
SIPClient.default_expires`` (120) and re-registers every ``default_expires - 5`` s on
a timer, whatever expiry the 200 grants, each time with a new Call-ID (the challenged
second REGISTER reuses the 401's Call-ID). So a registrar that grants less than
``default_expires - 5`` loses a pyVoIP phone between refreshes; ours caps at
``max_expires`` (3600) and grants what it asks. The test sets ``default_expires`` to 6
in the phone process (refresh every second) and lowers the registrar's
``min_expires`` so that 6 s is not answered 423.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers import free_port
from peers import (
    DATA,
    PYTHON,
    Program,
    phone_system,
    program,
    python_module,
    running,
    wait_until,
)

from sipdialer.sip.bindings import BindingAdded, BindingRefreshed, BindingRemoved
from sipdialer.sip.peer import Peer

pytestmark = pytest.mark.interop
TRANSPORT_FLAG = {"UDP": "u1", "TCP": "t1"}


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_sipp_registers_with_digest_then_unregisters(tmp_path: Path, transport: str) -> None:
    sipp = program("sipp")
    sipp_port, contact_port = free_port(), free_port()
    async with phone_system(tmp_path, {"101": "secret101", "105": "secret105"}) as system:
        argv = [
            sipp, "-sf", str(DATA / "scenarios" / "agent_register.xml"),
            f"{system.host}:{system.port}", "-t", TRANSPORT_FLAG[transport],
            "-s", "101", "-au", "101", "-ap", "secret101",
            "-key", "contact_port", str(contact_port), "-key", "expires", "300",
            "-d", "1500", "-m", "1", "-i", "127.0.0.1", "-p", str(sipp_port),
            "-nostdin", "-timeout", "15s", "-timeout_error", "-max_socket", "4",
        ]  # fmt: skip
        prog = Program(argv, tmp_path / "sipp.log", limit=20, cwd=tmp_path)
        async with running(prog):
            await wait_until(lambda: system.ps.registrar.is_registered("101"), 10,
                             "sipp's binding", prog.log)  # fmt: skip
            [binding] = system.bindings("101")
            assert system.ps.agents["101"].registered
            assert not system.ps.agents["105"].registered
            assert binding.source.transport == transport
            assert binding.source.host == "127.0.0.1"
            if transport == "UDP":
                assert binding.source.port == sipp_port
            # The contact names the source IP: requests go to the contact's port.
            assert binding.target() == Peer(transport, "127.0.0.1", contact_port)
            assert binding.user_agent == "sipp-agent"
            assert 290 <= binding.remaining(system.ps.endpoint.now) <= 300
            code = await prog.wait(15)
        assert code == 0, prog.log()
        assert system.bindings("101") == []
        assert not system.ps.registrar.is_registered("101")
        assert not system.ps.agents["101"].registered
        removed = system.of(BindingRemoved)
        assert len(removed) == 1 and isinstance(removed[0], BindingRemoved)
        assert removed[0].reason == "unregistered"
        assert system.ps.registrar.registrar.stats["failures"] == 0


async def test_pyvoip_registers_and_stays_registered_across_refreshes(tmp_path: Path) -> None:
    python_module("pyVoIP")
    expires = 6  # pyVoIP re-registers every expires - 5 = 1 s
    sip_port = free_port()
    async with phone_system(tmp_path, {"101": "secret101"}, min_expires=2) as system:
        argv = [
            PYTHON, str(DATA / "tools" / "pyvoip_phone.py"), "--server", system.host,
            "--port", str(system.port), "--user", "101", "--password", "secret101",
            "--sip-port", str(sip_port), "--expires", str(expires), "--seconds", "25",
        ]  # fmt: skip
        prog = Program(argv, tmp_path / "pyvoip.log", limit=30, stdin_pipe=True)
        async with running(prog):
            await wait_until(lambda: system.ps.registrar.is_registered("101"), 10,
                             "pyVoIP's binding", prog.log)  # fmt: skip
            [first] = system.bindings("101")
            assert system.ps.agents["101"].registered
            phone = Peer("UDP", "127.0.0.1", sip_port)
            assert first.source == phone
            assert first.target() == phone
            assert first.user_agent is not None and first.user_agent.startswith("pyVoIP")
            # Past the first binding's expiry: refreshed, never dropped.
            loop = asyncio.get_running_loop()
            until = loop.time() + first.remaining(system.ps.endpoint.now) + 1.5
            while loop.time() < until:
                assert system.ps.registrar.is_registered("101"), prog.log()
                await asyncio.sleep(0.1)
            [now] = system.bindings("101")
            assert now.key == first.key
            assert now.registered_at == first.registered_at  # the same binding, renewed
            assert now.expires_at > first.expires_at
            assert now.call_id != first.call_id  # pyVoIP: a new Call-ID every refresh
            assert now.source == phone and now.target() == phone
            assert len(system.of(BindingAdded)) == 1
            assert len(system.of(BindingRefreshed)) >= 3
            assert system.ps.agents["101"].registered
            await prog.send_line("stop")  # it un-registers, then exits
            code = await prog.wait(15)
        assert code == 0, prog.log()
        await wait_until(lambda: not system.ps.registrar.is_registered("101"), 5,
                         "pyVoIP's un-REGISTER", prog.log)  # fmt: skip
        assert not system.ps.agents["101"].registered
        assert system.ps.registrar.registrar.stats["failures"] == 0

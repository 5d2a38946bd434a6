"""baresip 1.0.0 (Debian baresip-core) as an agent's phone against the running
PhoneSystem: it registers with digest, stays registered across refreshes (regint 5)
and answers our OPTIONS; then, the end-to-end check of the feature codes, it dials
``*2`` and ``*1`` through its ctrl_tcp: each call is challenged, answered, gets the
beep and is hung up by us, and the agent moves Break → Available. Finally ``quit``
un-registers it.

baresip quirks met here (see also tests/data/peers/baresip/config.in):
- a 401 with any non-MD5 challenge (we used to offer MD5 and SHA-256) makes it give up
  ("Register: Function not implemented", ENOSYS): the running system offers MD5 only
  (``transport.registrar.PHONE_ALGORITHMS``);
- its Contact user is ``101-0x…`` (not the AOR user), with ``;expires=`` in the
  Contact; it keeps one Call-ID across refreshes, refreshes at 90 % of the interval
  (4.5 s for regint 5) and starts every refresh unauthenticated (a fresh 401 each
  time); its ACK carries an Authorization header;
- ``net_interface 127.0.0.1`` is required; ``-t`` and ``quit`` un-REGISTER before exit.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers import free_port
from peers import (
    DATA,
    BaresipCtrl,
    Program,
    System,
    fill,
    free_udp_range,
    phone_system,
    program,
    running,
    wait_until,
    write_tone_wav,
)

from sipdialer.dialer.agents import AgentStatus
from sipdialer.sip.bindings import BindingAdded, BindingRefreshed, BindingRemoved
from sipdialer.sip.peer import Peer

pytestmark = pytest.mark.interop
REGINT = 5


async def test_baresip_registers_refreshes_and_dials_feature_codes(tmp_path: Path) -> None:
    baresip = program("baresip")
    sip_port, ctrl_port, rtp = free_port(), free_port(), free_udp_range(4)
    async with phone_system(tmp_path, {"101": "secret101"}, qualify_interval=1.0) as system:
        conf = tmp_path / "baresip"
        conf.mkdir()
        values = {
            "SIP_PORT": sip_port, "CTRL_PORT": ctrl_port, "RTP_LOW": rtp, "RTP_HIGH": rtp + 3,
            "WAV": write_tone_wav(tmp_path / "tone.wav", 4.0), "USER": "101",
            "PASSWORD": "secret101", "REGISTRAR_PORT": system.port, "REGINT": REGINT,
        }  # fmt: skip
        fill(DATA / "baresip" / "config.in", conf / "config", values)
        fill(DATA / "baresip" / "accounts.in", conf / "accounts", values)
        argv = [baresip, "-f", str(conf), "-t", "40", "-s"]  # -s: SIP trace into the log
        prog = Program(argv, tmp_path / "baresip.log", limit=45, cwd=tmp_path)
        async with running(prog):
            ctrl = await BaresipCtrl.connect(ctrl_port, log=prog.log)
            try:
                await run_phone(system, prog, ctrl, sip_port)
            finally:
                await ctrl.close()
            code = await prog.wait(10)  # after "quit": un-REGISTER, then exit
        assert code == 0, prog.log()
        removed = system.of(BindingRemoved)
        assert len(removed) == 1 and isinstance(removed[0], BindingRemoved), system.events
        assert removed[0].reason == "unregistered"
        assert not system.ps.registrar.is_registered("101")
        assert not system.ps.agents["101"].registered
        assert system.ps.registrar.registrar.stats["failures"] == 0


async def run_phone(system: System, prog: Program, ctrl: BaresipCtrl, sip_port: int) -> None:
    registrar, agent = system.ps.registrar, system.ps.agents["101"]
    await wait_until(lambda: registrar.is_registered("101"), 10, "baresip's binding", prog.log)
    [first] = system.bindings("101")
    phone = Peer("UDP", "127.0.0.1", sip_port)
    assert first.source == phone and first.target() == phone
    assert first.uri.user != "101"  # baresip's Contact user is "101-0x…"
    assert first.user_agent is not None and first.user_agent.startswith("baresip")
    assert agent.registered
    # Past the first binding's expiry: refreshed, never dropped.
    loop = asyncio.get_running_loop()
    until = loop.time() + first.remaining(system.ps.endpoint.now) + 1.0
    while loop.time() < until:
        assert registrar.is_registered("101"), prog.log()
        await asyncio.sleep(0.1)
    [now] = system.bindings("101")
    assert now.key == first.key and now.registered_at == first.registered_at
    assert now.expires_at > first.expires_at
    assert now.call_id == first.call_id  # baresip keeps its Call-ID (pyVoIP does not)
    assert len(system.of(BindingAdded)) == 1 and system.of(BindingRefreshed)
    assert now.qualify_supported is True  # baresip answers our OPTIONS
    assert agent.registered

    for code, status in (("*2", AgentStatus.BREAK), ("*1", AgentStatus.AVAILABLE)):
        uri = f"sip:{code}@{system.host}:{system.port}"

        def call_events(kind: str, uri: str = uri) -> list[dict[str, object]]:
            return [e for e in ctrl.events(kind) if e.get("peeruri") == uri]

        await ctrl.command("dial", uri)
        await wait_until(lambda: bool(call_events("CALL_CLOSED")), 10, f"the {code} call to end",
                         lambda: f"{ctrl.messages}\n{prog.log()}")  # fmt: skip
        assert agent.status is status, (code, agent.status)
        assert call_events("CALL_ESTABLISHED"), ctrl.messages  # we answered (after 401)
        assert call_events("CALL_RTPESTAB"), ctrl.messages  # it heard our beep
        # "Connection reset by peer" is how baresip reports the far end's BYE.
        assert [e["param"] for e in call_events("CALL_CLOSED")] == ["Connection reset by peer"]
    assert agent.registered
    await ctrl.command("quit")

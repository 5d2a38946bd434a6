"""Interop with Debian's sipp: its built-in uac against our UAS, our UAC against its
uas, over UDP and TCP. Every sipp run is bounded (-m, -timeout) and stops itself."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest
from netutil import free_port, needs_sipp

from sipdialer.simulate.uac import CallingUac
from sipdialer.simulate.uas import AnsweringUas
from sipdialer.sip.peer import Peer
from sipdialer.sip.ua import UaConfig
from sipdialer.transport.endpoint import SipEndpoint

pytestmark = [needs_sipp, pytest.mark.interop]
CALLS = 10
TRANSPORT_FLAG = {"UDP": "u1", "TCP": "t1"}


async def run_sipp(*args: str, timeout: float = 30.0) -> tuple[int, str]:
    sipp = shutil.which("sipp")
    assert sipp, "sipp must be installed (apt-get install sip-tester)"
    process = await asyncio.create_subprocess_exec(
        sipp, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL, cwd=os.environ.get("TMPDIR", "/tmp"),
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")[-3000:]


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_sipp_uac_calls_our_uas(transport: str) -> None:
    endpoint = SipEndpoint(UaConfig(host="127.0.0.1", port=0, user="uas"))
    host, port = await endpoint.start("127.0.0.1", 0)
    uas = AnsweringUas(endpoint)
    try:
        code, out = await run_sipp(
            "-sn", "uac", f"{host}:{port}", "-i", "127.0.0.1", "-p", str(free_port()),
            "-t", TRANSPORT_FLAG[transport], "-m", str(CALLS), "-r", "20", "-d", "100",
            "-nostdin", "-timeout", "25s", "-timeout_error", "-max_socket", "10",
        )  # fmt: skip
    finally:
        await asyncio.sleep(0.05)
        await endpoint.close()
    assert code == 0, out
    assert uas.stats.calls == CALLS
    assert uas.stats.confirmed == CALLS
    assert uas.stats.ended == CALLS


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_our_uac_calls_sipp_uas(transport: str) -> None:
    sipp_port = free_port()
    sipp = asyncio.ensure_future(run_sipp(
        "-sn", "uas", "-i", "127.0.0.1", "-p", str(sipp_port), "-t", TRANSPORT_FLAG[transport],
        "-m", str(CALLS), "-nostdin", "-timeout", "25s", "-timeout_error",
    ))  # fmt: skip
    await asyncio.sleep(0.5)  # let sipp bind
    endpoint = SipEndpoint(UaConfig(host="127.0.0.1", port=0, user="uac"))
    await endpoint.start("127.0.0.1", 0)
    uac = CallingUac(endpoint, Peer(transport, "127.0.0.1", sipp_port), hold=0.1)
    try:
        for _ in range(CALLS):
            uac.place(1)
            await asyncio.sleep(0.02)
        await asyncio.wait_for(uac.done.wait(), 20)
        await asyncio.sleep(0.2)
    finally:
        await endpoint.close()
    code, out = await sipp
    assert uac.result.answered == CALLS, (uac.result, out)
    assert uac.result.failed == {}
    assert uac.result.hung_up == CALLS
    assert uac.result.bye_ok == CALLS
    assert code == 0, out

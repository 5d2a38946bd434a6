"""``sipdialer trunk-sim`` as a real subprocess: listens, logs one line per call, stops
on SIGTERM (and on --duration) with exit status 0."""

from __future__ import annotations

import asyncio
import signal
import sys

from helpers import free_port

from sipdialer.sip.peer import Peer
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.ua import UaConfig
from sipdialer.sip.ua_events import CallAnswered, CallFailed, UaEvent
from sipdialer.transport.endpoint import SipEndpoint

WAIT = 10.0
SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)


async def start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sipdialer", "trunk-sim", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    return (await asyncio.wait_for(proc.stdout.readline(), WAIT)).decode().strip()


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def test_trunk_sim_serves_calls_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = await start("--listen", f"127.0.0.1:{port}", "--rtp-ports", "42600-42699",
                       "--behave", "^77 ring=0 talk=0.2")  # fmt: skip
    endpoint = SipEndpoint(UaConfig(host="127.0.0.1", port=0, user="dialer",
                                    timers=TimerConfig(t1=0.05, t2=0.4, t4=0.5)))  # fmt: skip
    events: asyncio.Queue[UaEvent] = asyncio.Queue()
    endpoint.on_event(events.put_nowait)
    try:
        assert await line(proc) == f"trunk-sim listening on 127.0.0.1:{port} (UDP and TCP)"
        await endpoint.start("127.0.0.1", 0, tcp=False)
        trunk = Peer("UDP", "127.0.0.1", port)
        for number in ("7700", "2000"):  # --behave row; the default plan's busy
            endpoint.ua.invite(f"sip:{number}@127.0.0.1:{port}", trunk, endpoint.now,
                               from_uri="sip:dialer@127.0.0.1", body=SDP)  # fmt: skip
        endpoint.flush()
        finals: list[UaEvent] = []
        while len(finals) < 2:
            event = await asyncio.wait_for(events.get(), WAIT)
            if isinstance(event, CallAnswered | CallFailed):
                finals.append(event)
        assert {type(e) for e in finals} == {CallAnswered, CallFailed}
        lines = sorted([await line(proc), await line(proc)])
        assert lines[0].startswith("call number=2000 status=486 ended_by=trunk")
        assert lines[1].startswith("call number=7700 status=200 ended_by=trunk talk=0.")
        proc.send_signal(signal.SIGTERM)
        assert (await line(proc)).startswith("trunk-sim stopped: calls=2 answered=1")
        assert await asyncio.wait_for(proc.wait(), WAIT) == 0
    finally:
        await endpoint.close()
        await stop(proc)


async def test_trunk_sim_duration_and_bad_listen() -> None:
    proc = await start("--listen", "127.0.0.1:0", "--duration", "0.3")
    try:
        assert (await line(proc)).startswith("trunk-sim listening on 127.0.0.1:")
        assert await asyncio.wait_for(proc.wait(), WAIT) == 0
    finally:
        await stop(proc)
    proc = await start("--listen", "nonsense")
    try:
        assert await asyncio.wait_for(proc.wait(), WAIT) == 2
    finally:
        await stop(proc)

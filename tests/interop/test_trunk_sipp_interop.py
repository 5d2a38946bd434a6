"""Debian's sipp 3.6.1 as the TRUNK of progressive calls through ``PhoneSystem.calls``,
with a ``SimPhone`` (our simulator) as the agent's registered phone.

Each test starts one sipp UAS (``-m 1``: it exits after its one call; ``-timeout``
bounds it; ``Program`` stops it by PID whatever happens) with the scenario under test,
then drives one call the way the engine will: ``originate`` -> on AgentAnswered
``dial_member`` -> on MemberAnswered ``bridge`` -> (talk) -> ``hangup``. What is
checked: the ``CallResult`` (cause, Q.850, SIP code, who hung up), sipp's exit status
(0: its scenario ran to the end, so the SIP it saw was what it expected: our ACK for
its 486, our CANCEL and ACK for its 487, our BYE ...), and, for the scenarios that send
RTP (``rtp_stream`` of a µ-law file, ``play_pcap_audio`` of a pcap), that the agent's
phone heard sipp's 1 kHz tone through the relay (FFT on what the phone recorded).

sipp notes (see tests/data/peers/README.md): scenarios name ``media/...`` relative to
the cwd, so sipp runs in ``tests/data/peers``; ``-mp`` is given a free port range
because sipp's RTP ports default to 6000 and up; ``-cp`` a free control port (default
8888, shared by every sipp on the machine). sipp is started before the call and we
wait until its SIP port is bound, so no INVITE depends on a retransmission.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from helpers import free_port
from numpy.typing import NDArray
from peers import DATA, Program, free_udp_range, program, running, wait_until

from sipdialer.app import PhoneSystem
from sipdialer.calls.events import (
    AgentAnswered,
    Bridged,
    CallEnded,
    CallEvent,
    CallOrder,
    CallResult,
    MemberAnswered,
    MemberRinging,
    Side,
)
from sipdialer.config import parse_config
from sipdialer.media.analysis import dominant_frequency
from sipdialer.simulate.phones import PhoneBehaviour, SimPhone
from sipdialer.sip.timers import TimerConfig

pytestmark = pytest.mark.interop
NO_ANSWER_TIMEOUT = 1.0
"The route's call_timeout for numbers starting with 3 (sipp rings forever)."


def config_text(db: Path, sipp_port: int, rtp_base: int) -> str:
    return f"""
[sip]
listen = "127.0.0.1:0"
qualify_interval = 0
t1 = 0.1
t2 = 0.8
t4 = 1.0
[media]
rtp_ports = "{rtp_base}-{rtp_base + 7}"
media_timeout = 5
[store]
url = "sqlite:///{db}"
[[trunks]]
name = "sipp"
address = "127.0.0.1:{sipp_port}"
[[routes]]
pattern = "^3"
trunk = "sipp"
variables = {{ call_timeout = {NO_ANSWER_TIMEOUT} }}
[[routes]]
pattern = "^[0-9]+$"
trunk = "sipp"
[[agents]]
id = "101"
password = "secret101"
"""


@dataclass
class Rig:
    """PhoneSystem + one registered SimPhone + the tiny engine of tests/calls."""

    system: PhoneSystem
    phone: SimPhone
    sipp_port: int
    tmp_path: Path
    talk: float = 1.0
    "Seconds from Bridged to our hangup."
    events: list[CallEvent] = field(default_factory=list)
    ended: asyncio.Future[CallResult] | None = None

    def on_event(self, event: CallEvent) -> None:
        self.events.append(event)
        calls = self.system.calls
        if isinstance(event, AgentAnswered):
            calls.dial_member(event.call_id)
        elif isinstance(event, MemberAnswered):
            calls.bridge(event.call_id)
        elif isinstance(event, Bridged):
            loop = asyncio.get_running_loop()
            loop.call_later(self.talk, calls.hangup, event.call_id)
        elif isinstance(event, CallEnded) and self.ended is not None:
            if not self.ended.done():
                self.ended.set_result(event.result)

    async def call(self, number: str, sipp: Program, timeout: float = 8.0) -> CallResult:
        self.ended = asyncio.get_running_loop().create_future()
        order = CallOrder(f"call-{number}", "interop", "m1", "Member One", number, "101")
        self.system.calls.originate(order)
        try:
            return await asyncio.wait_for(self.ended, timeout)
        except TimeoutError:
            raise AssertionError(f"no CallEnded in {timeout} s: {self.events}\n"
                                 f"{sipp.log()}") from None  # fmt: skip

    def sipp(self, *scenario: str, extra: tuple[str, ...] = ()) -> Program:
        """sipp as a UAS for one call: ``-sn uas`` or ``-sf scenarios/FILE``."""
        media = free_udp_range(8)
        argv = [
            program("sipp"), *scenario, "-i", "127.0.0.1", "-p", str(self.sipp_port),
            "-mi", "127.0.0.1", "-mp", str(media), "-cp", str(free_port()),
            "-m", "1", "-nostdin", "-timeout", "15s", "-timeout_error",
            "-trace_err", "-error_file", str(self.tmp_path / "sipp_errors.log"), *extra,
        ]  # fmt: skip
        return Program(argv, self.tmp_path / "sipp.log", limit=20, cwd=DATA)


def udp_port_bound(port: int) -> bool:
    """Whether some process already holds 127.0.0.1:*port* (UDP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    program("sipp")
    sipp_port = free_port()
    config = parse_config(config_text(tmp_path / "d.db", sipp_port, free_udp_range(8)))
    system = PhoneSystem(config)
    address = await system.start()
    phone_rtp = free_udp_range(8)
    phone = SimPhone("101", "secret101", address, PhoneBehaviour(answer_after=0.1),
                     rtp_ports=f"{phone_rtp}-{phone_rtp + 7}",
                     timers=TimerConfig(t1=0.1, t2=0.8, t4=1.0))  # fmt: skip
    await phone.start()
    rig = Rig(system, phone, sipp_port, tmp_path)
    system.calls.on_event(rig.on_event)
    try:
        yield rig
    finally:
        await phone.close()
        await system.close()
        assert system.endpoint.internal_errors == 0 and system.endpoint.handler_errors == 0
        assert system.media.active == 0 and system.calls.active == 0


async def run_call(rig: Rig, sipp: Program, number: str) -> CallResult:
    """Start *sipp*, make one call, and check that sipp ended cleanly (status 0)."""
    async with running(sipp):
        await wait_until(lambda: udp_port_bound(rig.sipp_port) or sipp.returncode is not None,
                         10, "sipp to bind its SIP port", sipp.log)  # fmt: skip
        result = await rig.call(number, sipp)
        code = await sipp.wait(10)  # -m 1: it exits after its call (and timewait)
    assert code == 0, f"sipp exited {code}\n{sipp.log()}"
    return result


def heard(rig: Rig) -> NDArray[np.int16]:
    """The audio the agent's phone received on its last call (PCM16, in order)."""
    return rig.phone.calls[-1].received


# --- answered calls -------------------------------------------------------------------


async def test_sipp_builtin_uas_answers_and_we_hang_up(rig: Rig) -> None:
    rig.talk = 0.5
    result = await run_call(rig, rig.sipp("-sn", "uas"), "1000")
    assert (result.cause, result.cause_q850, result.sip_code) == ("NORMAL_CLEARING", 16, 200)
    assert result.hangup_by is Side.DIALER and result.bridged
    assert result.trunk == "sipp" and result.dialed == "1000"
    assert rig.phone.calls[-1].ended_by == "remote"  # the agent got our BYE


@pytest.mark.parametrize("scenario", ["uas_answer_rtpstream.xml", "uas_answer_pcap.xml"],
                         ids=["rtp_stream", "pcap"])  # fmt: skip
async def test_sipp_answers_with_rtp_and_the_agent_hears_it(rig: Rig, scenario: str) -> None:
    rig.talk = 1.2
    result = await run_call(rig, rig.sipp("-sf", f"scenarios/{scenario}"), "1001")
    assert (result.cause, result.sip_code, result.hangup_by) == ("NORMAL_CLEARING", 200,
                                                                 Side.DIALER)  # fmt: skip
    assert result.bridged and result.talk_seconds >= 1.0
    pcm = heard(rig)
    assert pcm.size >= 8000 * 0.5, pcm.size  # at least half a second of sipp's audio
    assert abs(dominant_frequency(pcm[-4000:]) - 1000.0) < 15


async def test_sipp_hangs_up_first(rig: Rig) -> None:
    rig.talk = 10.0  # far longer than sipp's -d: the BYE is sipp's
    sipp = rig.sipp("-sf", "scenarios/uas_answer_hangup.xml", extra=("-d", "1000"))
    result = await run_call(rig, sipp, "1002")
    assert (result.cause, result.sip_code, result.hangup_by) == ("NORMAL_CLEARING", 200,
                                                                 Side.MEMBER)  # fmt: skip
    assert result.bridged and rig.phone.calls[-1].ended_by == "remote"
    assert abs(dominant_frequency(heard(rig)[-4000:]) - 1000.0) < 15


# --- failures and early media ----------------------------------------------------------


async def test_sipp_busy_486(rig: Rig) -> None:
    sipp = rig.sipp("-sf", "scenarios/uas_reject_486.xml", extra=("-d", "300"))
    result = await run_call(rig, sipp, "2000")
    assert (result.cause, result.cause_q850, result.sip_code) == ("USER_BUSY", 17, 486)
    assert result.hangup_by is Side.MEMBER and not result.bridged
    assert result.agent_answered_at is not None
    assert rig.phone.calls[-1].ended_by == "remote"


async def test_sipp_rings_until_our_cancel_no_answer(rig: Rig) -> None:
    result = await run_call(rig, rig.sipp("-sf", "scenarios/uas_ring_noanswer.xml"), "3000")
    assert (result.cause, result.cause_q850, result.sip_code) == ("NO_ANSWER", 19, 487)
    assert result.hangup_by is Side.DIALER and not result.bridged
    assert result.member_ringing_at is not None
    rang = result.ended_at - result.member_ringing_at
    assert NO_ANSWER_TIMEOUT - 0.2 < rang < NO_ANSWER_TIMEOUT + 1.5, rang


async def test_sipp_early_media_then_answer(rig: Rig) -> None:
    """183 + SDP with RTP for 1.5 s, then 200: the agent hears the tone before the
    answer (the relay passes early media on), and the call bridges."""
    rig.talk = 0.8
    result = await run_call(rig, rig.sipp("-sf", "scenarios/uas_early_media_short.xml"), "1003")
    ringing = [e for e in rig.events if isinstance(e, MemberRinging)]
    assert ringing and ringing[0].early_media
    assert (result.cause, result.sip_code, result.hangup_by) == ("NORMAL_CLEARING", 200,
                                                                 Side.DIALER)  # fmt: skip
    assert result.bridged and result.member_answered_at is not None
    assert result.member_ringing_at is not None
    assert result.member_answered_at - result.member_ringing_at > 1.0
    phone_call = rig.phone.calls[-1]
    assert phone_call.answered_at is not None
    # What the phone heard before the trunk's 200 (its clock: the same event loop).
    early = phone_call.received[: int(8000 * 1.0)]
    assert early.size >= 4000, early.size
    assert abs(dominant_frequency(early) - 1000.0) < 15

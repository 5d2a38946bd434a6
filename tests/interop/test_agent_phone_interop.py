"""Real third-party phones as the AGENT of progressive calls through ``PhoneSystem.calls``,
with ``SimTrunk`` (our simulator, which sends a 1 kHz tone and records what it hears) as
the trunk: audio must cross the bridge both ways.

- baresip 1.0.0 (Debian baresip-core): registers with digest, auto-answers
  (``answermode=auto``), sends a 440 Hz WAV (``aufile``) and writes what it hears to a
  WAV (``sndfile``: ``*-dec.wav`` under ``snd_path``).
- pyVoIP 1.6.8 (dev extra, in a subprocess: ``tests/data/peers/tools/pyvoip_agent.py``;
  GPL, never imported here): registers, answers (at least 1 s after its 180), sends a
  440 Hz tone as 8-bit unsigned linear PCM and records what it hears to a raw file.

Each test: the phone registers; one call is driven the way the engine will
(``originate`` -> AgentAnswered: ``dial_member`` -> MemberAnswered: ``bridge`` ->
talk -> our ``hangup``); then the trunk's recording must be the phone's 440 Hz, the
phone's recording the trunk's 1 kHz (FFT), and the result NORMAL_CLEARING, bridged,
hung up by the dialer. One more test puts third-party programs at both ends: baresip
as the agent and sipp as the trunk in RTP echo mode (baresip must hear its own tone
back through the relay, both ways). Every program is bounded (``timeout -k``, its own time limit)
and stopped by PID.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from helpers import free_port
from numpy.typing import NDArray
from peers import (
    DATA,
    PYTHON,
    BaresipCtrl,
    Program,
    fill,
    free_udp_range,
    program,
    python_module,
    running,
    wait_until,
)

from sipdialer.app import PhoneSystem
from sipdialer.calls.events import (
    AgentAnswered,
    Bridged,
    CallEnded,
    CallEvent,
    CallOrder,
    CallResult,
    MemberAnswered,
    Side,
)
from sipdialer.config import parse_config
from sipdialer.media.analysis import dominant_frequency
from sipdialer.simulate.behaviour import Behaviour
from sipdialer.simulate.trunk import SimTrunk
from sipdialer.sip.timers import TimerConfig

pytestmark = pytest.mark.interop
TRUNK_TONE = 1000.0
PHONE_TONE = 440.0
TALK = 1.5
"Seconds from Bridged to our hangup."


def config_text(db: Path, trunk: tuple[str, int], sipp_port: int, rtp_base: int) -> str:
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
name = "sim"
address = "{trunk[0]}:{trunk[1]}"
[[trunks]]
name = "sipp"
address = "127.0.0.1:{sipp_port}"
[[routes]]
pattern = "^2"
trunk = "sipp"
[[routes]]
pattern = "^[0-9]+$"
trunk = "sim"
[[agents]]
id = "101"
password = "secret101"
"""


@dataclass
class Rig:
    """PhoneSystem + SimTrunk + the tiny engine of tests/calls (hang up TALK s after Bridged)."""

    system: PhoneSystem
    trunk: SimTrunk
    sipp_port: int
    "Where the test's sipp trunk listens (numbers starting with 2)."
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
            asyncio.get_running_loop().call_later(TALK, calls.hangup, event.call_id)
        elif isinstance(event, CallEnded) and self.ended is not None:
            if not self.ended.done():
                self.ended.set_result(event.result)

    async def call(self, log: Program, number: str = "1000",
                   timeout: float = 10.0) -> CallResult:  # fmt: skip
        self.ended = asyncio.get_running_loop().create_future()
        self.system.calls.originate(CallOrder("call-1", "interop", "m1", "Member One",
                                              number, "101"))  # fmt: skip
        try:
            return await asyncio.wait_for(self.ended, timeout)
        except TimeoutError:
            raise AssertionError(f"no CallEnded in {timeout} s: {self.events}\n"
                                 f"{log.log()}") from None  # fmt: skip

    def check(self, result: CallResult, phone_heard: NDArray[np.int16]) -> None:
        """The result of a call we hung up, and the audio at both ends."""
        assert (result.cause, result.cause_q850, result.sip_code) == ("NORMAL_CLEARING", 16, 200)
        assert result.hangup_by is Side.DIALER and result.bridged
        assert result.talk_seconds >= TALK - 0.1
        [trunk_call] = self.trunk.calls
        assert trunk_call.ended_by == "remote"  # our BYE
        trunk_heard = voiced(trunk_call.received)
        assert trunk_heard.size >= 4000, f"the trunk heard {trunk_heard.size} samples"
        assert abs(dominant_frequency(trunk_heard[-4000:]) - PHONE_TONE) < 15
        phone = voiced(phone_heard)
        assert phone.size >= 4000, f"the phone heard {phone.size} samples"
        assert abs(dominant_frequency(phone[-4000:]) - TRUNK_TONE) < 15


def voiced(pcm: NDArray[np.int16]) -> NDArray[np.int16]:
    """The 20 ms frames of *pcm* that carry sound (a phone records silence around the
    bridged audio: before its first packet, after our BYE)."""
    usable = pcm[: pcm.size - pcm.size % 160].reshape(-1, 160)
    loud = np.abs(usable.astype(np.int32)).max(axis=1) > 500
    frames: NDArray[np.int16] = usable[loud]
    return frames.reshape(-1)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    trunk_rtp = free_udp_range(8)
    trunk = SimTrunk([Behaviour(r"^1", ring=0.2, tone=TRUNK_TONE)],
                     rtp_ports=f"{trunk_rtp}-{trunk_rtp + 7}",
                     timers=TimerConfig(t1=0.1, t2=0.8, t4=1.0), tcp=False)  # fmt: skip
    address = await trunk.start()
    system = PhoneSystem(parse_config(config_text(tmp_path / "d.db", address, free_port(),
                                                  free_udp_range(8))))  # fmt: skip
    await system.start()
    rig = Rig(system, trunk, system.config.trunks[1].port)
    system.calls.on_event(rig.on_event)
    try:
        yield rig
    finally:
        await system.close()
        await trunk.close()
        assert system.endpoint.internal_errors == 0 and system.endpoint.handler_errors == 0
        assert system.media.active == 0 and system.calls.active == 0


def write_wav(path: Path, hz: float, seconds: float, rate: int = 8000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    samples = (6000 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def read_wav(path: Path) -> NDArray[np.int16]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2), path
        assert w.getframerate() == 8000, (path, w.getframerate())
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


# --- baresip ----------------------------------------------------------------------------


async def baresip_call(
    rig: Rig, tmp_path: Path, number: str, log: Program | None = None
) -> tuple[CallResult, NDArray[np.int16]]:
    """baresip registers as agent 101 and takes one call to *number*; the result and
    what baresip heard (its sndfile ``*-dec.wav``). *log*: another program's log to
    show when the call does not end."""
    baresip = program("baresip")
    sip_port, ctrl_port, rtp = free_port(), free_port(), free_udp_range(4)
    conf, rec = tmp_path / "baresip", tmp_path / "rec"
    conf.mkdir()
    rec.mkdir()
    assert rig.system.address is not None
    values = {
        "SIP_PORT": sip_port, "CTRL_PORT": ctrl_port, "RTP_LOW": rtp, "RTP_HIGH": rtp + 3,
        # aufile hangs up at the end of the WAV: longer than the call, so we hang up.
        "WAV": write_wav(tmp_path / "tone440.wav", PHONE_TONE, 8.0), "REC": rec,
        "USER": "101", "PASSWORD": "secret101", "REGISTRAR_PORT": rig.system.address[1],
        "REGINT": 60,
    }  # fmt: skip
    fill(DATA / "baresip" / "config_audio.in", conf / "config", values)
    fill(DATA / "baresip" / "accounts.in", conf / "accounts", values)
    prog = Program([baresip, "-f", str(conf), "-t", "30"], tmp_path / "baresip.log",
                   limit=35, cwd=tmp_path)  # fmt: skip
    async with running(prog):
        ctrl = await BaresipCtrl.connect(ctrl_port, log=prog.log)
        try:
            await wait_until(lambda: rig.system.registrar.is_registered("101"), 10,
                             "baresip's binding", prog.log)  # fmt: skip
            result = await rig.call(log or prog, number)
            await wait_until(lambda: bool(ctrl.events("CALL_CLOSED")), 5,
                             "baresip to see the call end", prog.log)  # fmt: skip
            assert ctrl.events("CALL_ESTABLISHED"), ctrl.messages
            await ctrl.command("quit")
        finally:
            await ctrl.close()
        assert await prog.wait(10) == 0, prog.log()  # after "quit": un-REGISTER, exit
    # sndfile: one WAV of what the phone sent (-enc) and one of what it heard (-dec).
    [heard] = rec.glob("*-dec.wav")
    return result, read_wav(heard)


async def test_baresip_agent_audio_both_ways(rig: Rig, tmp_path: Path) -> None:
    result, heard = await baresip_call(rig, tmp_path, "1000")
    rig.check(result, heard)


async def test_baresip_agent_sipp_trunk_echo(rig: Rig, tmp_path: Path) -> None:
    """Third-party programs at both ends: baresip as the agent, sipp as the trunk in
    RTP echo mode (``-rtp_echo``: it returns every RTP packet to its sender). baresip
    must hear its own 440 Hz back: agent -> relay -> trunk -> relay -> agent."""
    sipp = Program([
        program("sipp"), "-sf", "scenarios/uas_answer_echo.xml", "-rtp_echo",
        "-i", "127.0.0.1", "-p", str(rig.sipp_port), "-mi", "127.0.0.1",
        "-mp", str(free_udp_range(4)), "-cp", str(free_port()),
        "-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error",
    ], tmp_path / "sipp.log", limit=25, cwd=DATA)  # fmt: skip
    async with running(sipp):
        result, heard = await baresip_call(rig, tmp_path, "2000", log=sipp)
        assert await sipp.wait(10) == 0, sipp.log()
    assert (result.cause, result.sip_code, result.hangup_by) == ("NORMAL_CLEARING", 200,
                                                                 Side.DIALER)  # fmt: skip
    assert result.bridged and result.trunk == "sipp"
    echoed = voiced(heard)
    assert echoed.size >= 4000, f"baresip heard {echoed.size} samples back"
    assert abs(dominant_frequency(echoed[-4000:]) - PHONE_TONE) < 15


# --- pyVoIP -----------------------------------------------------------------------------


async def test_pyvoip_agent_audio_both_ways(rig: Rig, tmp_path: Path) -> None:
    python_module("pyVoIP")
    sip_port, rtp = free_port(), free_udp_range(10)
    recording = tmp_path / "heard.u8"
    assert rig.system.address is not None
    argv = [
        PYTHON, str(DATA / "tools" / "pyvoip_agent.py"), "--server", "127.0.0.1",
        "--port", str(rig.system.address[1]), "--user", "101", "--password", "secret101",
        "--sip-port", str(sip_port), "--rtp-low", str(rtp), "--rtp-high", str(rtp + 9),
        "--tone", str(PHONE_TONE), "--rec", str(recording), "--seconds", "25",
    ]  # fmt: skip
    prog = Program(argv, tmp_path / "pyvoip.log", limit=30, stdin_pipe=True)
    async with running(prog):
        await wait_until(lambda: rig.system.registrar.is_registered("101"), 10,
                         "pyVoIP's binding", prog.log)  # fmt: skip
        result = await rig.call(prog)
        await wait_until(lambda: "[pyvoip] call ended" in prog.log(), 5,
                         "pyVoIP to see the call end", prog.log)  # fmt: skip
        await prog.send_line("stop")  # it un-registers, then exits
        assert await prog.wait(15) == 0, prog.log()
    # 8-bit unsigned linear PCM -> PCM16.
    raw = np.frombuffer(recording.read_bytes(), dtype=np.uint8)
    rig.check(result, ((raw.astype(np.int16) - 128) * 256).astype(np.int16))

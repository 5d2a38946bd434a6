"""A bounded hostile-input soak of the whole running dialer, during real bridged calls.

The real ``PhoneSystem`` runs with a ``SimTrunk`` and agent 101's ``SimPhone`` on
127.0.0.1 (``soakrig``); their endpoints record every SIP datagram they exchange with the
dialer. While progressive calls are placed and bridged, a seeded generator sends, bounded
in count (``MAX_DATAGRAMS``) and in time (``STORM_SECONDS``):

* mutated copies of those real messages (byte flips, truncation, duplicated / removed /
  huge headers, Content-Length lies, Via without branch, CSeq method mismatch, changed
  tags, a live Call-ID with wrong tags, Max-Forwards 0, big bodies, NULs, invalid UTF-8,
  requests turned into responses and back) to the dialer's SIP port over UDP, and over
  TCP (whole, in pieces, partial then closed, connections opened and abandoned);
* in-dialog garbage in each live call's two dialogs (re-INVITE / UPDATE with broken SDP,
  BYE / INFO / UPDATE with a low or mismatched CSeq, responses to no transaction);
* RTP/RTCP garbage to the call's media ports (short, wrong version, huge, lying lengths,
  RTCP-shaped).

Then, on the real system: nothing raised out of the loop (the endpoint's
``internal_errors``/``handler_errors`` and the loop's exception handler), the dialer still
answers OPTIONS, the phone can still REGISTER, a fresh call still bridges with audio both
ways, every call placed ended with a cause, and the media ports, the call table, the UA's
transactions/dialogs and the TCP connections are all empty afterwards.

The seed is printed; ``SIPDIALER_SOAK_SEED`` replays another. Timing is real, so the
interleaving of storm and calls differs from run to run; the inputs do not.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from callrig import running_rig, sdp_answer
from soakinput import (
    dialog_side,
    in_dialog_garbage,
    media_ports,
    mutate,
    pick,
    readdress,
    rtp_garbage,
)
from soakrig import Attacker, SoakRig, Tally, open_attackers, soak_rig, tcp_attack, tcp_flood

from sipdialer.calls.events import CallResult, MemberAnswered
from sipdialer.media.analysis import dominant_frequency
from sipdialer.simulate.phones import PhoneBehaviour
from sipdialer.sip.message import Request, parse_message, response_for

SEED = int(os.environ.get("SIPDIALER_SOAK_SEED", "20261202"))
MAX_DATAGRAMS = 3000
"Every hostile UDP datagram (SIP and RTP) counts against this."
STORM_SECONDS = 12.0
MAX_TCP, TCP_WORKERS, FLOOD = 60, 4, 40
"""TCP connections the storm opens one by one (each closed within ~0.3 s), how many at a
time, and how many it opens at once and abandons (reset)."""
BATCH, PAUSE = 12, 0.04
"The UDP storm's pace: ~300 datagrams a second, far above any real peer's."


class Budget:
    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.datagrams = 0

    @property
    def left(self) -> bool:
        return self.datagrams < MAX_DATAGRAMS and time.monotonic() < self.deadline

    def take(self) -> bool:
        if not self.left:
            return False
        self.datagrams += 1
        return True


class Storm:
    """The hostile generators, sharing one RNG, one budget and one tally."""

    def __init__(self, soak: SoakRig, seed: int, attackers: list[Attacker]) -> None:
        self.soak, self.attackers = soak, attackers
        # One stream per generator: how the three interleave depends on timing, what each
        # one draws does not.
        self.udp_rng, self.tcp_rng, self.call_rng = (
            random.Random(f"{seed}:{name}") for name in ("udp", "tcp", "call")
        )
        self.tally = Tally()
        self.budget = Budget(time.monotonic() + STORM_SECONDS)
        self.branches = itertools.count(1)
        self.placed: list[str] = []
        self.hung: list[str] = []
        "Calls whose CallEnded never came (a hang)."

    def send(self, rng: random.Random, kind: str, data: bytes, to: tuple[str, int]) -> bool:
        if not self.budget.take():
            return False
        attacker = rng.choice(self.attackers)
        self.tally.request(kind, data)
        self.tally.sent[kind] += 1
        attacker.send(data, to)
        return True

    def live_call_ids(self) -> list[bytes]:
        wires = (self.soak.trunk_wire, self.soak.phone_wire)
        return [
            line.split(b":", 1)[1].strip()
            for wire in wires
            for m in wire.received[-6:]
            for line in m.split(b"\r\n")
            if line.startswith(b"Call-ID:")
        ]

    async def udp(self) -> None:
        """Mutated copies of the messages seen so far, to the SIP port, in batches."""
        target, rng = self.soak.sip, self.udp_rng
        while self.budget.left:
            templates = self.soak.templates()
            live = self.live_call_ids()
            for _ in range(BATCH):
                attacker = rng.choice(self.attackers)
                template = readdress(pick(rng, templates), attacker.address, next(self.branches))
                kind, data = mutate(rng, template, live)
                if not self.send(rng, kind, data[:65000], target):
                    return
            await asyncio.sleep(PAUSE)

    async def tcp(self) -> None:
        """``TCP_WORKERS`` at a time, ``MAX_TCP`` in all, within the storm's time; and
        once, ``FLOOD`` connections opened together and reset."""
        count = itertools.count()
        workers = [self._tcp_worker(count) for _ in range(TCP_WORKERS)]
        await asyncio.gather(*workers, tcp_flood(self.tcp_rng, self.soak.sip, FLOOD, self.tally))

    async def _tcp_worker(self, count: itertools.count[int]) -> None:
        while next(count) < MAX_TCP and time.monotonic() < self.budget.deadline:
            rng = self.tcp_rng
            attacker = rng.choice(self.attackers)
            template = readdress(
                pick(rng, self.soak.templates()), attacker.address, next(self.branches)
            )
            _, data = mutate(rng, template, self.live_call_ids())
            await tcp_attack(rng, self.soak.sip, data.replace(b"/UDP", b"/TCP"), self.tally)
            await asyncio.sleep(rng.uniform(0, 0.15))

    async def calls(self) -> None:
        """Bridged calls one after another (the sim trunk takes one at a time); each, once
        up, gets in-dialog and media garbage on both legs, then is hung up."""
        rig = self.soak.rig
        rig.phone.behaviour = PhoneBehaviour(answer_after=0.05)
        while self.budget.left:
            call_id = rig.start_call("1000")  # the trunk answers and waits for our BYE
            self.placed.append(call_id)
            for _ in range(150):
                if rig.of(call_id, MemberAnswered) or rig.ended[call_id].done():
                    break
                await asyncio.sleep(0.02)
            if not rig.ended[call_id].done():
                await self.attack_call()
            rig.system.calls.hangup(call_id)
            try:
                await asyncio.wait_for(asyncio.shield(rig.ended[call_id]), 8)
            except TimeoutError:
                self.hung.append(call_id)
                return

    async def attack_call(self) -> None:
        rng = self.call_rng
        sides = [
            (wire, dialog_side(wire.received, wire.sent))
            for wire in (self.soak.trunk_wire, self.soak.phone_wire)
        ]
        for _ in range(3):
            for wire, side in sides:
                if side is None:
                    continue
                attacker = rng.choice(self.attackers)
                for kind, data in in_dialog_garbage(
                    rng, side, attacker.address, lambda: next(self.branches)
                ):
                    self.send(rng, kind, data, self.soak.sip)
                for port in media_ports(wire.received, side.call_id.decode()):
                    for _ in range(6):
                        kind, data = rtp_garbage(rng)
                        self.send(rng, f"rtp_{kind}", data, ("127.0.0.1", port))
            await asyncio.sleep(0.3)


async def lag_monitor(stop: asyncio.Event, worst: list[float]) -> None:
    """The loop's worst lateness waking a 10 ms sleep: a hang or a slow parse shows here."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.01)
        worst[0] = max(worst[0], loop.time() - before - 0.01)


async def options_answer(address: tuple[str, int]) -> int:
    """An out-of-dialog OPTIONS from a fresh socket; the status of the answer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    request = (
        f"OPTIONS sip:{address[0]}:{address[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bK-after-soak\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:{address[0]}>\r\n"
        f"Call-ID: after-soak\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    try:
        sock.sendto(request, address)
        data = await asyncio.wait_for(loop.sock_recv(sock, 65536), 2)
    finally:
        sock.close()
    return int(data.split(b" ", 2)[1])


async def eventually(predicate: Any, seconds: float) -> bool:
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return bool(predicate())


async def test_hostile_soak_of_the_running_dialer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    print(f"\nsoak seed {SEED} (SIPDIALER_SOAK_SEED overrides)")
    try:
        async with soak_rig(tmp_path) as soak:
            await soak_and_check(soak, SEED)
            system = soak.system
    finally:
        loop.set_exception_handler(previous)
    # After close: nothing raised anywhere, nothing left behind.
    assert system.endpoint.internal_errors == 0 and system.endpoint.handler_errors == 0
    assert loop_errors == [], loop_errors
    # Every caught-and-logged failure (log.exception in a shell's safety net) is a bug too.
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert logged == [], [r.getMessage() for r in logged]
    assert system.media.active == 0 and system.media.ports.in_use == 0
    assert system.calls.active == 0


async def soak_and_check(soak: SoakRig, seed: int) -> None:
    rig, system = soak.rig, soak.system
    # A first clean call puts every message of a bridged call on the wire (templates).
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05, hangup_after=0.3)
    first = await rig.call("1000")
    assert first.bridged

    storm = Storm(soak, seed, await open_attackers(4, Tally()))
    for attacker in storm.attackers:
        attacker.tally = storm.tally
    stop, worst = asyncio.Event(), [0.0]
    monitor = asyncio.ensure_future(lag_monitor(stop, worst))
    started = time.monotonic()
    await asyncio.gather(storm.udp(), storm.tcp(), storm.calls())
    storm_seconds = time.monotonic() - started
    stop.set()
    await monitor
    await asyncio.sleep(0.3)  # the last answers in flight
    for attacker in storm.attackers:
        assert attacker.transport is not None
        attacker.transport.close()

    tally = storm.tally
    udp_sent = storm.budget.datagrams
    tcp_sent = sum(n for kind, n in tally.sent.items() if kind.startswith("tcp_"))
    print(
        f"storm: {udp_sent} UDP datagrams + {tcp_sent}"
        f" TCP connections in {storm_seconds:.1f} s; worst loop lag {worst[0] * 1000:.0f} ms"
    )
    print(f"sent by kind: {dict(sorted(tally.sent.items()))}")
    print(f"answers by status: {dict(sorted(tally.statuses.items()))}")
    dropped = tally.dropped()
    print(
        f"requests with a soak branch: {len(tally.kinds)}, answered "
        f"{len(tally.kinds) - dropped.total()}, dropped {dropped.total()}"
    )
    print(f"dropped by kind: {dict(sorted(dropped.items()))}")
    print(f"first answers by (kind, status): {dict(sorted(tally.answers.items()))}")
    media = system.media.stats()
    print(f"media totals: {media}")
    print(
        f"calls placed during the storm: {len(storm.placed)}; endpoint messages in: "
        f"{sum(v for k, v in system.endpoint.messages.items() if k[0] == 'in')}"
    )

    assert storm.hung == [], f"calls that never ended: {storm.hung}"
    assert udp_sent <= MAX_DATAGRAMS and storm_seconds < STORM_SECONDS + 10
    assert system.endpoint.internal_errors == 0 and system.endpoint.handler_errors == 0
    # The garbage was read, not ignored wholesale: malformed requests got 400s.
    assert tally.statuses[400] > 0 and len(tally.answered) > 0
    assert worst[0] < 1.0, f"the loop stalled {worst[0]:.2f} s"
    # The media garbage reached the relay and was refused there (too short, not version 2,
    # or from an address the leg is not latched to).
    assert media["dropped"] > 0 and media["foreign"] > 0

    # Every call placed ended, with a cause.
    results: list[CallResult] = [rig.ended[c].result() for c in storm.placed]
    assert storm.placed and all(r.cause for r in results), results
    print(f"storm calls: {[(r.cause, r.sip_code, r.hangup_by.name) for r in results]}")

    # Still serving: OPTIONS, REGISTER, and a fresh call bridged with audio both ways.
    assert await options_answer(soak.sip) == 200
    await rig.phone.register(300)
    assert system.registrar.is_registered("101")
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05, tone=440.0)
    call_id = rig.start_call("1001")  # the trunk sends 1000 Hz
    await rig.trunk.wait_until(
        lambda: (
            bool(rig.trunk.calls)
            and rig.trunk.calls[-1].answered_at is not None
            and rig.trunk.calls[-1].number == "1001"
        ),
        5,
    )
    await asyncio.sleep(0.9)
    system.calls.hangup(call_id)
    result = await asyncio.wait_for(rig.ended[call_id], 5)
    assert result.bridged and result.cause == "NORMAL_CLEARING"
    trunk_call, phone_call = rig.trunk.calls[-1], rig.phone.calls[-1]
    tail = int(8000 * 0.4)
    heard_by_trunk = np.asarray(trunk_call.received[-tail:])
    heard_by_phone = np.asarray(phone_call.received[-tail:])
    assert len(heard_by_trunk) == tail and len(heard_by_phone) == tail
    assert abs(dominant_frequency(heard_by_trunk) - 440.0) < 15
    assert abs(dominant_frequency(heard_by_phone) - 1000.0) < 15

    # No leak: ports, calls, the UA's transactions and dialogs, TCP connections drain
    # (the storm's server transactions linger for Timer J/H: 64*T1 = 1.28 s).
    assert system.media.active == 0 and system.media.ports.in_use == 0
    assert system.calls.active == 0
    ua = system.endpoint.ua

    def left() -> dict[str, int]:
        return {name: n for name, n in ua.state_size().items() if n}

    drained = await eventually(lambda: not left(), 5)
    print(f"UA state left: {ua.state_size()}")
    assert drained, str(left())
    tcp = system.endpoint._tcp
    assert tcp is not None
    assert await eventually(lambda: not tcp.connections, 3), list(tcp.connections)


# --- what the soak found, minimised ----------------------------------------------------


def respoof(data: bytes, header: bytes, old: bytes, new: bytes) -> bytes:
    """*data* with *old* replaced by *new* in its *header* line only."""
    lines = data.split(b"\r\n")
    return b"\r\n".join(
        line.replace(old, new) if line.startswith(header + b":") else line for line in lines
    )


class SpoofingTrunk(asyncio.DatagramProtocol):
    """Answers the first INVITE 180, then sends a copy of that 180 with one header changed
    (``spoof``: the soak's byte flip in the Call-ID, or another From tag; same Via branch,
    so it matches the INVITE's client transaction), then 200 a little later. 200 to BYE."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = False
        self.invite_call_id: str | None = None
        self.spoof: Callable[[bytes], bytes] = lambda data: data
        self.spoof_2xx = False
        "Spoof a copy of the 200 (sent after it) instead of one of the 180."
        self.byes: list[float] = []
        "When each BYE arrived (loop time)."
        self.bye_dialogs: list[tuple[str, str]] = []
        "Each BYE's Call-ID and To: the real dialog's (tag ``real``), or the spoof's."

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        message = parse_message(data)
        if not isinstance(message, Request):
            return
        send = self.transport.sendto
        if message.method == "INVITE" and not self.answered:
            self.answered = True
            self.invite_call_id = message.call_id
            port = self.transport.get_extra_info("sockname")[1]
            contact = [("Contact", f"<sip:spoof@127.0.0.1:{port}>")]
            ringing = response_for(message, 180, to_tag="real", headers=contact).to_bytes()
            send(ringing, addr)
            if not self.spoof_2xx:
                send(self.spoof(ringing), addr)
            ok = response_for(
                message,
                200,
                to_tag="real",
                body=sdp_answer(message),
                headers=[*contact, ("Content-Type", "application/sdp")],
            ).to_bytes()
            loop = asyncio.get_running_loop()
            loop.call_later(0.1, send, ok, addr)
            if self.spoof_2xx:
                loop.call_later(0.2, send, self.spoof(ok), addr)
        elif message.method == "BYE":
            self.byes.append(asyncio.get_running_loop().time())
            self.bye_dialogs.append((message.call_id, message.headers.get("To") or ""))
            send(response_for(message, 200).to_bytes(), addr)


SPOOFS = {
    "call-id-byte-flipped": lambda data: respoof(data, b"Call-ID", b"@127.0", b"@127.\x00"),
    "from-tag-changed": lambda data: respoof(data, b"From", b";tag=", b";tag=x"),
}


@pytest.mark.parametrize("spoof", SPOOFS, ids=list(SPOOFS))
async def test_a_spoofed_1xx_of_a_live_invite_leaves_no_dialog(tmp_path: Path, spoof: str) -> None:
    """Found by the soak (seed 8: a byte flip in the Call-ID of a copy of the trunk's 180),
    minimised. The call bridges and ends normally; the UA keeps one EARLY dialog forever."""
    async with running_rig(tmp_path, SpoofingTrunk, answer_after=0.05) as rig:
        cast(SpoofingTrunk, rig.racer).spoof = SPOOFS[spoof]
        call_id = rig.start_call("9600")
        await asyncio.sleep(0.5)
        rig.system.calls.hangup(call_id)
        result = await asyncio.wait_for(rig.ended[call_id], 5)
        assert result.bridged and result.cause == "NORMAL_CLEARING"
        ua = rig.system.endpoint.ua
        # Timer M (64*T1 = 1.28 s) ends the INVITE; every dialog of the call must be gone.
        assert await eventually(lambda: not any(ua.state_size().values()), 3), str(ua.state_size())


@pytest.mark.parametrize("spoof", SPOOFS, ids=list(SPOOFS))
async def test_a_spoofed_2xx_copy_does_not_hang_up_the_live_call(
    tmp_path: Path, spoof: str
) -> None:
    """The same input as above, on the 200 instead of the 180 (the INVITE's transaction
    passes every 2xx up during Timer M, RFC 6026): no BYE may reach the trunk before ours."""
    async with running_rig(tmp_path, SpoofingTrunk, answer_after=0.05) as rig:
        trunk = cast(SpoofingTrunk, rig.racer)
        trunk.spoof, trunk.spoof_2xx = SPOOFS[spoof], True
        call_id = rig.start_call("9600")
        await asyncio.sleep(0.8)
        assert trunk.invite_call_id is not None
        invite_call_id = trunk.invite_call_id
        hung_up_at = asyncio.get_running_loop().time()
        rig.system.calls.hangup(call_id)
        result = await asyncio.wait_for(rig.ended[call_id], 5)
        assert result.bridged
        assert trunk.byes and all(at >= hung_up_at for at in trunk.byes), (
            f"the trunk got a BYE {hung_up_at - trunk.byes[0]:.2f} s before we hung up, "
            f"for the dialog {trunk.bye_dialogs[0]} (the INVITE's Call-ID: {invite_call_id})"
        )

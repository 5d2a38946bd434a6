"""The rig of ``test_hostile_soak.py``: the real ``PhoneSystem`` with a ``SimTrunk`` and a
``SimPhone`` whose endpoints record every SIP datagram they exchange with the dialer (the
templates of the hostile input, ``soakinput``), the attacker's UDP sockets and TCP
connections, and the tally of what was sent and what came back.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import socket
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from callrig import BEHAVIOURS, TIMERS, RacingTrunk, Rig, config_text
from soakinput import at

from sipdialer.app import PhoneSystem
from sipdialer.config import parse_config
from sipdialer.simulate.phones import SimPhone
from sipdialer.simulate.trunk import SimTrunk
from sipdialer.sip.lockout import Lockout, LockoutConfig
from sipdialer.sip.peer import Peer
from sipdialer.transport.endpoint import SipEndpoint

# Own port ranges: other loopback tests (44000-44599 callrig) may run at the same time.
DIALER_PORTS, TRUNK_PORTS, PHONE_PORTS = "40000-40199", "40200-40399", "40400-40599"
BRANCH = re.compile(rb"z9hG4bK-soak-(\d+)")
STATUS = re.compile(rb"^SIP/2\.0 (\d{3}) ", re.MULTILINE)


@dataclass
class Wire:
    """The raw SIP datagrams one simulated party received from / sent to the dialer."""

    received: list[bytes] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)


def sniff(endpoint: SipEndpoint, wire: Wire) -> None:
    """Record what *endpoint* receives and sends; call before its ``start()`` (the UDP
    socket takes the receive callback when it opens)."""
    receive = endpoint._receive_udp
    take = endpoint.ua.data_to_send

    def recording(data: bytes, peer: Peer) -> None:
        wire.received.append(data)
        receive(data, peer)

    def taking() -> list[tuple[bytes, Peer]]:
        items = take()
        wire.sent.extend(data for data, peer in items if peer.transport == "UDP")
        return items

    endpoint._receive_udp = recording  # type: ignore[method-assign]
    endpoint.ua.data_to_send = taking  # type: ignore[method-assign]


@dataclass
class SoakRig:
    rig: Rig
    trunk_wire: Wire
    phone_wire: Wire

    @property
    def system(self) -> PhoneSystem:
        return self.rig.system

    @property
    def sip(self) -> tuple[str, int]:
        assert self.system.address is not None
        return self.system.address

    def templates(self) -> list[bytes]:
        """Every distinct SIP message seen on the wire so far, both directions."""
        seen = dict.fromkeys(
            self.trunk_wire.received
            + self.trunk_wire.sent
            + self.phone_wire.received
            + self.phone_wire.sent
        )
        return [m for m in seen if m.strip()]


@contextlib.asynccontextmanager
async def soak_rig(tmp_path: Path) -> AsyncIterator[SoakRig]:
    """The dialer with the sim trunk and agent 101's registered phone, both sniffed.
    The dead/redirector/racer trunks of callrig's configuration all point at one bound
    socket that never answers (their routes are not dialed here)."""
    trunk = SimTrunk(
        BEHAVIOURS,
        username="dialer",
        password="trunkpw",
        rtp_ports=TRUNK_PORTS,
        timers=TIMERS,
        tcp=False,
    )
    trunk_wire, phone_wire = Wire(), Wire()
    sniff(trunk.endpoint, trunk_wire)
    address = await trunk.start()
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    text = config_text(tmp_path / "d.db", address, port, port, port, 5.0)
    text = text.replace('rtp_ports = "44000-44199"', f'rtp_ports = "{DIALER_PORTS}"')
    system = PhoneSystem(parse_config(text))
    # The storm replays the phone's REGISTERs with mangled digests from 127.0.0.1, the
    # phone's own address: five failures would lock that IP out (403 before any digest
    # is parsed) and the rest of the storm would never reach the digest code. In the field
    # the attacker's address is the one locked; here the lockout is set out of reach.
    system.registrar.registrar.lockout = Lockout(LockoutConfig(max_failures=10**9))
    sip = await system.start()
    phone = SimPhone("101", "secret101", sip, rtp_ports=PHONE_PORTS, timers=TIMERS)
    sniff(phone.endpoint, phone_wire)
    await phone.start()
    rig = Rig(system, trunk, phone, cast(RacingTrunk, None))
    system.calls.on_event(rig.on_event)
    try:
        yield SoakRig(rig, trunk_wire, phone_wire)
    finally:
        await phone.close()
        await system.close()
        await trunk.close()
        dead.close()


# --- the attacker's sockets ---------------------------------------------------------------


@dataclass
class Tally:
    """What the storm sent and what came back."""

    sent: Counter[str] = field(default_factory=Counter)
    "Datagrams / TCP writes by kind (mutation, in-dialog request, rtp ...)."
    statuses: Counter[int] = field(default_factory=Counter)
    "Responses received by status code."
    answered: set[int] = field(default_factory=set)
    "The soak branch numbers some response named."
    kinds: dict[int, str] = field(default_factory=dict)
    "The kind of each request sent with a soak branch (each could be answered)."
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    "First answers by (kind of the request, status)."

    def request(self, kind: str, data: bytes) -> None:
        if not data.startswith(b"SIP/2.0") and (match := BRANCH.search(data)):
            self.kinds[int(match.group(1))] = kind

    def record(self, data: bytes) -> None:
        status = STATUS.match(data[:64])
        if status is not None:
            self.statuses[int(status.group(1))] += 1
        for match in BRANCH.finditer(data):
            n = int(match.group(1))
            if n not in self.answered and status is not None and n in self.kinds:
                self.answers[self.kinds[n], int(status.group(1))] += 1
            self.answered.add(n)

    def dropped(self) -> Counter[str]:
        """Requests no answer named, by kind."""
        return Counter(k for n, k in self.kinds.items() if n not in self.answered)


class Attacker(asyncio.DatagramProtocol):
    """One UDP socket of the storm; counts every response it receives."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.tally.record(data)

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def send(self, data: bytes, to: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, to)


async def open_attackers(n: int, tally: Tally) -> list[Attacker]:
    loop = asyncio.get_running_loop()
    out = []
    for _ in range(n):
        _, protocol = await loop.create_datagram_endpoint(
            lambda: Attacker(tally), local_addr=("127.0.0.1", 0)
        )
        out.append(protocol)
    return out


async def tcp_attack(
    rng: random.Random, target: tuple[str, int], data: bytes, tally: Tally
) -> None:
    """One TCP connection: the whole message, a partial frame, or nothing; then close."""
    how = rng.choice(("whole", "whole", "partial", "abandon", "split"))
    tally.sent[f"tcp_{how}"] += 1
    tally.request(f"tcp_{how}", data)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*target), 2)
    except (OSError, TimeoutError):
        tally.sent["tcp_connect_failed"] += 1
        return
    try:
        if how == "whole":
            writer.write(data)
        elif how == "partial":
            writer.write(data[: 1 + at(rng, len(data) - 1)])
        elif how == "split":  # the message in small pieces, as a slow peer would
            for offset in range(0, len(data), 97):
                writer.write(data[offset : offset + 97])
                await writer.drain()
                await asyncio.sleep(0)
        await writer.drain()
        with contextlib.suppress(TimeoutError, OSError):
            tally.record(await asyncio.wait_for(reader.read(65536), 0.3))
    except OSError:
        pass  # the dialer closed a stream it could not frame: that is allowed
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def tcp_flood(rng: random.Random, target: tuple[str, int], n: int, tally: Tally) -> None:
    """*n* connections at once, each silent or with half a start line, then all reset."""
    opened = []
    for _ in range(n):
        with contextlib.suppress(OSError, TimeoutError):
            opened.append(await asyncio.wait_for(asyncio.open_connection(*target), 2))
    tally.sent["tcp_flood"] += len(opened)
    for _, writer in opened:
        if rng.random() < 0.5:
            writer.write(
                rng.choice(
                    (b"INVITE sip:", b"SIP/2.0 2", b"\r\n", b"REGISTER sip:x SIP/2.0\r\nVia")
                )
            )
    await asyncio.sleep(0.2)
    for _, writer in opened:
        writer.transport.abort()  # RST, no FIN: the way a crashed peer leaves

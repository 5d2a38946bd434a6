"""The confirmation beep of a feature-code call, sent as RTP (RFC 3550) in G.711.

Two 100 ms bursts of 1 kHz with 100 ms between (``media.tones.CONFIRMATION``),
paced at 20 ms per packet from the port our SDP answer named. A later step can move
this onto ``media.player.FramePlayer`` and ``media.udp.play`` with the port pool.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import struct

from sipdialer.media.g711 import PCMA, PCMU
from sipdialer.media.tones import CONFIRMATION
from sipdialer.media.tones import frames as tone_frames

from .udp import is_ip_literal

BEEP_SECONDS = 0.3
"Length of ``tones.CONFIRMATION``: 100 ms on, 100 ms off, 100 ms on."
_SAMPLES = 160  # 20 ms at 8 kHz


def frames(payload_type: int) -> list[bytes]:
    """The beep as 20 ms G.711 frames (PCMU for PT 0, PCMA otherwise)."""
    return tone_frames(CONFIRMATION.pcm(), PCMU if payload_type == 0 else PCMA)


async def send_beep(
    host: str, port: int, payload_type: int, local: tuple[str, int] | None = None
) -> None:
    """Send the beep to host:port, paced in real time, from *local* (the address our
    SDP answer named, so symmetric-RTP phones see the expected source) or, when that
    is taken, from an ephemeral port."""
    if not is_ip_literal(host) or port == 0:
        return
    pt = payload_type if payload_type in (0, 8) else 0
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    wildcard = ("0.0.0.0" if family == socket.AF_INET else "::", 0)
    try:
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, family=family, local_addr=local or wildcard
        )
    except OSError:
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, family=family, local_addr=wildcard
        )
    try:
        ssrc = secrets.randbits(32)
        seq = secrets.randbits(16)
        timestamp = secrets.randbits(32)
        start = loop.time()
        for index, frame in enumerate(frames(pt)):
            marker = 0x80 if index == 0 else 0
            header = struct.pack("!BBHII", 0x80, marker | pt, (seq + index) & 0xFFFF,
                                 (timestamp + index * _SAMPLES) & 0xFFFFFFFF, ssrc)  # fmt: skip
            transport.sendto(header + frame, (host, port))
            await asyncio.sleep(max(0.0, start + (index + 1) * 0.02 - loop.time()))
    finally:
        transport.close()

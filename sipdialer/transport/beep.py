"""The confirmation beep of a feature-code call, sent as RTP (RFC 3550) in G.711.

Two 100 ms bursts of 1 kHz with 100 ms between, paced at 20 ms per packet. The
general media plane (relay, players, port pool) is its own package; this is the
smallest sender that lets a phone hear that its code was taken.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import socket
import struct

from .udp import is_ip_literal

BEEP_SECONDS = 0.3
_SAMPLES = 160  # 20 ms at 8 kHz


def _ulaw(sample: int) -> int:
    """ITU-T G.711 µ-law encoding of one 16-bit linear sample."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), clip) + bias
    exponent = 7
    for exp in range(7, -1, -1):
        if magnitude & (0x4000 >> (7 - exp)):
            exponent = exp
            break
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _alaw(sample: int) -> int:
    """ITU-T G.711 A-law encoding of one 16-bit linear sample."""
    sign = 0x00 if sample < 0 else 0x80
    magnitude = min(abs(sample), 32767) >> 3
    if magnitude < 32:
        code = magnitude >> 1
    else:
        exponent = magnitude.bit_length() - 5
        code = (exponent << 4) | ((magnitude >> exponent) & 0x0F)
    return (sign | code) ^ 0x55


def frames(payload_type: int) -> list[bytes]:
    """The beep as 20 ms G.711 frames (PCMU for PT 0, PCMA otherwise)."""
    encode = _ulaw if payload_type == 0 else _alaw
    silence = bytes([encode(0)]) * _SAMPLES
    out = []
    for index in range(int(BEEP_SECONDS / 0.02)):
        if (index // 5) % 2:  # 100 ms on, 100 ms off
            out.append(silence)
            continue
        start = index * _SAMPLES
        out.append(bytes(
            encode(int(8000 * math.sin(2 * math.pi * 1000 * (start + n) / 8000)))
            for n in range(_SAMPLES)
        ))  # fmt: skip
    return out


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

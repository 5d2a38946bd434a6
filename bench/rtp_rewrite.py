"""RTP relay hot path: header read/rewrite and PCMU→PCMA, against baselines in one run.

Prints operations per second for a 20 ms PCMU packet (172 octets):

- ``header_fields``: ``sipdialer.media.rtp.header_fields(data)`` (one ``struct`` call);
- ``rewrite``: ``rewrite(data, seq, ts, ssrc, pt)``, the new header plus the payload copy;
- ``read+rewrite``: both, what a relay does per forwarded packet;
- ``aiortc``: ``aiortc.rtp.RtpPacket.parse(data)``, set seq/ts/SSRC/PT, ``serialize()``:
  the same job through aiortc's packet objects (the baseline);

and for transcoding one 160-octet frame:

- ``translate``: ``frame.translate(ULAW_TO_ALAW)``;
- ``numpy``: ``TABLE[np.frombuffer(frame, np.uint8)].tobytes()`` (the baseline).

Usage: ``python bench/rtp_rewrite.py [--seconds 0.2]``. Each figure is the best of seven
timed runs of about ``--seconds`` each, taken round-robin over the rows; the whole bench
takes ~12 s.
"""

from __future__ import annotations

import argparse
import platform
import sys
import timeit

import numpy as np
from aiortc.rtp import RtpPacket as AiortcPacket

from sipdialer.media.g711 import ULAW_TO_ALAW
from sipdialer.media.rtp import build, header_fields, rewrite

PACKET = build(bytes(range(160)), 0, 4321, 160_000, 0x11223344, marker=False)
FRAME = PACKET[12:]
TABLE = np.frombuffer(ULAW_TO_ALAW, dtype=np.uint8)
# The statements timed, inlined in timeit's loop (no wrapper call counted).
READ = "header_fields(PACKET)"
REWRITE = "rewrite(PACKET, 1000, 2000, 0xCAFEBABE, 8)"
RELAY = (
    "_, _, seq, ts, _, _, _ = header_fields(PACKET); "
    "rewrite(PACKET, seq + 1000, ts + 2000, 0xCAFEBABE, 8)"
)
AIORTC = (
    "p = AiortcPacket.parse(PACKET); p.sequence_number = (p.sequence_number + 1000) & 0xFFFF; "
    "p.timestamp = (p.timestamp + 2000) & 0xFFFFFFFF; p.ssrc = 0xCAFEBABE; p.payload_type = 8; "
    "p.serialize()"
)
TRANSLATE = "FRAME.translate(ULAW_TO_ALAW)"
NUMPY = "TABLE[np.frombuffer(FRAME, dtype=np.uint8)].tobytes()"


def rates(statements: list[str], seconds: float, rounds: int = 7) -> list[float]:
    """Executions per second of each statement, inlined in timeit's loop (no wrapper call
    is counted). Runs of about *seconds* each go round-robin over the statements and the
    best of *rounds* is kept, so a slow spell of a shared VM hits every row alike."""
    timers = [timeit.Timer(statement, globals=globals()) for statement in statements]
    loops = []
    for timer in timers:
        count = 1000
        while timer.timeit(count) < seconds / 4:
            count *= 2
        loops.append(count * 4)
    best = [float("inf")] * len(timers)
    for _ in range(rounds):
        for index, timer in enumerate(timers):
            best[index] = min(best[index], timer.timeit(loops[index]))
    return [count / elapsed for count, elapsed in zip(loops, best, strict=True)]


def aiortc_relay() -> bytes:
    packet = AiortcPacket.parse(PACKET)
    packet.sequence_number = (packet.sequence_number + 1000) & 0xFFFF
    packet.timestamp = (packet.timestamp + 2000) & 0xFFFFFFFF
    packet.ssrc = 0xCAFEBABE
    packet.payload_type = 8
    return packet.serialize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.2, help="length of one timed run")
    args = parser.parse_args()
    _, _, seq, ts, _, _, _ = header_fields(PACKET)
    ours = rewrite(PACKET, seq + 1000, ts + 2000, 0xCAFEBABE, 8)
    assert ours == aiortc_relay()  # the same octets out
    assert FRAME.translate(ULAW_TO_ALAW) == TABLE[np.frombuffer(FRAME, dtype=np.uint8)].tobytes()

    print(f"rtp_rewrite: Python {platform.python_version()} on {platform.machine()}, one core")
    print(f"{'operation':<34}{'ops/s':>13}{'µs/op':>9}{'vs baseline':>13}")
    rows = [
        ("header_fields (172-octet PCMU)", READ, None),
        ("rewrite", REWRITE, None),
        ("read+rewrite (relay per packet)", RELAY, "aiortc"),
        ("aiortc parse+serialize (baseline)", AIORTC, None),
        ("PCMU→PCMA bytes.translate (160)", TRANSLATE, "numpy"),
        ("PCMU→PCMA numpy lookup (baseline)", NUMPY, None),
    ]
    measured = dict(
        zip([r[0] for r in rows], rates([r[1] for r in rows], args.seconds), strict=True)
    )
    baselines = {"aiortc": measured[rows[3][0]], "numpy": measured[rows[5][0]]}
    for name, _, baseline in rows:
        ops = measured[name]
        ratio = f"{ops / baselines[baseline]:>12.1f}x" if baseline else f"{'':>13}"
        print(f"{name:<34}{ops:>13,.0f}{1e6 / ops:>9.3f}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

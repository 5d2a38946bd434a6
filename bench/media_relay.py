"""Media relay under load: N bridged calls at 100 packets/s each, loss and added latency.

This process is the relay: one asyncio loop, ``sipdialer.media.bridge.MediaManager``, one
``CallMedia`` per call (two RTP/RTCP pairs, bridged, PCMU both sides unless
``--transcode`` makes the member side PCMA). A separate process (multiprocessing) is the
load generator, so the relay has a core to itself as far as the machine allows: it
plays every agent phone from one UDP socket and every trunk from another, sending one
20 ms packet per call per direction every 20 ms (50 packets/s each way, 100 relayed per
call), spread over the period in 2 ms slices. Each payload carries its send time
(``time.monotonic_ns``, the same clock in both processes) as 16 hex digits, which survive
PCMU↔PCMA transcoding exactly; the generator reads it back on arrival.

Per step (a number of calls), for ``--seconds``:

- ``loss``: packets sent by the generator and not received back, in % (target < 0.1 %);
- ``p50`` / ``p99``: generator send → generator receive, in ms, through the relay;
- ``relay CPU``: CPU time of this process over the step, in % of one core (over the
  sending time), and ``µs/pkt``: that CPU time per packet received back;
- ``generator CPU, lag``: the generator's own CPU, and how late its last packet left
  (above ~0.05 s the machine could not give it the time: the step is not clean).

The same-run baseline is a trivial forwarder in this process: the same socket pairs from
the same pool (``media.udp.open_rtp_pair``), read the same way (the loop's
``media.fastio.Poller``, a ``set_rtp_reader`` handler doing ``recvfrom_into`` then
``sendto`` of the buffer), sending each datagram to the other side unchanged: no
parsing, latching, rewriting or counters. ``ratio`` = relay µs/pkt over baseline µs/pkt
at the same N: the cost of the relay's per-packet work over the bare socket path. The
per-step line also gives the kernel's share of the CPU and the datagrams per wake-up.

Usage: ``python bench/media_relay.py [--calls 100,250,500,1000,1500] [--seconds 4]
[--transcode] [--ports 30000-39999]``. Each step takes ``--seconds`` plus about a second
of set-up and drain, twice (relay and baseline): ~60 s for the default ladder.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import multiprocessing as mp
import os
import platform
import select
import socket
import struct
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

# numpy's OpenBLAS threads busy-wait after a BLAS call and are counted in this process's
# CPU time: one thread, so the relay's CPU is the relay's.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from numpy.typing import NDArray

from sipdialer.media import g711
from sipdialer.media.bridge import CallMedia, MediaManager, StreamSpec
from sipdialer.media.fastio import poller_for
from sipdialer.media.ports import PortPool
from sipdialer.media.tones import RINGBACK_EU
from sipdialer.media.udp import RtpSocket, open_rtp_pair, raise_open_file_limit, set_buffers

HOST = "127.0.0.1"
PERIOD = 0.02
SLICES = 10
DRAIN = 0.5
"Seconds the generator keeps reading after its last send."


# -- the load generator (a separate process) ---------------------------------------------
#
# Python's sendto/recv cost a few µs each: 150,000 packets/s each way would need more
# than the two cores this machine has, and the generator, not the relay, would be
# measured. So the generator batches with Linux sendmmsg(2)/recvmmsg(2) through ctypes
# (hundreds of datagrams per system call) and handles payloads with numpy.

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
_libc.recvmmsg.argtypes = [
    ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p
]  # fmt: skip
MSG_DONTWAIT = 0x40
VLEN = 1024
"Datagrams per recvmmsg call."
SIZE = 172
"12-octet header + 160 octets: a 20 ms G.711 packet."


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
        ("_pad", ctypes.c_int),  # struct msghdr ends on an 8-octet boundary
        ("len", ctypes.c_uint),
    ]


class Batch:
    """``count`` datagram buffers of ``size`` octets (a numpy array) for *mmsg calls,
    each with its own destination when ``ports`` are given."""

    def __init__(self, count: int, size: int, ports: list[int] | None = None) -> None:
        self.buf = np.zeros((count, size), dtype=np.uint8)
        self.iov = (_Iovec * count)()
        self.msgs = (_Mmsghdr * count)()
        self.names = np.zeros((count, 16), dtype=np.uint8)
        base = self.buf.ctypes.data
        iov_base = ctypes.addressof(self.iov)
        for i in range(count):
            self.iov[i].base = base + i * size
            self.iov[i].len = size
            self.msgs[i].iov = iov_base + i * ctypes.sizeof(_Iovec)
            self.msgs[i].iovlen = 1
            if ports is not None:
                name = struct.pack("=H2s4s8x", socket.AF_INET, ports[i].to_bytes(2, "big"),
                                   socket.inet_aton(HOST))  # fmt: skip
                self.names[i] = np.frombuffer(name, dtype=np.uint8)
                self.msgs[i].name = self.names.ctypes.data + 16 * i
                self.msgs[i].namelen = 16

    def send(self, sock: socket.socket, lo: int, hi: int) -> int:
        """sendmmsg messages lo..hi-1 (a blocking socket: all of them go)."""
        done = lo
        while done < hi:
            address = ctypes.addressof(self.msgs) + done * ctypes.sizeof(_Mmsghdr)
            n = _libc.sendmmsg(sock.fileno(), address, hi - done, 0)
            if n < 0:
                raise OSError(ctypes.get_errno(), "sendmmsg")
            done += n
        return hi - lo

    def receive(self, sock: socket.socket) -> int:
        """recvmmsg without waiting: how many datagrams landed in buf[:n]."""
        n = _libc.recvmmsg(sock.fileno(), ctypes.addressof(self.msgs), len(self.msgs),
                           MSG_DONTWAIT, None)  # fmt: skip
        return max(int(n), 0)


_HEX = np.zeros(256, dtype=np.uint64)
_HEX[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint64)
_POW16 = np.array([16 ** (15 - k) for k in range(16)], dtype=np.uint64)


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    set_buffers(sock, 16 * 1024 * 1024)
    sock.bind((HOST, 0))
    return sock


def generator(conn: Connection) -> None:
    """Serve steps: receive (ports, seconds, transcode), run them, send back figures."""
    raise_open_file_limit()
    agent, member = _socket(), _socket()
    conn.send((agent.getsockname(), member.getsockname()))
    while True:
        job = conn.recv()
        if job is None:
            break
        ports, seconds, transcode = job
        conn.send(_run(agent, member, ports, seconds, transcode))
    agent.close()
    member.close()


def _run(
    agent: socket.socket,
    member: socket.socket,
    ports: list[tuple[int, int]],
    seconds: float,
    transcode: bool,
) -> tuple[int, int, float, float, float, float]:
    count = len(ports)
    member_pt = g711.PCMA if transcode else g711.PCMU
    out = {
        agent: Batch(count, SIZE, [a for a, _ in ports]),
        member: Batch(count, SIZE, [m for _, m in ports]),
    }
    for batch, pt in ((out[agent], g711.PCMU), (out[member], member_pt)):
        batch.buf[:, 0] = 0x80
        batch.buf[:, 1] = pt
        batch.buf[:, 8:12] = np.arange(count, dtype=">u4").view(np.uint8).reshape(-1, 4)
        batch.buf[:, 28:] = 0xFF
    inbox = Batch(VLEN, 32)  # only the header and the send time are read
    # What the agent side receives was sent by the member side and translated by the
    # relay; translating back gives the hex digits (they survive both ways, exactly).
    undo = {agent: g711.ULAW_TO_ALAW, member: g711.ALAW_TO_ULAW} if transcode else {}
    undo_tables = {s: np.frombuffer(t, dtype=np.uint8) for s, t in undo.items()}
    bounds = [count * k // SLICES for k in range(SLICES + 1)]
    ticks = round(seconds / PERIOD) * SLICES
    latencies: list[NDArray[np.float64]] = []
    sent = received = 0
    late = cpu = 0.0
    "Seconds the last slice went out after it was due: the generator could not keep pace."
    for sock in (agent, member):  # leftovers of the previous step are not this step's
        while inbox.receive(sock) > 0:
            pass
    start = time.monotonic()
    start_ns = time.monotonic_ns()
    cpu0 = time.process_time()
    tick = 0
    while True:
        now = time.monotonic()
        due = start + tick * PERIOD / SLICES
        if tick < ticks and now >= due:
            k = tick % SLICES
            seq = tick // SLICES
            lo, hi = bounds[k], bounds[k + 1]
            header = struct.pack("!HI", seq & 0xFFFF, seq * 160 & 0xFFFFFFFF)
            stamp = b"%016x" % time.monotonic_ns()
            for sock, batch in out.items():
                batch.buf[lo:hi, 2:8] = np.frombuffer(header, dtype=np.uint8)
                batch.buf[lo:hi, 12:28] = np.frombuffer(stamp, dtype=np.uint8)
                sent += batch.send(sock, lo, hi)
            tick += 1
            if tick == ticks:
                late = time.monotonic() - (start + (ticks - 1) * PERIOD / SLICES)
                cpu = time.process_time() - cpu0
        for sock in (agent, member):
            while (n := inbox.receive(sock)) > 0:
                got = time.monotonic_ns()
                digits = inbox.buf[:n, 12:28]
                if sock in undo_tables:
                    digits = undo_tables[sock][digits]
                stamps = (_HEX[digits] * _POW16).sum(axis=1).astype(np.int64)
                stamps = stamps[stamps >= start_ns]  # a late one of the previous step: not ours
                latencies.append((got - stamps) / 1e6)
                received += len(stamps)
        if tick >= ticks:
            if time.monotonic() >= start + seconds + DRAIN or received >= sent:
                break
            time.sleep(0.001)
        else:
            wait = start + tick * PERIOD / SLICES - time.monotonic()
            if wait > 0:
                select.select([agent, member], [], [], wait)
    if latencies:
        p50, p99 = np.percentile(np.concatenate(latencies), [50, 99]).tolist()
    else:
        p50 = p99 = float("nan")
    return sent, received, p50, p99, max(late, 0.0), 100.0 * cpu / (seconds + late)


# -- the relay side (this process) -------------------------------------------------------


async def open_relay(
    manager: MediaManager, calls: int, peers: tuple[tuple[str, int], tuple[str, int]], pcma: bool
) -> tuple[list[CallMedia], list[tuple[int, int]]]:
    opened = []
    for i in range(calls):
        call = await manager.open(f"bench-{i}", lambda _: None)
        call.set_agent(StreamSpec(peers[0][0], peers[0][1], g711.PCMU))
        call.set_member(StreamSpec(peers[1][0], peers[1][1], g711.PCMA if pcma else g711.PCMU))
        call.bridge()
        opened.append(call)
    return opened, [(c.agent_port, c.member_port) for c in opened]


async def open_baseline(
    pool: PortPool, calls: int, peers: tuple[tuple[str, int], tuple[str, int]]
) -> tuple[list[RtpSocket], list[tuple[int, int]]]:
    socks: list[RtpSocket] = []
    ports = []
    for _ in range(calls):
        agent_side = await open_rtp_pair(HOST, pool)
        member_side = await open_rtp_pair(HOST, pool)
        # The bare path: what arrives from one side leaves the other, as it is.
        agent_side.set_rtp_reader(_forward(agent_side, member_side, peers[1]))
        member_side.set_rtp_reader(_forward(member_side, agent_side, peers[0]))
        socks += [agent_side, member_side]
        ports.append((agent_side.pair.rtp, member_side.pair.rtp))
    return socks, ports


def _forward(
    inbound: RtpSocket, outbound: RtpSocket, to: tuple[str, int]
) -> Callable[[float], None]:
    # The same shape as media.bridge's per-direction reader, minus CallRelay.rtp_into.
    recv_into = inbound.rtp_socket.recvfrom_into
    sendto = outbound.rtp_socket.sendto
    buf = inbound.poller.buffer
    views = inbound.poller.views

    def read(now: float) -> None:
        try:
            n, _ = recv_into(buf)
        except OSError:
            return
        try:
            sendto(views[n], to)
        except OSError:
            outbound.dropped += 1

    return read


async def step(
    conn: Connection, ports: list[tuple[int, int]], seconds: float, transcode: bool
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    poller = poller_for(loop)
    await asyncio.sleep(0.2)  # let the loop settle after opening the sockets
    wakes0 = poller.wakes
    cpu0 = time.process_time()
    sys0 = os.times().system
    conn.send((ports, seconds, transcode))
    sent, received, p50, p99, late, gen_cpu = await loop.run_in_executor(None, conn.recv)
    cpu_seconds = time.process_time() - cpu0
    sys_seconds = os.times().system - sys0
    wakes = poller.wakes - wakes0
    return {
        "sys": 100.0 * sys_seconds / cpu_seconds if cpu_seconds else float("nan"),
        "per_wake": received / wakes if wakes else float("nan"),
        "sent": sent,
        "late": late,
        "loss": 100.0 * (sent - received) / sent if sent else 0.0,
        "p50": p50,
        "p99": p99,
        # over the sending time (the drain's idle tail costs ~nothing)
        "cpu": 100.0 * cpu_seconds / (seconds + late),
        "gen_cpu": gen_cpu,
        "us": 1e6 * cpu_seconds / received if received else float("nan"),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", default="100,250,500,1000,1500")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--transcode", action="store_true", help="member legs PCMA")
    parser.add_argument("--ports", default="30000-39999")
    args = parser.parse_args()
    ladder = [int(n) for n in args.calls.split(",")]
    limit = raise_open_file_limit()
    ctx = mp.get_context("spawn")
    conn, child = ctx.Pipe()
    gen = ctx.Process(target=generator, args=(child,), daemon=True)
    gen.start()
    peers = conn.recv()
    pool = PortPool.from_range(args.ports)
    manager = MediaManager(HOST, pool, media_timeout=30, ringback=RINGBACK_EU.pcm())
    print(
        f"Python {platform.python_version()}, {platform.machine()}, open-file limit {limit}, "
        f"{args.seconds:g} s per step, {'PCMU/PCMA' if args.transcode else 'PCMU/PCMU'}",
        flush=True,
    )
    rows = []
    try:
        for calls in ladder:
            lost0 = manager.stats()["rtp_lost"]
            opened, ports = await open_relay(manager, calls, peers, args.transcode)
            relay = await step(conn, ports, args.seconds, args.transcode)
            lost = manager.stats()["rtp_lost"] - lost0
            for call in opened:
                call.close()
            await asyncio.sleep(0.1)
            socks, ports = await open_baseline(pool, calls, peers)
            base = await step(conn, ports, args.seconds, False)
            for sock in socks:
                sock.close()
            await asyncio.sleep(0.1)
            rows.append((calls, relay, base))
            print(
                f"{calls:>5} calls  relay: loss {relay['loss']:.3f} % p50 {relay['p50']:.2f} ms "
                f"p99 {relay['p99']:.2f} ms cpu {relay['cpu']:.0f} % {relay['us']:.1f} µs/pkt "
                f"({relay['sys']:.0f} % kernel) "
                f"{relay['per_wake']:.0f}/wake  |  baseline: loss "
                f"{base['loss']:.3f} % p50 {base['p50']:.2f} p99 {base['p99']:.2f} cpu "
                f"{base['cpu']:.0f} % {base['us']:.1f} µs/pkt ({base['sys']:.0f} % kernel)  "
                f"(seq gaps seen by the relay: {lost}; generator lag "
                f"{relay['late']:.2f} / {base['late']:.2f} s)",
                flush=True,
            )
    finally:
        conn.send(None)
        gen.join(5)
        if gen.is_alive():
            gen.terminate()
    print()
    print("| calls | pkts/s | loss | p50 / p99 ms | relay CPU | µs/pkt | baseline loss "
          "| baseline p50 / p99 ms | baseline CPU | baseline µs/pkt | ratio | generator "
          "CPU, lag |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for calls, r, b in rows:
        print(
            f"| {calls:,} | {calls * 100:,} | {r['loss']:.3f} % | {r['p50']:.2f} / {r['p99']:.2f} "
            f"| {r['cpu']:.0f} % | {r['us']:.1f} | {b['loss']:.3f} % "
            f"| {b['p50']:.2f} / {b['p99']:.2f} | {b['cpu']:.0f} % | {b['us']:.1f} "
            f"| {r['us'] / b['us']:.2f}x | {r['gen_cpu']:.0f} %, {r['late']:.2f} s |"
        )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

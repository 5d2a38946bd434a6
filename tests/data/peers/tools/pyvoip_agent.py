#!/usr/bin/env python3
"""pyVoIP 1.6.8 "agent phone" that takes calls with audio: registers to SERVER:PORT with
digest, answers every incoming call, sends a tone (--tone Hz) and records what it hears
to --rec (raw 8-bit unsigned linear PCM at 8 kHz, pyVoIP's audio format), until the far
end hangs up. Exits after --seconds, or when a line (or EOF) arrives on stdin.

Adapted from shared/peers/tools/pyvoip_phone.py (peers notes: import pyVoIP.VoIP before
pyVoIP.SIP; it answers >= 1 s after its 180; it sends its SIP to the registrar's
address; write_audio/read_audio take 160 bytes = 20 ms). The tone is written with a
continuous phase, paced by the monotonic clock (one frame out and one in per 20 ms), so
it stays a clean sine across frames. It prints one line per call event, e.g.
``[pyvoip] call ended, recorded 16000 bytes``, which the test reads.

GPL: this runs as a separate process; the sipdialer package never imports pyVoIP.

Usage: python pyvoip_agent.py --server 127.0.0.1 --port 5070 --user 101 \
    --password secret101 --sip-port 5098 --tone 440 --rec heard.u8 --seconds 20
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
import warnings

warnings.simplefilter("ignore", DeprecationWarning)  # audioop on Python 3.11

import pyVoIP  # noqa: E402
from pyVoIP.VoIP import CallState, InvalidStateError, VoIPCall, VoIPPhone  # noqa: E402

FRAME = 160
"Octets (samples) per 20 ms at 8 kHz."


def tone_frames(hz: float, level: float = 60.0) -> list[bytes]:
    """One second of the tone as 8-bit unsigned frames (phase continuous across them
    when *hz* divides into whole cycles per second, as 440 and 1000 do)."""
    samples = bytes(int(128 + level * math.sin(2 * math.pi * hz * i / 8000)) for i in range(8000))
    return [samples[i : i + FRAME] for i in range(0, 8000, FRAME)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--my-ip", default="127.0.0.1")
    ap.add_argument("--sip-port", type=int, required=True)
    ap.add_argument("--rtp-low", type=int, default=10300)
    ap.add_argument("--rtp-high", type=int, default=10399)
    ap.add_argument("--tone", type=float, default=440.0)
    ap.add_argument("--rec", required=True)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--debug", action="store_true")
    a = ap.parse_args()
    pyVoIP.DEBUG = a.debug
    frames = tone_frames(a.tone)
    stop = threading.Event()
    end = time.monotonic() + a.seconds

    def on_call(call: VoIPCall) -> None:
        print(f"[pyvoip] incoming call, state={call.state}", flush=True)
        try:
            call.answer()
        except InvalidStateError as exc:
            print("[pyvoip] answer failed", exc, flush=True)
            return
        print("[pyvoip] answered", flush=True)
        got = sent = 0
        next_at = time.monotonic()
        with open(a.rec, "wb") as rec:
            while call.state == CallState.ANSWERED and time.monotonic() < end:
                # One frame out and one in per 20 ms tick: reading faster would record
                # pyVoIP's silence padding between the frames it received.
                call.write_audio(frames[sent % len(frames)])
                sent += 1
                data = call.read_audio(length=FRAME, blocking=False)
                rec.write(data)
                got += len(data)
                next_at += 0.02
                time.sleep(max(0.0, next_at - time.monotonic()))
        print(f"[pyvoip] call ended, state={call.state}, sent {sent} frames, "
              f"recorded {got} bytes", flush=True)  # fmt: skip

    def read_stdin() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    phone = VoIPPhone(
        a.server, a.port, a.user, a.password, myIP=a.my_ip, callCallback=on_call,
        sipPort=a.sip_port, rtpPortLow=a.rtp_low, rtpPortHigh=a.rtp_high,
    )  # fmt: skip
    phone.start()
    print("[pyvoip] started, status =", phone.get_status(), flush=True)
    last = None
    while time.monotonic() < end and not stop.is_set():
        status = phone.get_status()
        if status != last:
            print("[pyvoip] phone status:", status, flush=True)
            last = status
        stop.wait(0.1)
    phone.stop()
    print("[pyvoip] stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

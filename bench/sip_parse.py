"""SIP parse/serialise throughput: sipdialer's parser against pyVoIP's, in one run.

Prints messages per second for a realistic INVITE with SDP (~640 octets) and a 200 OK:

- ``parse``: ``parse_message(data)`` (lazy: the header section is split, typed values
  are not parsed yet);
- ``parse+route``: parse, then what the transaction layer and UA read from every
  message (top Via branch, CSeq, Call-ID, From and To tags);
- ``parse+serialise``: parse, then ``to_bytes()``;
- ``pyVoIP parse``: ``pyVoIP.SIP.SIPMessage(data)``. pyVoIP parses eagerly (every
  header, and the SDP body of the INVITE) and has no serialiser, so only its parse is
  measured; the ratio compares like with like: our ``parse`` over its parse.

Usage: ``python bench/sip_parse.py [--seconds 0.4]``. Each figure is the best of five
timed runs of about ``--seconds`` each, so the whole bench takes ~10-20 s.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings
from collections.abc import Callable
from functools import partial

from sipdialer.sip.message import parse_message


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


SDP = crlf("""v=0
o=dialer 2890844526 2890844526 IN IP4 192.0.2.10
s=sipdialer
c=IN IP4 192.0.2.10
t=0 0
m=audio 49170 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
""")
INVITE = (
    crlf(f"""INVITE sip:+15551234567@trunk.example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9a1c;rport
Max-Forwards: 70
From: "Dialer" <sip:dialer@192.0.2.10>;tag=9fxced76sl
To: <sip:+15551234567@trunk.example.com>
Call-ID: 3848276298220188511@192.0.2.10
CSeq: 1 INVITE
Contact: <sip:dialer@192.0.2.10:5060>
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS
Content-Type: application/sdp
Content-Length: {len(SDP)}

""")
    + SDP
)
OK = crlf("""SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9a1c;rport=5060;received=192.0.2.10
From: "Dialer" <sip:dialer@192.0.2.10>;tag=9fxced76sl
To: <sip:+15551234567@trunk.example.com>;tag=8321234356
Call-ID: 3848276298220188511@192.0.2.10
CSeq: 1 INVITE
Contact: <sip:+15551234567@198.51.100.7:5060>
Content-Length: 0

""")


def rate(func: Callable[[], object], seconds: float) -> float:
    """Calls per second: best of five runs of about *seconds* each (bounded loops)."""
    start = time.perf_counter()
    calls = 0
    while time.perf_counter() - start < seconds / 4:
        func()
        calls += 1
    loops = max(100, int(calls * 4))  # ~*seconds* per run
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(loops):
            func()
        best = min(best, time.perf_counter() - start)
    return loops / best


def load_pyvoip() -> Callable[[bytes], object] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyVoIP imports audioop, deprecated in 3.11
        try:
            import pyVoIP.VoIP  # noqa: F401  (pyVoIP.SIP alone hits a circular import)
            from pyVoIP.SIP import SIPMessage
        except ImportError:
            return None
    return SIPMessage


def route(data: bytes) -> object:
    message = parse_message(data)
    return message.top_via.branch, message.cseq, message.call_id, message.from_.tag, message.to.tag


def serialise(data: bytes) -> bytes:
    return parse_message(data).to_bytes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.4, help="length of one timed run")
    args = parser.parse_args()
    pyvoip = load_pyvoip()

    print(f"sip_parse: Python {platform.python_version()} on {platform.machine()}, one core")
    header = f"{'message':<18}{'octets':>7}{'parse/s':>10}{'parse+route/s':>15}"
    header += f"{'parse+serialise/s':>19}{'pyVoIP parse/s':>16}{'ours/pyVoIP':>13}"
    print(header)
    for name, data in (("INVITE with SDP", INVITE), ("200 OK", OK)):
        assert parse_message(data).to_bytes() == data
        ours = rate(partial(parse_message, data), args.seconds)
        routed = rate(partial(route, data), args.seconds)
        serialised = rate(partial(serialise, data), args.seconds)
        if pyvoip is not None:
            pyvoip(data)  # it must understand the message too
            theirs = rate(partial(pyvoip, data), args.seconds)
            theirs_text, ratio = f"{theirs:>16,.0f}", f"{ours / theirs:>12.1f}x"
        else:
            theirs_text, ratio = f"{'(not installed)':>16}", f"{'-':>13}"
        print(
            f"{name:<18}{len(data):>7}{ours:>10,.0f}{routed:>15,.0f}{serialised:>19,.0f}{theirs_text}{ratio}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""pyVoIP 1.6.8 "agent phone" that only registers: registers to SERVER:PORT with digest,
keeps refreshing, prints its status changes, and un-registers when a line (or EOF)
arrives on stdin or after --seconds, whichever comes first.

Adapted from shared/peers/tools/pyvoip_phone.py (the peers notes: import pyVoIP.VoIP
before pyVoIP.SIP; Expires is fixed at 120 s unless ``SIPClient.default_expires`` is
changed; it re-registers every ``default_expires - 5`` s whatever the 200 grants; the
un-REGISTER uses a new Call-ID; it never answers OPTIONS). ``--expires`` sets
``default_expires`` so a test sees refreshes within seconds.

Usage: python pyvoip_phone.py --server 127.0.0.1 --port 5070 --user 101 \
    --password secret101 --sip-port 5098 --expires 6 --seconds 20
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import warnings

warnings.simplefilter("ignore", DeprecationWarning)  # audioop on Python 3.11

import pyVoIP  # noqa: E402
from pyVoIP.VoIP import VoIPPhone  # noqa: E402  (VoIP before SIP: circular import)


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
    ap.add_argument("--expires", type=int, default=120)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--debug", action="store_true")
    a = ap.parse_args()
    pyVoIP.DEBUG = a.debug

    stop = threading.Event()

    def read_stdin() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    phone = VoIPPhone(
        a.server, a.port, a.user, a.password, myIP=a.my_ip, sipPort=a.sip_port,
        rtpPortLow=a.rtp_low, rtpPortHigh=a.rtp_high,
    )  # fmt: skip
    phone.sip.default_expires = a.expires
    phone.sip.register_timeout = 5
    phone.start()
    print("[pyvoip] started, status =", phone.get_status(), flush=True)
    end = time.monotonic() + a.seconds
    last = None
    while time.monotonic() < end and not stop.is_set():
        status = phone.get_status()
        if status != last:
            print("[pyvoip] phone status:", status, flush=True)
            last = status
        stop.wait(0.1)
    phone.stop()
    print("[pyvoip] stopped, status =", phone.get_status(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

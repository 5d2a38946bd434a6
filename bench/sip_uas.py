"""Calls per second the small UAS on this stack completes with zero failed calls.

sipp's built-in uac (INVITE, 100/180/200, ACK, BYE, 200) drives
``python -m sipdialer.simulate.uas`` (one process: one core) at rising rates, each
step bounded by a call count and a timeout. The same steps run against ``sipp -sn
uas`` as the same-run baseline (a C UAS: the ceiling of the load generator here).
Prints one line per step and the highest clean rate of each, and their ratio.

    python bench/sip_uas.py [--rates 250,500,1000,1500,2000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BUFF = "4194304"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def drive(port: int, rate: int, seconds: float, workdir: str) -> tuple[bool, str]:
    """One sipp uac run at *rate* calls/s for *seconds*; True when every call passed."""
    calls = int(rate * seconds)
    args = [
        "sipp", "-sn", "uac", f"127.0.0.1:{port}", "-i", "127.0.0.1", "-p", str(free_port()),
        "-r", str(rate), "-m", str(calls), "-l", str(max(rate * 2, 100)), "-d", "0",
        "-buff_size", BUFF, "-nostdin", "-timeout", f"{int(seconds) + 30}s", "-timeout_error",
        "-max_recv_loops", "10000", "-trace_stat", "-stf", os.path.join(workdir, "stat.csv"),
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(args, cwd=workdir, capture_output=True, text=True,
                          timeout=seconds + 60, stdin=subprocess.DEVNULL)  # fmt: skip
    elapsed = time.monotonic() - started
    summary, retrans = summarize(os.path.join(workdir, "stat.csv"))
    # Clean: every call passed, the UAS kept pace (no backlog stretching the run) and
    # retransmissions stayed under 1 % of the calls (a queue building up shows there).
    kept_pace = elapsed < seconds * 1.25 + 1.0
    clean = proc.returncode == 0 and kept_pace and retrans <= calls // 100
    return clean, f"{elapsed:5.1f}s {summary}"


def summarize(path: str) -> tuple[str, int]:
    """sipp's last statistics row as text, and its retransmission count."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line.strip().split(";") for line in handle if line.strip()]
    except OSError:
        return "no stats", 0
    if len(lines) < 2:
        return "no stats", 0
    row = dict(zip(lines[0], lines[-1], strict=False))
    retrans = row.get("Retransmissions(C)", "0")
    text = (
        f"ok={row.get('SuccessfulCall(C)', '?')} failed={row.get('FailedCall(C)', '?')} "
        f"retrans={retrans}"
    )
    return text, int(retrans) if retrans.isdigit() else 0


def start_ours(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sipdialer.simulate.uas", "--listen", f"127.0.0.1:{port}",
         "--duration", "900"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def start_sipp_uas(port: int, workdir: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-buff_size", BUFF,
         "-nostdin", "-timeout", "900s"], cwd=workdir,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def ladder(name: str, port: int, rates: list[int], seconds: float, workdir: str) -> int:
    best = 0
    for rate in rates:
        clean, detail = drive(port, rate, seconds, workdir)
        print(f"{name:10s} {rate:6d} calls/s  {'clean ' if clean else 'FAILED'} {detail}",
              flush=True)  # fmt: skip
        if not clean:
            break
        best = rate
        time.sleep(1.0)  # let Timer K/J/L state drain between steps
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="250,500,750,1000,1250,1500,2000,2500,3000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("sipp not found (apt-get install sip-tester)")
        return 1
    rates = [int(r) for r in args.rates.split(",")]
    with tempfile.TemporaryDirectory() as workdir:
        port = free_port()
        ours = start_ours(port)
        time.sleep(1.5)
        try:
            best_ours = ladder("sipdialer", port, rates, args.seconds, workdir)
        finally:
            ours.terminate()
            ours.wait(10)
        best_sipp = 0
        if args.baseline:
            port = free_port()
            theirs = start_sipp_uas(port, workdir)
            time.sleep(1.0)
            try:
                best_sipp = ladder("sipp-uas", port, rates, args.seconds, workdir)
            finally:
                theirs.terminate()
                theirs.wait(10)
    print(f"\nhighest clean rate: sipdialer UAS {best_ours} calls/s"
          + (f", sipp uas {best_sipp} calls/s (ratio {best_ours / best_sipp:.2f})"
             if best_sipp else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

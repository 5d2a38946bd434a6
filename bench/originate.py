"""Progressive calls per second through ``PhoneSystem.calls``, against sipp.

This process is the dialer: one asyncio loop, a ``PhoneSystem`` (registrar, call
service, media bridge) with ``--agents`` agents, and a tiny engine that does what the
real one orders for each call: ``originate`` (ring the agent) -> on AgentAnswered
``dial_member`` -> on MemberAnswered ``bridge`` -> on Bridged ``hangup`` at once (talk
~0): per call two INVITE dialogs (agent leg, member leg), a bridge of their RTP, and two
BYEs. sipp plays everyone else, in its own processes:

- the trunk: ``sipp -sn uas`` (100/180/200 at once, then waits for our BYE);
- the agents' phones: one answering ``sipp -sn uas`` on a Contact port that every
  agent registers (one registering sipp, ``agent_register_csv.xml`` with a CSV of the
  agents: digest, then it stays registered until stopped).

Every sipp gets ``-buff_size 4194304`` (peers/README.md: past a socket-buffer overflow,
retransmissions snowball), a ``-timeout`` and is stopped by its PID.

A step is a rate: ``rate x --seconds`` calls are started on a fixed schedule
(call i at t0 + i/rate), each with an idle agent (a call waits for one when all are
busy: that shows as a lag). A step is **clean** when every call ended NORMAL_CLEARING
after its bridge, hung up by us, and the step kept pace: its calls completed at >= 95 %
of the nominal rate (completed calls / time from the first start to the last end). The
ladder stops at the first unclean step or when the bench has run ``--budget`` seconds.
Printed per step: calls, failures (by cause), elapsed, the achieved rate, p50/p99 of
originate -> CallEnded, the CPU of this process.

Same-run baseline: sipp uac -> sipp uas (one INVITE dialog per call, C++ both sides) at
rising nominal rates with the call count of our best step. Such a step lasts a fraction
of a second, too short to judge pace, so its figure is the highest *achieved* rate
(sipp's own statistics: successful calls / its run time) among the steps with zero
failed calls; the ratio printed is our highest clean rate over it. A progressive call
is two dialogs, so per dialog the ratio is twice the printed one.

    python bench/originate.py [--rates 25,50,100,...] [--seconds 3] [--agents 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sipdialer.app import PhoneSystem
from sipdialer.calls.events import (
    AgentAnswered,
    Bridged,
    CallEnded,
    CallEvent,
    CallOrder,
    CallResult,
    MemberAnswered,
    Side,
)
from sipdialer.config import parse_config

BUFF = "4194304"
SCENARIOS = Path(__file__).resolve().parent.parent / "tests" / "data" / "peers" / "scenarios"
DEFAULT_RATES = "25,50,100,150,200,250,300,350,400,450,500,600,800,1000"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def sipp(
    args: list[str], workdir: str, limit: float, name: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A background sipp bounded by ``timeout -k`` and ``-timeout``; stopped by PID."""
    argv = ["timeout", "-k", "3", f"{limit:g}", "sipp", *args, "-nostdin", "-buff_size", BUFF,
            "-timeout", f"{limit:g}s", "-cp", str(free_port())]  # fmt: skip
    log = open(os.path.join(workdir, f"{name}.log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # timeout passes it on to sipp
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()


def config_text(db: str, trunk_port: int, agents: int, rtp_low: int) -> str:
    text = f"""
[sip]
listen = "127.0.0.1:0"
qualify_interval = 0
[media]
rtp_ports = "{rtp_low}-{rtp_low + 3999}"
[store]
url = "sqlite:///{db}"
[[trunks]]
name = "sipp"
address = "127.0.0.1:{trunk_port}"
cps = 1000
max_calls = 100000
[[routes]]
pattern = "^[0-9]+$"
trunk = "sipp"
"""
    for i in range(1, agents + 1):
        text += f'[[agents]]\nid = "a{i}"\npassword = "pw{i}"\n'
    return text


@dataclass
class Step:
    rate: int
    calls: int
    started: dict[str, float] = field(default_factory=dict)
    results: dict[str, CallResult] = field(default_factory=dict)
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class Engine:
    """The tiny engine: one idle agent per call, bridge at answer, hang up at bridge."""

    def __init__(self, system: PhoneSystem, agents: int) -> None:
        self.system = system
        self.idle = [f"a{i}" for i in range(agents, 0, -1)]
        self.agent_of: dict[str, str] = {}
        self.freed = asyncio.Event()
        self.step: Step | None = None
        self.ended_at: dict[str, float] = {}
        system.calls.on_event(self.on_event)

    def on_event(self, event: CallEvent) -> None:
        calls = self.system.calls
        if isinstance(event, AgentAnswered):
            calls.dial_member(event.call_id)
        elif isinstance(event, MemberAnswered):
            calls.bridge(event.call_id)
        elif isinstance(event, Bridged):
            calls.hangup(event.call_id)
        elif isinstance(event, CallEnded):
            self.idle.append(self.agent_of.pop(event.call_id))
            self.freed.set()
            step = self.step
            if step is not None and event.call_id in step.started:
                step.results[event.call_id] = event.result
                self.ended_at[event.call_id] = time.monotonic()
                if len(step.results) == step.calls:
                    step.finished.set()

    async def run_step(self, rate: int, seconds: float, serial: int) -> tuple[bool, str, float]:
        step = Step(rate, int(rate * seconds))
        self.step, self.ended_at = step, {}
        cpu0, t0 = cpu_seconds(), time.monotonic()
        for i in range(step.calls):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            while not self.idle:
                self.freed.clear()
                await self.freed.wait()
            call_id = f"s{serial}-{i}"
            agent = self.idle.pop()
            self.agent_of[call_id] = agent
            step.started[call_id] = time.monotonic()
            order = CallOrder(call_id, "bench", str(i), "Bench", f"1{i:06d}", agent,
                              agent_timeout=10.0)  # fmt: skip
            self.system.calls.originate(order)
        nominal = step.calls / rate
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(step.finished.wait(), nominal * 1.25 + 15)
        elapsed = (max(self.ended_at.values()) if self.ended_at else time.monotonic()) - t0
        cpu = cpu_seconds() - cpu0
        failures: Counter[str] = Counter()
        for result in step.results.values():
            if not (result.cause == "NORMAL_CLEARING" and result.bridged
                    and result.hangup_by is Side.DIALER):  # fmt: skip
                failures[f"{result.cause}/{result.sip_code}"] += 1
        missing = step.calls - len(step.results)
        if missing:
            failures["unfinished"] += missing
        durations = sorted(self.ended_at[c] - step.started[c] for c in self.ended_at)
        p50 = statistics.median(durations) * 1000 if durations else 0.0
        p99 = durations[int(len(durations) * 0.99) - 1] * 1000 if durations else 0.0
        achieved = len(step.results) / elapsed if elapsed > 0 else 0.0
        # Kept pace: the calls were started *and ended* at >= 95 % of the nominal rate
        # (a dialer that lags queues its answered agents, which is the failure here).
        clean = not failures and achieved >= 0.95 * rate
        fail_text = ",".join(f"{k}x{v}" for k, v in failures.items()) or "0"
        detail = (f"calls={step.calls} failed={fail_text} elapsed={elapsed:5.2f}s "
                  f"achieved={achieved:6.1f}/s p50={p50:6.1f}ms p99={p99:7.1f}ms "
                  f"cpu={100 * cpu / max(elapsed, 1e-9):3.0f}%")  # fmt: skip
        self.step = None
        return clean, detail, achieved


async def wait_registered(system: PhoneSystem, agents: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(system.registrar.is_registered(f"a{i}") for i in range(1, agents + 1)):
        if time.monotonic() > deadline:
            done = sum(system.registrar.is_registered(f"a{i}") for i in range(1, agents + 1))
            raise SystemExit(f"only {done}/{agents} agents registered in {timeout} s")
        await asyncio.sleep(0.1)


async def run_ours(args: argparse.Namespace, workdir: str) -> tuple[int, int]:
    """The ladder through PhoneSystem.calls; (highest clean rate, its call count)."""
    trunk_port, contact_port = free_port(), free_port()
    text = config_text(os.path.join(workdir, "bench.db"), trunk_port, args.agents, args.rtp_low)
    system = PhoneSystem(parse_config(text))
    host, port = await system.start()
    csv = os.path.join(workdir, "agents.csv")
    with open(csv, "w", encoding="utf-8") as handle:
        handle.write("SEQUENTIAL\n")
        for i in range(1, args.agents + 1):
            handle.write(f"a{i};[authentication username=a{i} password=pw{i}]\n")
    limit = args.budget + 60
    uas = ["-sn", "uas", "-i", "127.0.0.1", "-mi", "127.0.0.1"]
    register = [
        "-sf", str(SCENARIOS / "agent_register_csv.xml"), "-inf", csv, f"{host}:{port}",
        "-i", "127.0.0.1", "-p", str(free_port()), "-key", "contact_port", str(contact_port),
        "-key", "expires", "3600", "-d", f"{int(limit * 1000)}", "-m", str(args.agents),
        "-r", "200", "-l", str(args.agents),
    ]  # fmt: skip
    best, best_calls, bench_start = 0, 0, time.monotonic()
    try:
        with (
            sipp([*uas, "-p", str(trunk_port), "-mp", str(free_port())], workdir, limit,
                 "trunk") as trunk,
            sipp([*uas, "-p", str(contact_port), "-mp", str(free_port())], workdir, limit,
                 "agents") as phones,
            sipp(register, workdir, limit, "register"),
        ):  # fmt: skip
            await wait_registered(system, args.agents, 20)
            engine = Engine(system, args.agents)
            for serial, rate in enumerate(int(r) for r in args.rates.split(",")):
                if time.monotonic() - bench_start > args.budget:
                    print(f"(budget of {args.budget:g} s reached: ladder stopped)")
                    break
                clean, detail, _ = await engine.run_step(rate, args.seconds, serial)
                print(f"sipdialer {rate:5d} calls/s  {'clean ' if clean else 'FAILED'} {detail}",
                      flush=True)  # fmt: skip
                if not clean:
                    break
                best, best_calls = rate, int(rate * args.seconds)
                await asyncio.sleep(0.5)
            assert trunk.poll() is None and phones.poll() is None, "a sipp peer died"
    finally:
        await system.close()
    errors = system.endpoint.internal_errors + system.endpoint.handler_errors
    if errors:
        print(f"endpoint errors: internal={system.endpoint.internal_errors} "
              f"handler={system.endpoint.handler_errors}")  # fmt: skip
    return best, best_calls


def stat_row(path: str) -> tuple[int, int, int, float]:
    """sipp's last statistics row: successful, failed, retransmissions, elapsed s."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line.strip().split(";") for line in handle if line.strip()]
    except OSError:
        return 0, 0, 0, 0.0
    if len(lines) < 2:
        return 0, 0, 0, 0.0
    row = dict(zip(lines[0], lines[-1], strict=False))
    # ElapsedTime is whole seconds; the start and current times end with an epoch.
    try:
        elapsed = float(row["CurrentTime"].split()[-1]) - float(row["StartTime"].split()[-1])
    except (KeyError, IndexError, ValueError):
        elapsed = 0.0

    def count(name: str) -> int:
        value = row.get(name, "0")
        return int(value) if value.isdigit() else 0

    return (count("SuccessfulCall(C)"), count("FailedCall(C)"), count("Retransmissions(C)"),
            elapsed)  # fmt: skip


def run_baseline(rates: list[int], calls: int, workdir: str) -> float:
    """sipp uac -> sipp uas with *calls* calls per step; the highest achieved rate of
    the steps without a failed call."""
    best = 0.0
    port = free_port()
    with sipp(["-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-mp", str(free_port())],
              workdir, 120, "baseline_uas"):  # fmt: skip
        time.sleep(0.5)
        for rate in rates:
            stat = os.path.join(workdir, f"baseline_{rate}.csv")
            args = [
                "timeout", "-k", "3", "60", "sipp", "-sn", "uac", f"127.0.0.1:{port}",
                "-i", "127.0.0.1", "-p", str(free_port()), "-cp", str(free_port()),
                "-r", str(rate), "-m", str(calls), "-l", str(max(rate * 2, 100)), "-d", "0",
                "-buff_size", BUFF, "-nostdin", "-timeout", "50s", "-timeout_error",
                "-max_recv_loops", "10000", "-trace_stat", "-stf", stat,
            ]  # fmt: skip
            proc = subprocess.run(args, cwd=workdir, capture_output=True, timeout=70,
                                  stdin=subprocess.DEVNULL)  # fmt: skip
            ok, failed, retrans, sipp_elapsed = stat_row(stat)
            clean = proc.returncode == 0 and failed == 0 and ok == calls
            achieved = ok / sipp_elapsed if sipp_elapsed > 0 else 0.0
            print(
                f"sipp-sipp {rate:5d} calls/s  {'clean ' if clean else 'FAILED'} "
                f"calls={calls} ok={ok} failed={failed} retrans={retrans} "
                f"elapsed={sipp_elapsed:5.2f}s achieved={achieved:7.1f}/s",
                flush=True,
            )
            if not clean:
                break
            best = max(best, achieved)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default=DEFAULT_RATES)
    parser.add_argument("--seconds", type=float, default=3.0, help="per step (<= 10)")
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument(
        "--budget", type=float, default=75.0, help="stop the ladder after this many seconds"
    )
    parser.add_argument("--rtp-low", type=int, default=46000)
    parser.add_argument("--baseline-rates", default="1000,2000,4000,8000,16000,24000,32000")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("sipp not found (apt-get install sip-tester)")
        return 1
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as workdir:
        best, calls = asyncio.run(run_ours(args, workdir))
        if not best:
            print("\nno clean step")
            return 1
        base_rates = [int(r) for r in args.baseline_rates.split(",")]
        base = run_baseline(base_rates, calls, workdir)
    ratio = f" (ratio {best / base:.3f}; per SIP dialog {2 * best / base:.3f})" if base else ""
    print(
        f"\nhighest clean rate: sipdialer {best} progressive calls/s (2 dialogs each); "
        f"sipp uac->uas achieved {base:.0f} calls/s at {calls} calls{ratio}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``sipdialer trunk-sim``: run the simulated trunk until SIGINT/SIGTERM (or a duration).

The command line's ``--behave`` rows (``behaviour.parse_behaviour``) are tried before
the demo's ``DEFAULT_BEHAVIOURS`` (``--no-defaults`` drops those). Output on stdout, one
line each: the bound address once listening, one line per ended call (``trunk.describe``),
and a summary when stopping. Exit status 0, or 2 when the address cannot be bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from .behaviour import DEFAULT_BEHAVIOURS, Behaviour
from .sim_uas import SimCall
from .trunk import SimTrunk, describe


async def serve(
    host: str,
    port: int,
    behaviours: Sequence[Behaviour],
    *,
    username: str | None = None,
    password: str | None = None,
    rtp_ports: str = "40000-40999",
    duration: float | None = None,
) -> int:
    trunk = SimTrunk(behaviours, host=host, port=port, username=username, password=password,
                     rtp_ports=rtp_ports)  # fmt: skip
    trunk.on_call_ended = _print_call
    try:
        bound = await trunk.start()
    except OSError as exc:
        print(f"trunk-sim: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        await trunk.endpoint.close()
        return 2
    print(f"trunk-sim listening on {bound[0]}:{bound[1]} (UDP and TCP)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
    finally:
        await trunk.close()
    answered = sum(c.answered_at is not None for c in trunk.calls)
    print(f"trunk-sim stopped: calls={len(trunk.calls)} answered={answered} "
          f"challenges={trunk.challenges} registrations={trunk.registrations}",
          flush=True)  # fmt: skip
    return 0


def _print_call(call: SimCall) -> None:
    print(describe(call), flush=True)


def run(
    listen: str,
    behaviours: Sequence[Behaviour],
    *,
    defaults: bool = True,
    username: str | None = None,
    password: str | None = None,
    rtp_ports: str = "40000-40999",
    duration: float | None = None,
) -> int:
    """The command's body: ``listen`` is HOST:PORT."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit():
        print(f"trunk-sim: --listen wants HOST:PORT, not {listen!r}", file=sys.stderr)
        return 2
    table = (*behaviours, *(DEFAULT_BEHAVIOURS if defaults else ()))
    coroutine = serve(host.strip("[]"), int(port_text), table, username=username,
                      password=password, rtp_ports=rtp_ports, duration=duration)  # fmt: skip
    return asyncio.run(coroutine)

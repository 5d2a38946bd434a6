"""Builds the running dialer from its configuration and runs it in one event loop.

For now this is the SIP endpoint on ``[sip] listen`` (UDP and TCP): it answers
OPTIONS and refuses what it does not serve yet. Later issues attach the registrar,
the calls layer, the engine and the API to the same loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from sipdialer.config import Config
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.ua import UaConfig
from sipdialer.transport.endpoint import SipEndpoint

log = logging.getLogger("sipdialer")


def ua_config(config: Config) -> UaConfig:
    sip = config.sip
    timers = TimerConfig(t1=sip.t1, t2=sip.t2, t4=sip.t4)
    host = sip.public_host
    if host in ("0.0.0.0", "::", ""):
        # Via/Contact need a routable address; without public_address we can only
        # guess. Loopback keeps a single-machine setup working and is logged.
        log.warning("[sip] public_address is empty and listen is a wildcard: using 127.0.0.1")
        host = "127.0.0.1"
    return UaConfig(host=host, port=sip.public_port, timers=timers)


async def serve(config: Config, stop: asyncio.Event | None = None) -> int:
    """Run until *stop* is set or SIGINT/SIGTERM arrives; then close cleanly."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    endpoint = SipEndpoint(ua_config(config))
    host, port = await endpoint.start(config.sip.listen_host, config.sip.listen_port)
    log.info("SIP listening on %s:%d (UDP and TCP)", host, port)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await endpoint.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    return 0


def run(config: Config) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return asyncio.run(serve(config))

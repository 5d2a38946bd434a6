"""Builds the running dialer from its configuration and runs it in one event loop.

``PhoneSystem`` is what exists so far: the SIP endpoint on ``[sip] listen`` (UDP and
TCP), the registrar of the configured agents' phones (bindings in ``[store] url``),
the agents' state machines (registered or not, status), the feature codes a phone
dials to set its agent's status, the media bridge (``[media]``: RTP ports, media
timeout, ringback, recordings) and the call service that runs progressive calls over
them (``transport/calls.py``). Closing hangs up live calls with SYSTEM_SHUTDOWN.

``serve()`` runs a ``PhoneSystem`` and, on it, the dialer (``dialer/runner.py``:
``DialerRunner``, the engine with the store), plus any ``extra`` tasks that take the
started runner (the REST API, a demo's driver) in the same event loop, until
SIGINT/SIGTERM; then it closes them in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from sipdialer.config import Config
from sipdialer.dialer.agents import Agents, AgentSettings
from sipdialer.dialer.feature_codes import FeatureCodeMap
from sipdialer.media.bridge import MediaManager
from sipdialer.media.ports import PortPool
from sipdialer.media.tones import ringback
from sipdialer.sip.bindings import BindingAdded, BindingExpired, BindingRemoved, RegistrarEvent
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.ua import UaConfig
from sipdialer.store.bindings import BindingStore
from sipdialer.transport.calls import CallService
from sipdialer.transport.endpoint import SipEndpoint
from sipdialer.transport.feature_calls import FeatureCallService
from sipdialer.transport.registrar import RegistrarService, build_registrar
from sipdialer.transport.trunk_register import TrunkRegistration

if TYPE_CHECKING:
    from sipdialer.dialer.runner import DialerRunner

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


class PhoneSystem:
    """The endpoint, the registrar, the agents, the feature codes, the media bridge and
    the call service, wired together."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.endpoint = SipEndpoint(ua_config(config))
        self.store = BindingStore(config.store.url)
        self.registrar = RegistrarService(
            self.endpoint, build_registrar(config.sip, config.agents), self.store
        )
        self.agents = Agents.from_settings(AgentSettings.from_config(a) for a in config.agents)
        media = config.media
        ports = PortPool.from_range(media.rtp_ports)
        "One pool for bridged calls and feature-call beeps, so they never share a port."
        self.features = FeatureCallService(
            self.endpoint, self.registrar, self.agents,
            FeatureCodeMap.from_config(config.sip.feature_codes), config.media, ports,
        )  # fmt: skip
        self.media = MediaManager(
            self.endpoint.ua.config.host, ports,
            media_timeout=media.media_timeout, ringback=ringback(media.ringback),
            recordings_dir=media.recordings_dir or None,
        )  # fmt: skip
        self.calls = CallService(self.endpoint, self.registrar, self.agents, config, self.media)
        # In-dialog INVITEs come to the endpoint's one INVITE handler (the feature calls');
        # those of progressive calls belong to the call service.
        self.features.in_dialog = self.calls.in_dialog.on_request
        self.trunk_registrations = [
            TrunkRegistration(self.endpoint, trunk) for trunk in config.trunks if trunk.register_
        ]
        "Trunks with ``register = true``: their accounts are kept registered with the provider."
        self.registrar.on_event(self._on_binding)
        self.address: tuple[str, int] | None = None

    async def start(self) -> tuple[str, int]:
        sip = self.config.sip
        self.address = await self.endpoint.start(sip.listen_host, sip.listen_port)
        self.registrar.start()
        now = self.endpoint.now
        for agent in self.agents:
            agent.set_registered(now, self.registrar.is_registered(agent.id))
        for registration in self.trunk_registrations:
            await registration.start()
        log.info("SIP listening on %s:%d (UDP and TCP)", *self.address)
        return self.address

    async def close(self) -> None:
        await self.calls.close()
        for registration in self.trunk_registrations:
            await registration.close()
        await self.media.close()
        await self.features.close()
        self.registrar.close()
        await self.endpoint.close()
        self.store.close()

    def _on_binding(self, event: RegistrarEvent) -> None:
        if not isinstance(event, BindingAdded | BindingRemoved | BindingExpired):
            return
        agent_id = event.binding.aor
        if agent_id not in self.agents:
            return
        agent = self.agents[agent_id]
        registered = self.registrar.is_registered(agent_id)
        if agent.registered != registered:
            agent.set_registered(self.endpoint.now, registered)
            log.info("agent %s %s", agent_id, "registered" if registered else "unregistered")


Extra = Callable[["DialerRunner"], Awaitable[None]]
"""A task to run next to the dialer (the REST API, a demo's driver): it gets the started
runner and runs until it returns (which stops the dialer) or is cancelled at shutdown."""


async def serve(
    config: Config,
    stop: asyncio.Event | None = None,
    extra: Sequence[Extra] = (),
    *,
    on_started: Callable[[DialerRunner], None] | None = None,
    node: str | None = None,
) -> int:
    """Run the phone system and the dialer until *stop* is set or SIGINT/SIGTERM arrives.

    Order: the phone system starts (SIP, registrar, media), then the runner (store, sync,
    crash recovery, campaigns), then each of ``extra`` as a task with the runner; at the end
    the ``extra`` tasks are cancelled, the runner closes (no new calls, live calls hung up
    and judged), then the phone system. ``on_started(runner)`` is called once the runner is
    started (tests, the demo). ``node``: the lease owner's name (default
    ``$SIPDIALER_NODE``, else ``hostname:listen``; see ``dialer/runner.py``). An ``extra``
    that returns stops the dialer (a demo's driver, when its campaign is done); one that
    fails, or a store failure in the runner (``runner.failed``), makes it exit 1.
    """
    from sipdialer.dialer.runner import DialerRunner  # late: the store (sqlalchemy)
    from sipdialer.store.sync import SyncError

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    system = PhoneSystem(config)
    await system.start()
    runner = DialerRunner(config, system, node=node)
    tasks: list[asyncio.Task[None]] = []
    status = 0
    try:
        try:
            await runner.start()
        except SyncError as exc:  # the file and the store disagree: say so, exit 1
            log.error("cannot start the dialer: %s", exc)
            return 1
        # What exists now (modules, config, pools) lives as long as the process: keep it out
        # of the full collections, which otherwise stall the loop ~100 ms under a big import.
        gc.collect()
        gc.freeze()
        if on_started is not None:
            on_started(runner)
        tasks = [asyncio.ensure_future(task(runner)) for task in extra]
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(runner.failed.wait())]
        done, _ = await asyncio.wait([*waiters, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        status = 1 if runner.failed.is_set() else 0
        for task in done:
            if task not in waiters and not task.cancelled() and task.exception() is not None:
                log.error("stopping: %r failed", task, exc_info=task.exception())
                status = 1
    finally:
        log.info("stopping")
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await runner.close()
        await system.close()
        runner.db.dispose()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    return status


def run(
    config: Config, extra: Sequence[Extra] = (), *, api: bool = True, source: str | None = None
) -> int:
    """``sipdialer run``: the dialer, plus the REST API, the dashboard and ``/metrics``
    on ``[api] listen`` (``api=False`` leaves them out)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    tasks = list(extra)
    if api:
        # Imported here: FastAPI and uvicorn are only needed when the API is served.
        from sipdialer.api.dashboard import dashboard_routers
        from sipdialer.api.server import api_task

        def routers(runner: Any) -> list[Any]:
            return dashboard_routers(runner, config)

        tasks.insert(0, api_task(config, routers, source=source))
    return asyncio.run(serve(config, extra=tasks))

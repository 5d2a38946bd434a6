"""The registrar's asyncio shell: REGISTER in, bindings persisted, OPTIONS out.

``RegistrarService(endpoint, registrar, store, qualify_interval)`` puts the pure
``RegistrarCore`` on a ``SipEndpoint``: it answers REGISTER through the core, persists
every binding change before the answer goes out, arms one timer for the core's next
deadline (expiry and qualify), sends the qualify OPTIONS through ``endpoint.ua.send``
to each binding's ``target()`` and reports their outcome back. It reads the clocks
(``endpoint.now`` and the wall clock, only to convert stored times) and decides
nothing else.

Use::

    service = RegistrarService(endpoint, build_registrar(config.sip, config.agents), store)
    await endpoint.start(host, port)
    service.start()        # loads stored bindings; needs the running loop
    service.lookup("101")  # -> [Binding], best first; .target() is where to INVITE
    service.close()

REGISTER must be among the methods the UA serves (``UaConfig.policy.allow``), or the
UA answers 405 before we see it; the service adds it to the endpoint's policy when
missing. Logs: INFO for bindings added/removed/expired, WARNING when a source or user
is locked out after failed authentications.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import ParamSpec, TypeVar

from sipdialer.config import AgentConfig, SipConfig
from sipdialer.sip.bindings import (
    Binding,
    BindingAdded,
    BindingExpired,
    BindingRefreshed,
    BindingRemoved,
    RegistrarEvent,
    SourceLockedOut,
)
from sipdialer.sip.peer import Peer
from sipdialer.sip.registrar import RegistrarConfig, RegistrarCore
from sipdialer.sip.ua_events import IncomingRequest, RequestFailed, ResponseReceived, UaEvent
from sipdialer.store.bindings import BindingStore

from .endpoint import SipEndpoint

log = logging.getLogger(__name__)

Listener = Callable[[RegistrarEvent], None]
P = ParamSpec("P")
R = TypeVar("R")
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")
PHONE_ALGORITHMS = ("MD5",)
"""The digest challenges ``build_registrar`` offers when *base* is not given: MD5 only.
baresip 1.0.0 (Debian 12, libre 1.x) fails with ENOSYS ("Register: Function not
implemented") on a 401 carrying *any* non-MD5 challenge, even beside an MD5 one, so
offering SHA-256 too keeps it from ever registering or dialling a feature code
(tests/interop/test_baresip_interop.py). sipp and pyVoIP answer MD5 as well."""


def build_registrar(
    sip: SipConfig,
    agents: Iterable[AgentConfig],
    *,
    secret: bytes | None = None,
    base: RegistrarConfig | None = None,
) -> RegistrarCore:
    """A core for the configured agents. Realm and qualify interval come from ``[sip]``;
    our domains are the realm, the listen host and the public host (any IP literal when
    listening on a wildcard address). Other settings come from *base* (defaults, with
    the challenges limited to ``PHONE_ALGORITHMS``)."""
    hosts = dict.fromkeys((sip.listen_host, sip.public_host))
    domains = tuple(h for h in hosts if h not in _WILDCARD_HOSTS)
    config = replace(
        base or RegistrarConfig(algorithms=PHONE_ALGORITHMS),
        realm=sip.realm,
        domains=domains,
        any_ip_literal=sip.listen_host in _WILDCARD_HOSTS,
        qualify_interval=sip.qualify_interval,
    )
    users = {agent.id: agent.password for agent in agents}
    return RegistrarCore(config, users, secret or secrets.token_bytes(32))


class RegistrarService:
    def __init__(
        self,
        endpoint: SipEndpoint,
        registrar: RegistrarCore,
        store: BindingStore | None = None,
        qualify_interval: float | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = endpoint
        self.registrar = registrar
        self.store = store
        if qualify_interval is not None:
            if qualify_interval < 0:
                raise ValueError("qualify_interval must be >= 0 seconds")
            registrar.qualify_interval = qualify_interval
        self._wall_clock = wall_clock
        self._offset = 0.0  # Unix time minus endpoint.now
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._qualifying: dict[str, Binding] = {}
        self._listeners: list[Listener] = []
        self.store_errors = 0
        self._allow_register()
        endpoint.on_request("REGISTER", self._on_register)
        endpoint.on_event(self._on_ua_event)

    def _allow_register(self) -> None:
        ua = self.endpoint.ua
        policy = ua.config.policy
        if "REGISTER" not in policy.allow:
            allow = (*policy.allow, "REGISTER")
            ua.config = replace(ua.config, policy=replace(policy, allow=allow))

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Load the stored bindings (dropping expired ones) and arm the timer."""
        now = self.endpoint.now
        self._offset = self._wall_clock() - now
        self.registrar.wall_offset = self._offset
        if self.store is not None:
            stored = [self._from_wall(b) for b in self._store_call(self.store.load_all) or []]
            for binding in self.registrar.restore(stored, now):
                self._store_call(self.store.delete, binding.aor, binding.key)
            log.info("registrar: %d bindings restored", len(self.registrar))
        self._arm()

    def close(self) -> None:
        """Stop the timer. Bindings stay in the store; the store's owner closes it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def on_event(self, listener: Listener) -> None:
        """Hear every registrar event (after it is persisted)."""
        self._listeners.append(listener)

    # --- what the dialer asks -------------------------------------------------------

    def lookup(self, agent_id: str) -> list[Binding]:
        return self.registrar.lookup(agent_id, self.endpoint.now)

    def is_registered(self, agent_id: str) -> bool:
        return self.registrar.is_registered(agent_id, self.endpoint.now)

    def is_locked_out(self, peer: Peer) -> bool:
        """For other request handlers: answer 403 to a locked-out source."""
        return self.registrar.locked_out(peer, self.endpoint.now)

    # --- inputs ---------------------------------------------------------------------

    def _on_register(self, event: UaEvent) -> None:
        if not isinstance(event, IncomingRequest):
            return
        now = self.endpoint.now
        answer = self.registrar.handle_register(event.request, event.peer, now)
        if answer.status == 403:
            log.debug("REGISTER from %s refused: %s", event.peer, answer.reason or "403")
        self._drain()  # persisted before the 200 goes out (DESIGN.md rule 4)
        self.endpoint.ua.respond(event.key, answer.status, now, reason=answer.reason,
                                 headers=list(answer.headers))  # fmt: skip
        self._arm()

    def _on_ua_event(self, event: UaEvent) -> None:
        if isinstance(event, ResponseReceived):
            binding = self._qualifying.pop(event.key, None)
            if binding is not None:  # any response, even 404/405/501: it is alive
                self.registrar.qualify_answered(binding, self.endpoint.now)
        elif isinstance(event, RequestFailed):
            binding = self._qualifying.pop(event.key, None)
            if binding is not None:
                log.debug("qualify of %s at %s failed (%d)", binding.aor, binding.target(),
                          event.status)  # fmt: skip
                self.registrar.qualify_failed(binding, self.endpoint.now)
        else:
            return
        self._drain()
        self._arm()

    def _on_timer(self) -> None:
        self._timer = None
        now = max(self._timer_at or 0.0, self.endpoint.now)
        self._timer_at = None
        due = self.registrar.due_qualify(now)
        self._drain()
        ua = self.endpoint.ua
        for binding in due:
            target = binding.target()
            uri = str(binding.uri)
            request = ua.new_request(
                "OPTIONS", uri, target, from_uri=f"sip:{ua.config.user}@{ua.config.host}",
                to_uri=uri,
            )  # fmt: skip
            self._qualifying[ua.send(request, target, now)] = binding
        if due:
            self.endpoint.flush()
        self._arm()

    # --- outputs --------------------------------------------------------------------

    def _drain(self) -> None:
        while (event := self.registrar.next_event()) is not None:
            self._persist(event)
            for listener in self._listeners:
                try:
                    listener(event)
                except Exception:  # a listener's bug must not stop the registrar
                    log.exception("registrar listener failed on %s", type(event).__name__)

    def _persist(self, event: RegistrarEvent) -> None:
        store = self.store
        if isinstance(event, BindingAdded | BindingRefreshed):
            if isinstance(event, BindingAdded):
                b = event.binding
                log.info("agent %s registered %s from %s", b.aor, b.uri, b.source)
            if store is not None:
                self._store_call(store.save, self._to_wall(event.binding))
        elif isinstance(event, BindingRemoved | BindingExpired):
            b = event.binding
            why = event.reason if isinstance(event, BindingRemoved) else "expired"
            log.info("agent %s binding %s removed: %s", b.aor, b.uri, why)
            if store is not None:
                self._store_call(store.delete, b.aor, b.key)
        elif isinstance(event, SourceLockedOut):
            log.warning(
                "registrar: %s %s locked out for %.0f s after %d failed authentications"
                " (last from %s)", event.kind, event.key, event.until - self.endpoint.now,
                event.failures, event.peer,
            )  # fmt: skip

    def _store_call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R | None:
        """The database failing must not take registration down: log, count, go on
        (the binding lives in memory until the next restart)."""
        try:
            return fn(*args, **kwargs)
        except Exception:
            self.store_errors += 1
            log.exception("registrar store failed")
            return None

    def _to_wall(self, b: Binding) -> Binding:
        return replace(b, expires_at=b.expires_at + self._offset,
                       registered_at=b.registered_at + self._offset)  # fmt: skip

    def _from_wall(self, b: Binding) -> Binding:
        return replace(b, expires_at=b.expires_at - self._offset,
                       registered_at=b.registered_at - self._offset)  # fmt: skip

    def _arm(self) -> None:
        timer_at = self.registrar.get_timer()
        if self._timer is not None and timer_at != self._timer_at:
            self._timer.cancel()
            self._timer = None
        if self._timer is None and timer_at is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(timer_at, self._on_timer)
        self._timer_at = timer_at

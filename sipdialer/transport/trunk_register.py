"""Keeping a trunk account registered with its provider: the asyncio shell.

``TrunkRegistration(endpoint, trunk)`` puts the pure ``calls.trunk_registration.
TrunkRegistrar`` on a running ``SipEndpoint`` for one ``[[trunks]]`` entry with
``register = true``. The core decides when and with what Expires; this shell only
resolves the trunk's address, builds each REGISTER (one Call-ID for the whole life of
the registration, the core's CSeq, our Contact with the account's user), sends it with
``UserAgentCore.send(..., credentials=Account)`` so the UA answers the provider's
401/407, feeds the outcome back, and arms one timer for the core's deadline.

Use::

    registration = TrunkRegistration(endpoint, config.trunk("provider"))
    await registration.start()      # after endpoint.start(); returns at once
    registration.registered         # True while the provider holds our binding
    registration.state              # TrunkRegistrationState, for logs and the dashboard
    await registration.close()      # un-REGISTER (Expires: 0), waits up to 2 s for it

Logs: INFO when the registration comes up or is refreshed for the first time after a
failure, WARNING when a REGISTER fails (with the status), DEBUG for routine refreshes.
A host name in ``address`` is resolved once per attempt (the UDP transport only sends to
IP literals, so it never blocks the loop on DNS).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from sipdialer.calls.trunk_registration import (
    Register,
    RegistrationPolicy,
    TrunkRegistrar,
    TrunkRegistrationState,
)
from sipdialer.config import TrunkConfig
from sipdialer.sip.dialog import new_call_id
from sipdialer.sip.peer import Peer
from sipdialer.sip.ua_auth import Account
from sipdialer.sip.ua_events import RequestFailed, ResponseReceived, UaEvent
from sipdialer.sip.uri import SipUri

from .endpoint import SipEndpoint
from .udp import is_ip_literal

log = logging.getLogger(__name__)

Listener = Callable[["TrunkRegistration"], None]
CLOSE_TIMEOUT = 2.0
"Seconds ``close`` waits for the un-REGISTER's answer before giving up on it."


def _uri_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class TrunkRegistration:
    def __init__(
        self,
        endpoint: SipEndpoint,
        trunk: TrunkConfig,
        policy: RegistrationPolicy | None = None,
    ) -> None:
        if not trunk.username:
            raise ValueError(f"trunk {trunk.name!r}: registering needs a username")
        self.endpoint = endpoint
        self.trunk = trunk
        self.account = Account(trunk.username, trunk.password)
        self.core = TrunkRegistrar(policy)
        self.call_id = new_call_id(endpoint.ua.config.host)
        self._keys: dict[str, int] = {}  # UA request key -> core attempt
        self._listeners: list[Listener] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = asyncio.Event()
        self._last_state = self.core.state
        self._resolving: asyncio.Task[None] | None = None
        endpoint.on_event(self._on_ua_event)

    # --- what others read ----------------------------------------------------------

    @property
    def registered(self) -> bool:
        return self.core.registered

    @property
    def state(self) -> TrunkRegistrationState:
        return self.core.state

    def on_change(self, listener: Listener) -> None:
        """Hear every state change (tests, the dashboard)."""
        self._listeners.append(listener)

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Send the first REGISTER (the endpoint must be started)."""
        self._apply(self.core.start(self.endpoint.now))

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Un-REGISTER if bound, wait for the answer (at most *timeout*), stop."""
        self._cancel_timer()
        register = self.core.close(self.endpoint.now)
        self._apply(register)
        if register is not None:
            try:
                await asyncio.wait_for(self._closed.wait(), timeout)
            except TimeoutError:
                log.warning("trunk %s: no answer to the un-REGISTER in %.1f s",
                            self.trunk.name, timeout)  # fmt: skip
        if self._resolving is not None:
            self._resolving.cancel()
        self._cancel_timer()

    # --- inputs --------------------------------------------------------------------

    def _on_ua_event(self, event: UaEvent) -> None:
        if isinstance(event, ResponseReceived):
            if event.response.status_code < 200:
                return
            attempt = self._keys.pop(event.key, None)
            if attempt is None:
                return
            self._apply(self.core.response_received(attempt, event.response, self.endpoint.now))
        elif isinstance(event, RequestFailed):
            attempt = self._keys.pop(event.key, None)
            if attempt is None:
                return
            self._apply(self.core.request_failed(attempt, event.status, self.endpoint.now))

    def _on_timer(self) -> None:
        self._timer = None
        now = max(self._timer_at or 0.0, self.endpoint.now)
        self._timer_at = None
        self._apply(self.core.handle_timer(now))

    # --- outputs -------------------------------------------------------------------

    def _apply(self, register: Register | None) -> None:
        if register is not None:
            self._send(register)
        self._report()
        self._arm()

    def _send(self, register: Register) -> None:
        host = self.trunk.host
        if not is_ip_literal(host):
            # A host name: resolve off the hot path, then send (or fail the attempt).
            loop = asyncio.get_running_loop()
            self._resolving = loop.create_task(self._resolve_and_send(register))
            return
        self._send_to(register, Peer(self.trunk.transport, host, self.trunk.port))

    async def _resolve_and_send(self, register: Register) -> None:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(self.trunk.host, self.trunk.port,
                                           type=socket.SOCK_DGRAM)  # fmt: skip
            address = str(infos[0][4][0])
        except (OSError, IndexError):
            log.warning("trunk %s: cannot resolve %s", self.trunk.name, self.trunk.host)
            self._apply(self.core.request_failed(register.attempt, 503, self.endpoint.now))
            return
        self._send_to(register, Peer(self.trunk.transport, address, self.trunk.port))

    def _send_to(self, register: Register, destination: Peer) -> None:
        ua = self.endpoint.ua
        config = ua.config
        domain = _uri_host(self.trunk.host)
        if self.trunk.port != 5060:
            domain = f"{domain}:{self.trunk.port}"
        aor = f"sip:{self.account.username}@{domain}"
        transport = destination.transport
        params = () if transport == "UDP" else (("transport", transport.lower()),)
        contact = SipUri(_uri_host(config.host), self.account.username, None, config.port,
                         params=params)  # fmt: skip
        self.core.contact = contact
        request = ua.new_request(
            "REGISTER", f"sip:{domain}", destination, from_uri=aor, to_uri=aor,
            call_id=self.call_id, cseq=register.cseq,
            headers=[("Expires", str(register.expires))],
        )  # fmt: skip
        request.headers.set("Contact", f"<{contact}>")
        key = ua.send(request, destination, self.endpoint.now, credentials=self.account)
        self._keys[key] = register.attempt
        log.debug("trunk %s: REGISTER expires=%d to %s", self.trunk.name, register.expires,
                  destination)  # fmt: skip
        self.endpoint.flush()

    def _report(self) -> None:
        state = self.core.state
        if state is self._last_state:
            return
        before, self._last_state = self._last_state, state
        S = TrunkRegistrationState
        name = self.trunk.name
        if state is S.REGISTERED and before is not S.REFRESHING:
            log.info("trunk %s: registered for %s s", name, self.core.granted)
        elif state is S.REGISTERED:
            log.debug("trunk %s: refreshed for %s s", name, self.core.granted)
        elif state is S.BACKOFF:
            at = self.core.get_timer()
            wait = 0.0 if at is None else max(0.0, at - self.endpoint.now)
            log.warning("trunk %s: REGISTER failed (%s), %s; next try in %.1f s", name,
                        self.core.last_status, "still bound" if self.registered else "not bound",
                        wait)  # fmt: skip
        elif state is S.CLOSED:
            log.info("trunk %s: registration closed", name)
            self._closed.set()
        for listener in self._listeners:
            try:
                listener(self)
            except Exception:  # a listener's bug must not stop the registration
                log.exception("trunk registration listener failed")

    def _arm(self) -> None:
        timer_at = self.core.get_timer()
        if self._timer is not None and timer_at != self._timer_at:
            self._cancel_timer()
        if self._timer is None and timer_at is not None:
            self._timer = asyncio.get_running_loop().call_at(timer_at, self._on_timer)
        self._timer_at = timer_at

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = None

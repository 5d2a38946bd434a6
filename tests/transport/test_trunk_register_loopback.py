"""TrunkRegistration against a real registrar over loopback UDP.

The "provider" is this project's own registrar (RegistrarCore + RegistrarService on a
SipEndpoint, DigestServer challenges) with a tiny granted interval, so the whole
401 -> digest -> 200 -> refresh -> un-REGISTER cycle runs in about two seconds."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from sipdialer.calls.trunk_registration import RegistrationPolicy, TrunkRegistrationState
from sipdialer.config import TrunkConfig
from sipdialer.sip.peer import Peer
from sipdialer.sip.registrar import RegistrarConfig, RegistrarCore
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.ua import UaConfig
from sipdialer.sip.ua_events import IncomingRequest, ResponseReceived, UaEvent
from sipdialer.transport.endpoint import SipEndpoint
from sipdialer.transport.registrar import RegistrarService
from sipdialer.transport.trunk_register import TrunkRegistration

S = TrunkRegistrationState
TIMERS = TimerConfig(t1=0.02, t2=0.08, t4=0.1)
USERS = {"acct": "pw"}


@dataclass
class Provider:
    endpoint: SipEndpoint
    service: RegistrarService
    port: int
    registers: list[tuple[bool, str | None, int]] = field(default_factory=list)
    "(has Authorization, Expires, CSeq) of every REGISTER received."

    def record(self, event: UaEvent) -> None:
        if isinstance(event, IncomingRequest) and event.request.method == "REGISTER":
            r = event.request
            self.registers.append((r.header("Authorization") is not None, r.header("Expires"),
                                   r.cseq.number))  # fmt: skip


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    endpoint = SipEndpoint(UaConfig(host="127.0.0.1", port=0, timers=TIMERS))
    config = RegistrarConfig(realm="provider.test", domains=("127.0.0.1",), min_expires=2,
                             qualify_interval=0, algorithms=("MD5",))  # fmt: skip
    service = RegistrarService(endpoint, RegistrarCore(config, USERS, b"k" * 32), None)
    _, port = await endpoint.start("127.0.0.1", 0, tcp=False)
    service.start()
    prov = Provider(endpoint, service, port)
    endpoint.on_event(prov.record)
    yield prov
    service.close()
    await endpoint.close()
    assert endpoint.internal_errors == 0 and endpoint.handler_errors == 0


@pytest.fixture
async def dialer() -> AsyncIterator[SipEndpoint]:
    endpoint = SipEndpoint(UaConfig(host="127.0.0.1", port=0, timers=TIMERS))
    await endpoint.start("127.0.0.1", 0, tcp=False)
    yield endpoint
    await endpoint.close()
    assert endpoint.internal_errors == 0 and endpoint.handler_errors == 0


def trunk(port: int, password: str = "pw") -> TrunkConfig:
    return TrunkConfig.model_validate({"name": "provider", "address": f"127.0.0.1:{port}",
                                       "username": "acct", "password": password,
                                       "register": True})  # fmt: skip


async def wait_for(predicate: Callable[[], bool], timeout: float = 4.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_challenge_423_register_refresh_and_unregister(
    provider: Provider, dialer: SipEndpoint
) -> None:
    # Ask for 1 s: the provider's minimum is 2 s, so its 423 is part of the flow too.
    policy = RegistrationPolicy(expires=1, refresh_fraction=0.75, retry_initial=0.2)
    registration = TrunkRegistration(dialer, trunk(provider.port), policy)
    states: list[S] = []
    registration.on_change(lambda r: states.append(r.state))
    started = time.monotonic()
    await registration.start()
    await wait_for(lambda: registration.registered)
    first_up = time.monotonic() - started
    [binding] = provider.service.lookup("acct")
    assert binding.target() == dialer_peer(dialer)
    assert registration.core.granted == 2
    # 401 -> digest -> 423 (after authentication, RFC 3261 §10.3) -> 401 -> digest -> 200.
    assert [(auth, expires) for auth, expires, _ in provider.registers] == [
        (False, "1"), (True, "1"), (False, "2"), (True, "2"),
    ]  # fmt: skip
    cseqs = [cseq for *_, cseq in provider.registers]
    assert cseqs == sorted(set(cseqs))  # one Call-ID, CSeq always growing

    # The refresh goes out at 0.75 x 2 s and is challenged and answered again.
    await wait_for(lambda: len(provider.registers) == 6 and registration.state is S.REGISTERED)
    refreshed_after = time.monotonic() - started - first_up
    assert 1.2 < refreshed_after < 2.0, refreshed_after
    assert [(auth, expires) for auth, expires, _ in provider.registers[4:]] == [
        (False, "2"), (True, "2"),
    ]  # fmt: skip
    assert provider.service.is_registered("acct")
    assert states[:2] == [S.REGISTERING, S.REGISTERED] and S.REFRESHING in states

    await registration.close()
    assert registration.state is S.CLOSED and not registration.registered
    assert provider.registers[-1][1] == "0"
    assert provider.service.lookup("acct") == []


async def test_wrong_password_backs_off_and_retries(provider: Provider,
                                                    dialer: SipEndpoint) -> None:  # fmt: skip
    policy = RegistrationPolicy(expires=60, retry_initial=0.3, retry_max=0.3)
    registration = TrunkRegistration(dialer, trunk(provider.port, password="wrong"), policy)
    finals: list[int] = []
    dialer.on_event(lambda e: finals.append(e.response.status_code)
                    if isinstance(e, ResponseReceived) else None)  # fmt: skip
    await registration.start()
    await wait_for(lambda: registration.state is S.BACKOFF)
    assert not registration.registered and registration.core.last_status == 401
    failed_at = time.monotonic()
    # The UA answered the 401 once; the provider's fresh (not stale) 401 to those
    # credentials means they are wrong (RFC 7616 §3.3) and reached the core.
    tries = 2
    assert [auth for auth, *_ in provider.registers] == [False, True]
    await wait_for(lambda: len(provider.registers) > tries)
    assert 0.2 < time.monotonic() - failed_at < 1.0  # the back-off, not a tight loop
    await wait_for(lambda: registration.core.failures >= 2)
    await registration.close()  # not bound: nothing to un-REGISTER
    assert registration.state is S.CLOSED
    assert all(expires == "60" for _, expires, _ in provider.registers)
    assert 401 in finals


async def test_silent_provider_times_out_and_backs_off(dialer: SipEndpoint) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # receives, never answers
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        policy = RegistrationPolicy(expires=60, retry_initial=5)
        registration = TrunkRegistration(dialer, trunk(port), policy)
        await registration.start()
        # Timer F = 64 x T1 = 1.28 s with the test timers.
        await wait_for(lambda: registration.state is S.BACKOFF, 3.0)
        assert registration.core.last_status == 408 and not registration.registered
        assert silent.recv(4096).startswith(b"REGISTER sip:127.0.0.1:")
        await registration.close()
        assert registration.state is S.CLOSED


def dialer_peer(endpoint: SipEndpoint) -> Peer:
    return Peer("UDP", "127.0.0.1", endpoint.ua.config.port)

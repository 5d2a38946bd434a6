"""The registrar over real loopback sockets: a SipEndpoint + RegistrarService, and a
client SipEndpoint whose UA answers the 401s (UDP and TCP), plus a raw UDP socket as a
phone for qualify. Small timers keep the whole file to a few seconds."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

import pytest

from sipdialer.config import AgentConfig, SipConfig
from sipdialer.sip.bindings import (
    Binding,
    BindingExpired,
    BindingRemoved,
    RegistrarEvent,
    contact_key,
)
from sipdialer.sip.headers import parse_contacts
from sipdialer.sip.lockout import LockoutConfig
from sipdialer.sip.message import Request, Response, parse_message, response_for
from sipdialer.sip.peer import Peer
from sipdialer.sip.registrar import RegistrarConfig, RegistrarCore
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.ua import UaConfig
from sipdialer.sip.ua_auth import Account
from sipdialer.sip.ua_events import RequestFailed, ResponseReceived, UaEvent
from sipdialer.sip.uri import parse_sip_uri
from sipdialer.store.bindings import BindingStore
from sipdialer.transport.endpoint import SipEndpoint
from sipdialer.transport.registrar import RegistrarService, build_registrar

USERS = {"101": "secret1", "102": "secret2"}
SERVER_TIMERS = TimerConfig(t1=0.01, t2=0.04, t4=0.05)  # Timer F = 0.64 s
CLIENT_TIMERS = TimerConfig(t1=0.05, t2=0.2, t4=0.2)
BASE = RegistrarConfig(realm="dialer.local", domains=("127.0.0.1",), min_expires=1,
                       qualify_interval=0)  # fmt: skip


@dataclass
class Registrar:
    endpoint: SipEndpoint
    service: RegistrarService
    store: BindingStore
    port: int
    events: list[RegistrarEvent] = field(default_factory=list)

    async def close(self) -> None:
        self.service.close()
        await self.endpoint.close()
        self.store.close()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 4.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.01)


async def start_registrar(db: Path, config: RegistrarConfig = BASE) -> Registrar:
    endpoint = SipEndpoint(UaConfig(host="127.0.0.1", port=0, timers=SERVER_TIMERS))
    core = RegistrarCore(config, USERS, b"s" * 32)
    store = BindingStore(f"sqlite:///{db}")
    service = RegistrarService(endpoint, core, store, qualify_interval=config.qualify_interval)
    _, port = await endpoint.start("127.0.0.1", 0)
    service.start()
    registrar = Registrar(endpoint, service, store, port)
    service.on_event(registrar.events.append)
    return registrar


class Client:
    """A phone made of our own UA: it answers 401s with its Account."""

    def __init__(self, transport: str = "UDP") -> None:
        self.transport = transport
        self.endpoint = SipEndpoint(UaConfig(host="127.0.0.1", port=0, user="phone",
                                             timers=CLIENT_TIMERS))  # fmt: skip
        self.endpoint.on_event(self._on_event)
        self._waiting: dict[str, asyncio.Future[Response | int]] = {}
        self.call_id = f"reg-{id(self)}@127.0.0.1"
        self.cseq = 1

    async def start(self) -> Client:
        await self.endpoint.start("127.0.0.1", 0)
        return self

    def _on_event(self, event: UaEvent) -> None:
        if isinstance(event, ResponseReceived) and event.response.status_code >= 200:
            future = self._waiting.pop(event.key, None)
            if future is not None and not future.done():
                future.set_result(event.response)
        elif isinstance(event, RequestFailed):
            future = self._waiting.pop(event.key, None)
            if future is not None and not future.done():
                future.set_result(event.status)

    async def register(
        self,
        port: int,
        user: str = "101",
        password: str | None = None,
        *,
        expires: int | None = 60,
        contacts: list[str] | None = None,
    ) -> Response:
        ua = self.endpoint.ua
        destination = Peer(self.transport, "127.0.0.1", port)
        request = ua.new_request(
            "REGISTER", f"sip:127.0.0.1:{port}", destination,
            from_uri=f"sip:{user}@127.0.0.1", to_uri=f"sip:{user}@127.0.0.1",
            call_id=self.call_id, cseq=self.cseq,
            headers=[("Expires", str(expires))] if expires is not None else None,
        )  # fmt: skip
        self.cseq += 10  # the UA's digest retries use the CSeqs in between
        if contacts is not None:
            request.headers.remove("Contact")
            for contact in contacts:
                request.headers.add("Contact", contact)
        account = Account(user, USERS.get(user, "") if password is None else password)
        key = ua.send(request, destination, self.endpoint.now, credentials=account)
        future: asyncio.Future[Response | int] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        self.endpoint.flush()
        result = await asyncio.wait_for(future, 5)
        assert isinstance(result, Response), f"no response: {result}"
        return result

    async def close(self) -> None:
        await self.endpoint.close()


def expires_of(response: Response) -> dict[str, int]:
    out = {}
    for contact in parse_contacts(response.headers.get_all("Contact")):
        assert contact.address is not None and contact.expires is not None
        out[str(contact.address.uri)] = contact.expires
    return out


@pytest.fixture
async def registrar(tmp_path: Path) -> AsyncIterator[Registrar]:
    registrar = await start_registrar(tmp_path / "reg.db")
    yield registrar
    await registrar.close()
    assert registrar.endpoint.internal_errors == 0 and registrar.endpoint.handler_errors == 0


@pytest.fixture(params=["UDP", "TCP"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[Client]:
    client = await Client(request.param).start()
    yield client
    await client.close()


# --- register, refresh, remove ------------------------------------------------------------


async def test_register_refresh_and_remove(registrar: Registrar, client: Client) -> None:
    response = await client.register(registrar.port, expires=60)
    assert response.status_code == 200
    assert (response.headers.get("Date") or "").endswith(" GMT")
    [binding] = registrar.service.lookup("101")
    assert binding.source.transport == client.transport
    # The contact names the source IP: its port (over TCP the listening one, not the
    # connection's ephemeral source port).
    listening = client.endpoint.ua.config.port
    assert binding.target() == Peer(client.transport, "127.0.0.1", listening)
    assert list(expires_of(response).values()) == [60]
    assert registrar.service.is_registered("101") and not registrar.service.is_registered("102")
    assert [b.aor for b in registrar.store.load_all()] == ["101"]

    refreshed = await client.register(registrar.port, expires=120)
    assert list(expires_of(refreshed).values()) == [120]
    [again] = registrar.service.lookup("101")
    assert again.cseq > binding.cseq and again.registered_at == binding.registered_at

    removed = await client.register(registrar.port, expires=0)
    assert removed.status_code == 200 and expires_of(removed) == {}
    assert registrar.service.lookup("101") == [] and registrar.store.load_all() == []


async def test_binding_expires_on_time(registrar: Registrar) -> None:
    client = await Client().start()
    try:
        assert (await client.register(registrar.port, expires=1)).status_code == 200
        assert registrar.service.is_registered("101")
        await registrar.wait_for(lambda: any(isinstance(e, BindingExpired)
                                             for e in registrar.events), 3)  # fmt: skip
        assert not registrar.service.is_registered("101")
        assert registrar.store.load_all() == []
    finally:
        await client.close()


async def test_multiple_contacts_and_another_phone(registrar: Registrar) -> None:
    desk, soft = await Client().start(), await Client().start()
    try:
        contacts = ["<sip:101@127.0.0.1:5091>", "<sip:101@127.0.0.1:5092>;expires=30"]
        first = await desk.register(registrar.port, contacts=contacts, expires=60)
        assert expires_of(first) == {"sip:101@127.0.0.1:5091": 60, "sip:101@127.0.0.1:5092": 30}
        second = await soft.register(registrar.port, expires=90)
        assert len(expires_of(second)) == 3  # every 200 lists all the AOR's bindings
        assert len(registrar.service.lookup("101")) == 3
        assert len(registrar.store.load_all()) == 3
    finally:
        await desk.close()
        await soft.close()


async def test_interval_too_brief(tmp_path: Path) -> None:
    registrar = await start_registrar(tmp_path / "r.db", replace(BASE, min_expires=60))
    client = await Client().start()
    try:
        response = await client.register(registrar.port, expires=10)
        assert response.status_code == 423 and response.headers.get("Min-Expires") == "60"
        assert not registrar.service.is_registered("101")
    finally:
        await client.close()
        await registrar.close()


# --- failures, lockout --------------------------------------------------------------------


async def test_wrong_password_is_challenged_then_the_client_gives_up(
    registrar: Registrar, client: Client
) -> None:
    response = await client.register(registrar.port, password="wrong")
    assert response.status_code == 401
    assert len(response.headers.get_lines("WWW-Authenticate")) == 2
    # Our UA answers the challenge once; a fresh (not stale) challenge after its
    # credentials means they are wrong (RFC 7616 §3.3): it gives up.
    assert registrar.service.registrar.stats["failures"] == 1
    unknown = await client.register(registrar.port, user="999", password="wrong")
    assert unknown.status_code == 401
    assert not registrar.service.is_registered("101")


async def test_lockout_answers_403_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = replace(BASE, lockout=LockoutConfig(max_failures=3, window=60, duration=300))
    registrar = await start_registrar(tmp_path / "r.db", config)
    client = await Client().start()
    caplog.set_level(logging.WARNING, logger="sipdialer.transport.registrar")
    try:
        # One failed authentication per REGISTER (the UA gives up after one wrong answer):
        # the third locks the address, so the fourth is refused at once.
        statuses = [(await client.register(registrar.port, password="x")).status_code
                    for _ in range(4)]  # fmt: skip
        assert statuses[0] == 401 and statuses[-1] == 403
        assert (await client.register(registrar.port)).status_code == 403  # even the right one
        assert registrar.service.is_locked_out(Peer("UDP", "127.0.0.1", 1))
        assert any("locked out" in r.getMessage() and r.levelno == logging.WARNING
                   for r in caplog.records)  # fmt: skip
    finally:
        await client.close()
        await registrar.close()


# --- restart ------------------------------------------------------------------------------


async def test_bindings_survive_a_restart_and_expired_ones_do_not(tmp_path: Path) -> None:
    db = tmp_path / "restart.db"
    first = await start_registrar(db)
    client = await Client().start()
    try:
        assert (await client.register(first.port, expires=3600)).status_code == 200
    finally:
        await client.close()
        await first.close()
    side = BindingStore(f"sqlite:///{db}")
    [stored] = side.load_all()
    side.save(replace(stored, aor="102", expires_at=time.time() - 5))  # expired while down
    side.close()

    second = await start_registrar(db)
    try:
        [binding] = second.service.lookup("101")
        assert binding.contact == stored.contact and binding.source == stored.source
        assert 3590 < binding.remaining(second.endpoint.now) <= 3600
        assert not second.service.is_registered("102")
        assert [b.aor for b in second.store.load_all()] == ["101"]
    finally:
        await second.close()


# --- qualify ------------------------------------------------------------------------------


class RawPhone(asyncio.DatagramProtocol):
    """A UDP socket that answers OPTIONS only while ``answering``."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.options: list[Request] = []
        self.answering = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse_message(data)
        if isinstance(message, Request) and message.method == "OPTIONS":
            self.options.append(message)
            if self.answering and self.transport is not None:
                # A phone that does not serve OPTIONS: 405 still means alive.
                self.transport.sendto(response_for(message, 405, to_tag="p").to_bytes(), addr)


async def test_qualify_unregisters_a_phone_that_answered_then_went_silent(
    tmp_path: Path,
) -> None:
    registrar = await start_registrar(tmp_path / "q.db", replace(BASE, qualify_interval=0.15))
    loop = asyncio.get_running_loop()
    transport, phone = await loop.create_datagram_endpoint(RawPhone,
                                                           local_addr=("127.0.0.1", 0))  # fmt: skip
    phone_port = transport.get_extra_info("sockname")[1]
    client = await Client().start()
    try:
        contact = f"<sip:101@127.0.0.1:{phone_port}>"
        assert (await client.register(registrar.port, contacts=[contact])).status_code == 200
        await registrar.wait_for(lambda: bool(phone.options))
        [options] = phone.options[:1]
        assert options.max_forwards == 70
        assert parse_sip_uri(options.uri).port == phone_port  # the contact: same IP as source
        await registrar.wait_for(
            lambda: [b.qualify_supported for b in registrar.service.lookup("101")] == [True]
        )
        phone.answering = False
        transport.close()
        await registrar.wait_for(lambda: not registrar.service.is_registered("101"), 5)
        removed = [e for e in registrar.events if isinstance(e, BindingRemoved)]
        assert [e.reason for e in removed] == ["unreachable"]
        assert registrar.store.load_all() == []
    finally:
        transport.close()
        await client.close()
        await registrar.close()


async def test_a_phone_that_never_answers_options_stays_registered(tmp_path: Path) -> None:
    registrar = await start_registrar(tmp_path / "q.db", replace(BASE, qualify_interval=0.05))
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # like pyVoIP: reads, never answers
    silent.bind(("127.0.0.1", 0))
    client = await Client().start()
    try:
        contact = f"<sip:101@127.0.0.1:{silent.getsockname()[1]}>"
        assert (await client.register(registrar.port, contacts=[contact])).status_code == 200
        await registrar.wait_for(
            lambda: [b.qualify_supported for b in registrar.service.lookup("101")] == [False], 3
        )
        assert registrar.service.is_registered("101")
    finally:
        silent.close()
        await client.close()
        await registrar.close()


def test_stored_times_are_wall_clock(tmp_path: Path) -> None:
    store = BindingStore(f"sqlite:///{tmp_path / 's.db'}")
    uri = parse_sip_uri("sip:101@127.0.0.1:5070")
    binding = Binding("101", f"<{uri}>", contact_key(uri), Peer("UDP", "127.0.0.1", 5070),
                      "c", 1, time.time() + 60, time.time(), "ua", 0.5)  # fmt: skip
    store.save(binding)
    store.save(replace(binding, cseq=2))  # an upsert
    assert store.load_all() == [replace(binding, cseq=2)]
    assert store.delete_expired(time.time()) == 0
    assert store.delete_expired(time.time() + 120) == 1
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()


def test_build_registrar_from_the_configuration() -> None:
    agents = [AgentConfig(id="101", password="secret1")]
    wildcard = build_registrar(SipConfig(listen="0.0.0.0:5060", realm="office"), agents)
    assert wildcard.config.realm == "office" and wildcard.config.any_ip_literal
    assert wildcard.config.domains == ()
    sip = SipConfig(listen="127.0.0.1:5060", public_address="203.0.113.5:5060")
    pinned = build_registrar(sip, agents, base=replace(BASE, min_expires=5))
    assert pinned.config.domains == ("127.0.0.1", "203.0.113.5")
    assert not pinned.config.any_ip_literal and pinned.config.min_expires == 5
    assert pinned.config.qualify_interval == 30

"""The endpoint over real loopback sockets: OPTIONS over UDP and TCP, and fuzzing of
the running UDP endpoint (random and mutated datagrams never take it down)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipdialer.sip.message import Response, parse_message
from sipdialer.sip.ua import UaConfig
from sipdialer.transport.endpoint import SipEndpoint


def options(port: int, branch: str = "z9hG4bK-opt-1", transport: str = "UDP",
            local_port: int = 5099) -> bytes:  # fmt: skip
    return (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:{local_port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:127.0.0.1>\r\n"
        f"Call-ID: {branch}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def test_options_over_udp() -> None:
    endpoint = SipEndpoint(UaConfig(host="127.0.0.1", port=0))
    host, port = await endpoint.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    received: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            if not received.done():
                received.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Client, local_addr=("127.0.0.1", 0))
    try:
        local = transport.get_extra_info("sockname")[1]
        transport.sendto(options(port, local_port=local), (host, port))
        response = parse_message(await asyncio.wait_for(received, 2))
    finally:
        transport.close()
        await endpoint.close()
    assert isinstance(response, Response) and response.status_code == 200
    assert "INVITE" in (response.headers.get("Allow") or "")
    assert response.headers.get("Accept") == "application/sdp"
    assert response.headers.get("Supported") is not None


async def test_options_over_tcp_and_keepalive() -> None:
    endpoint = SipEndpoint(UaConfig(host="127.0.0.1", port=0))
    host, port = await endpoint.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"\r\n\r\n")  # RFC 5626 ping: answered with a single CRLF
        assert await asyncio.wait_for(reader.readexactly(2), 2) == b"\r\n"
        local = writer.get_extra_info("sockname")[1]
        writer.write(options(port, transport="TCP", local_port=local))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    finally:
        writer.close()
        await endpoint.close()
    response = parse_message(head)
    assert isinstance(response, Response) and response.status_code == 200


# --- fuzzing the running endpoint -----------------------------------------------------


class Running:
    """An endpoint on its own event loop thread, so hypothesis can drive it from sync code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.errors: list[object] = []
        self.loop.set_exception_handler(lambda loop, context: self.errors.append(context))
        self.endpoint = SipEndpoint(UaConfig(host="127.0.0.1", port=0))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(self.endpoint.start("127.0.0.1", 0), self.loop)
        self.host, self.port = future.result(5)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.endpoint.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    endpoint = Running()
    yield endpoint
    endpoint.close()


@pytest.fixture(scope="module")
def client() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    yield sock
    sock.close()


TEMPLATE = options(5060)
INVITE = (
    b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKfz\r\n"
    b"Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\n"
    b"Call-ID: fuzz@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:5099>\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\r\n"
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    base = bytearray(draw(st.sampled_from([TEMPLATE, INVITE])))
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        at = draw(st.integers(0, len(base) - 1))
        if action == "flip":
            base[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del base[at : at + draw(st.integers(1, 40))]
        elif action == "insert":
            base[at:at] = draw(st.binary(min_size=1, max_size=20))
        else:
            end = base.find(b"\r\n", at)
            if end > 0:
                base[at:at] = base[at : end + 2]
        if not base:
            base = bytearray(b"x")
    return bytes(base)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.one_of(st.binary(max_size=600), mutated()))
def test_fuzzed_datagrams_never_break_the_endpoint(
    running: Running, client: socket.socket, data: bytes
) -> None:
    client.sendto(data, (running.host, running.port))


def test_endpoint_still_answers_after_fuzzing(running: Running, client: socket.socket) -> None:
    local = client.getsockname()[1]
    # Drain whatever the fuzzing provoked (400s, 200s), then probe.
    client.settimeout(0.3)
    try:
        while True:
            client.recv(65536)
    except OSError:
        pass
    client.settimeout(2.0)
    client.sendto(options(running.port, "z9hG4bK-after-fuzz", local_port=local),
                  (running.host, running.port))  # fmt: skip
    while True:
        response = parse_message(client.recv(65536))
        if isinstance(response, Response) and "after-fuzz" in (response.header("Via") or ""):
            break
    assert response.status_code == 200
    assert running.errors == []
    assert running.endpoint.handler_errors == 0
    assert running.endpoint.internal_errors == 0

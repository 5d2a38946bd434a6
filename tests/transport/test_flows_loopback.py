"""RFC 3665 basic call flows between two real ``SipEndpoint``s on 127.0.0.1.

The same flows as ``tests/sip/test_ua_flows.py``, but through the UDP and TCP shells:
Alice calls Bob on his bound port, the test plays Bob's TU by hand, and waits for UA
events through an ``on_event`` listener feeding an ``asyncio.Queue``. Every message an
endpoint receives is recorded (``Wire``), so the tests also check what crossed the
sockets: the RFC 3665 ladder, the transport, and on TCP that responses come back over
the connection the request went out on (RFC 3261 §18.2.2).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import pytest

from sipdialer.sip.auth_server import DigestServer
from sipdialer.sip.errors import ParseError
from sipdialer.sip.message import Request, Response, parse_message
from sipdialer.sip.peer import Peer
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.ua import UaConfig, UserAgentCore
from sipdialer.sip.ua_auth import Account
from sipdialer.sip.ua_events import (
    CallAnswered,
    CallCancelled,
    CallConfirmed,
    CallFailed,
    CallProgress,
    DialogTerminated,
    IncomingCall,
    ResponseReceived,
    UaEvent,
)
from sipdialer.transport.endpoint import SipEndpoint

TIMERS = TimerConfig(t1=0.05, t2=0.4, t4=0.5)
WAIT = 5.0
"Upper bound of every wait: a lost message fails the test, it never hangs it."
SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)
E = TypeVar("E", bound=UaEvent)


# --- the wire tap ------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One message as it arrived at an endpoint's core, with the socket peer."""

    receiver: str
    message: Request | Response
    peer: Peer

    @property
    def label(self) -> str:
        m = self.message
        return m.method if isinstance(m, Request) else str(m.status_code)


@dataclass
class Wire:
    seen: list[Seen] = field(default_factory=list)

    def ladder(self) -> list[str]:
        """Labels in order of first arrival, without UDP retransmissions (same label
        and CSeq) and without the automatic 100 Trying (sent only to a slow TU)."""
        out: list[str] = []
        keys: set[tuple[str, int, str]] = set()
        for s in self.seen:
            cseq = s.message.cseq
            key = (s.label, cseq.number, cseq.method)
            if s.label != "100" and key not in keys:
                keys.add(key)
                out.append(s.label)
        return out

    def received(self, receiver: str, label: str) -> list[Seen]:
        return [s for s in self.seen if s.receiver == receiver and s.label == label]

    async def until(self, receiver: str, label: str) -> Seen:
        """Wait (bounded) until *receiver* has got a message labelled *label*."""

        async def poll() -> Seen:
            while not (found := self.received(receiver, label)):
                await asyncio.sleep(0.005)
            return found[0]

        return await asyncio.wait_for(poll(), WAIT)


class TappedUa(UserAgentCore):
    """A core that records every message its shell hands it, then handles it."""

    def __init__(self, config: UaConfig, name: str, wire: Wire) -> None:
        super().__init__(config)
        self._name = name
        self._wire = wire

    def receive_data(self, data: bytes, peer: Peer, now: float, *, stream: bool = False) -> None:
        if data.strip(b"\r\n"):
            try:
                message = parse_message(data, stream=stream)
            except ParseError:
                pass
            else:
                self._wire.seen.append(Seen(self._name, message, peer))
        super().receive_data(data, peer, now, stream=stream)


# --- one side of the call -----------------------------------------------------------------


class Side:
    def __init__(self, name: str, wire: Wire) -> None:
        self.name = name
        self.endpoint = SipEndpoint()
        config = UaConfig(host="127.0.0.1", port=0, user=name, timers=TIMERS)
        self.endpoint.ua = TappedUa(config, name, wire)
        self.events: asyncio.Queue[UaEvent] = asyncio.Queue()
        self.endpoint.on_event(self.events.put_nowait)
        self.endpoint.on_request("INVITE", lambda event: None)  # the test is Bob's TU
        self.port = 0

    async def start(self) -> None:
        self.port = (await self.endpoint.start("127.0.0.1", 0))[1]

    @property
    def ua(self) -> UserAgentCore:
        return self.endpoint.ua

    @property
    def now(self) -> float:
        return self.endpoint.now

    async def next(self, kind: type[E]) -> E:
        """The next event, which must be a *kind*. A CallProgress for 100 Trying is
        skipped: the transaction layer sends it on its own when the TU is slow."""
        while True:
            event = await asyncio.wait_for(self.events.get(), WAIT)
            if isinstance(event, CallProgress) and event.response.status_code == 100:
                continue
            assert isinstance(event, kind), f"{self.name}: wanted {kind.__name__}, got {event}"
            return event

    def pending(self) -> list[UaEvent]:
        """Events queued and not yet taken (100 Trying progress left out)."""
        out: list[UaEvent] = []
        while not self.events.empty():
            event = self.events.get_nowait()
            if not (isinstance(event, CallProgress) and event.response.status_code == 100):
                out.append(event)
        return out

    def act(self, command: Callable[[], object]) -> None:
        """Run a UA command outside a callback, then send what it queued."""
        command()
        self.endpoint.flush()


@dataclass
class Call:
    transport: str
    alice: Side
    bob: Side
    wire: Wire

    @property
    def bob_peer(self) -> Peer:
        return Peer(self.transport, "127.0.0.1", self.bob.port)

    def dial(self, credentials: Account | None = None) -> str:
        alice = self.alice
        handle = alice.ua.invite(
            f"sip:bob@127.0.0.1:{self.bob.port}", self.bob_peer, alice.now,
            from_uri="sip:alice@127.0.0.1", body=SDP, credentials=credentials,
        )  # fmt: skip
        alice.endpoint.flush()
        return handle

    async def settle(self) -> None:
        """Give late messages (a stray retransmission, an unexpected event) a chance."""
        await asyncio.sleep(0.1)

    def check_transport(self) -> None:
        """Every message used the call's transport, and the whole call used one flow
        (RFC 3261 §18.2.2: responses go back the way the request came; in-dialog
        requests go to the dialog's source). Alice hears everything from Bob's socket;
        Bob from Alice's socket on UDP, and on TCP from the one connection Alice opened
        (an ephemeral port, not her listener: Bob never connected to her)."""
        assert self.wire.seen
        sources = {
            name: {s.peer for s in self.wire.seen if s.receiver == name}
            for name in ("alice", "bob")
        }
        assert sources["alice"] == {self.bob_peer}
        if self.transport == "UDP":
            assert sources["bob"] == {Peer("UDP", "127.0.0.1", self.alice.port)}
        else:
            assert len(sources["bob"]) == 1
            (source,) = sources["bob"]
            assert source.transport == "TCP" and source.host == "127.0.0.1"
            assert source.port != self.alice.port


@pytest.fixture(params=["UDP", "TCP"])
async def call(request: pytest.FixtureRequest) -> AsyncIterator[Call]:
    wire = Wire()
    alice, bob = Side("alice", wire), Side("bob", wire)
    try:
        await alice.start()
        await bob.start()
        yield Call(str(request.param), alice, bob, wire)
    finally:
        await alice.endpoint.close()
        await bob.endpoint.close()
        await asyncio.sleep(0)  # let the closed transports call connection_lost
    for side in (alice, bob):
        assert side.endpoint.handler_errors == 0
        assert side.endpoint.internal_errors == 0


def transport_param(call: Call) -> str:
    return "" if call.transport == "UDP" else ";transport=tcp"


# --- the flows ---------------------------------------------------------------------------


async def test_successful_call_and_bye_from_caller(call: Call) -> None:
    """RFC 3665 §3.1: INVITE, 180, 200, ACK, BYE, 200."""
    alice, bob = call.alice, call.bob
    handle = call.dial()
    invite = await bob.next(IncomingCall)
    assert invite.request.body == SDP
    contact = invite.request.header("Contact") or ""
    assert contact == f"<sip:alice@127.0.0.1:{alice.port}{transport_param(call)}>"
    bob.act(lambda: bob.ua.respond(invite.key, 180, bob.now))
    progress = await alice.next(CallProgress)
    assert progress.handle == handle and progress.response.status_code == 180
    assert progress.dialog is not None
    bob.act(lambda: bob.ua.respond(invite.key, 200, bob.now, body=SDP))
    answered = await alice.next(CallAnswered)
    assert answered.handle == handle and answered.response.body == SDP
    answer_contact = answered.response.header("Contact") or ""
    assert answer_contact == f"<sip:bob@127.0.0.1:{bob.port}{transport_param(call)}>"
    confirmed = await bob.next(CallConfirmed)
    assert confirmed.dialog.call_id == answered.dialog.call_id and not confirmed.reinvite

    alice.act(lambda: alice.ua.bye(answered.dialog, alice.now))
    mine = await alice.next(DialogTerminated)
    assert not mine.by_remote
    bye_ok = await alice.next(ResponseReceived)
    assert bye_ok.response.status_code == 200 and bye_ok.response.cseq.method == "BYE"
    theirs = await bob.next(DialogTerminated)
    assert theirs.by_remote and theirs.request is not None
    assert theirs.request.method == "BYE"

    await call.settle()
    assert alice.pending() == [] and bob.pending() == []
    assert call.wire.ladder() == ["INVITE", "180", "200", "ACK", "BYE", "200"]
    call.check_transport()
    assert alice.ua.dialog(answered.dialog) is None and bob.ua.dialog(confirmed.dialog) is None


async def test_bye_from_callee(call: Call) -> None:
    """RFC 3665 §3.1 with the callee hanging up (to Alice's Contact)."""
    alice, bob = call.alice, call.bob
    call.dial()
    invite = await bob.next(IncomingCall)
    dialog_ids: list[object] = []
    bob.act(lambda: dialog_ids.append(bob.ua.respond(invite.key, 200, bob.now, body=SDP)))
    answered = await alice.next(CallAnswered)
    confirmed = await bob.next(CallConfirmed)
    assert dialog_ids == [confirmed.dialog]

    reason = 'Q.850;cause=16;text="Normal call clearing"'
    bob.act(lambda: bob.ua.bye(confirmed.dialog, bob.now, reason=reason))
    assert not (await bob.next(DialogTerminated)).by_remote
    bye_ok = await bob.next(ResponseReceived)
    assert bye_ok.response.status_code == 200 and bye_ok.dialog == confirmed.dialog
    ended = await alice.next(DialogTerminated)
    assert ended.dialog == answered.dialog and ended.by_remote
    assert ended.request is not None and ended.request.header("Reason") == reason

    await call.settle()
    assert alice.pending() == [] and bob.pending() == []
    assert call.wire.ladder() == ["INVITE", "200", "ACK", "BYE", "200"]
    bye = call.wire.received("alice", "BYE")[0]
    assert isinstance(bye.message, Request)
    assert bye.message.uri == f"sip:alice@127.0.0.1:{alice.port}{transport_param(call)}"
    call.check_transport()


async def test_busy(call: Call) -> None:
    """RFC 3665 §3.2: 486 Busy Here, ACKed by the caller's INVITE transaction."""
    alice, bob = call.alice, call.bob
    handle = call.dial()
    invite = await bob.next(IncomingCall)
    bob.act(lambda: bob.ua.respond(invite.key, 486, bob.now))
    failed = await alice.next(CallFailed)
    assert (failed.handle, failed.status, failed.cancelled) == (handle, 486, False)
    ack = await call.wire.until("bob", "ACK")
    assert isinstance(ack.message, Request) and ack.message.cseq.method == "ACK"
    assert ack.message.to.tag is not None and ack.message.call_id == invite.request.call_id
    # The ACK of a failure is the transaction's (§17.1.1.3): same branch as the INVITE.
    assert ack.message.top_via.branch == invite.request.top_via.branch

    await call.settle()
    assert bob.pending() == []  # the ACK for a failure stays in the transaction layer
    assert alice.pending() == []
    assert call.wire.ladder() == ["INVITE", "486", "ACK"]
    call.check_transport()


async def test_no_answer_cancel(call: Call) -> None:
    """RFC 3665 §3.8: ringing, the caller gives up: CANCEL, 200, 487, ACK."""
    alice, bob = call.alice, call.bob
    handle = call.dial()
    invite = await bob.next(IncomingCall)
    bob.act(lambda: bob.ua.respond(invite.key, 180, bob.now))
    await alice.next(CallProgress)
    alice.act(lambda: alice.ua.cancel(handle, alice.now))
    cancelled = await bob.next(CallCancelled)
    assert cancelled.key == invite.key
    failed = await alice.next(CallFailed)
    assert (failed.handle, failed.status, failed.cancelled) == (handle, 487, True)
    await call.wire.until("bob", "ACK")

    await call.settle()
    assert alice.pending() == [] and bob.pending() == []
    ladder = call.wire.ladder()
    assert ladder[:2] == ["INVITE", "180"]
    # The 200 to CANCEL and the 487 to INVITE travel independently.
    assert ladder[2:] in (["CANCEL", "200", "487", "ACK"], ["CANCEL", "487", "200", "ACK"])
    cancel = call.wire.received("bob", "CANCEL")[0].message
    assert isinstance(cancel, Request)
    assert cancel.top_via.branch == invite.request.top_via.branch  # §9.1
    assert cancel.cseq.number == invite.request.cseq.number
    call.check_transport()
    # Bob's late answer is harmless.
    assert bob.ua.respond(invite.key, 200, bob.now, body=SDP) is None


async def test_auth_challenge_on_invite(call: Call) -> None:
    """RFC 3665 §3.1 with a 401: the caller answers the digest challenge."""
    alice, bob = call.alice, call.bob
    server = DigestServer("dialer.local", b"secret-key")
    handle = call.dial(credentials=Account("alice", "wonderland"))
    first = await bob.next(IncomingCall)
    assert first.request.header("Authorization") is None
    challenges = [("WWW-Authenticate", str(c)) for c in server.challenge(bob.now)]
    bob.act(lambda: bob.ua.respond(first.key, 401, bob.now, headers=challenges))
    second = await bob.next(IncomingCall)  # the 401 is answered, not reported to Alice
    assert second.request.call_id == first.request.call_id
    assert second.request.cseq.number == first.request.cseq.number + 1
    assert second.request.top_via.branch != first.request.top_via.branch
    result = server.verify_header(
        second.request.header("Authorization") or "", "INVITE", lambda user: "wonderland",
        bob.now,
    )  # fmt: skip
    assert result.ok
    bob.act(lambda: bob.ua.respond(second.key, 200, bob.now, body=SDP))
    answered = await alice.next(CallAnswered)
    assert answered.handle == handle
    await bob.next(CallConfirmed)
    alice.act(lambda: alice.ua.bye(answered.dialog, alice.now))
    await alice.next(DialogTerminated)
    assert (await alice.next(ResponseReceived)).response.status_code == 200
    assert (await bob.next(DialogTerminated)).by_remote

    await call.settle()
    assert alice.pending() == [] and bob.pending() == []
    assert call.wire.ladder() == [
        "INVITE", "401", "ACK", "INVITE", "200", "ACK", "BYE", "200",
    ]  # fmt: skip
    call.check_transport()

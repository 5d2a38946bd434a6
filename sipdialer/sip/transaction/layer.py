"""The transaction layer: every client and server transaction of one SIP endpoint.

Theory of operation. The layer routes; the four machines (one per file) decide. It
matches each message to its transaction (``keys.py``), creates server transactions
for new requests, forwards TU calls, and collects what the machines queue:

    inputs:  receive(message, source, now)       a parsed message from the shell
             send_request(request, dest, now)    -> ClientKey; opens a client transaction
             send_response(response, now)        through its server transaction
             send_stateless(message, dest)       ACK for 2xx, stateless replies
             transport_error(key_or_peer, now)   the shell could not send / lost a flow
             handle_timer(now)
    outputs: data_to_send() -> [(bytes, Peer)]   drain after every input
             next_event()   -> TransactionEvent | None
             get_timer()    -> float | None      one deadline for the whole layer

Rules that span transactions live here and nowhere else: stamping ``received``/``rport``
on incoming requests (§18.2.1, RFC 3581), ACK for 2xx bypassing the transactions
(§17.1.1.3, §17.2.3), CANCEL answered by the layer with 200 or 481 (§9.2), the §9.1
give-up timer armed on an INVITE when its CANCEL is sent, and dropping stray responses
(RFC 6026 rewrote the last paragraph of §18.1.2: discard, do not pass up).

Performance. Matching is one dict lookup per message. The single timer is a heap of
``(deadline, seq, key)`` with lazy invalidation: a transaction whose next deadline
changes pushes a new entry and ``_scheduled`` remembers which one is current, so stale
entries are skipped when popped and the heap is rebuilt when they outnumber the live
ones. Each input therefore costs O(log n) and ``get_timer`` O(1) amortised; 1,000+
concurrent transactions cost nothing noticeable. ``transport_error(peer)`` scans all
transactions, which is fine for an event that happens when a connection dies.
"""

from __future__ import annotations

import heapq
import itertools
import secrets
from collections import Counter, deque

from ..errors import LocalProtocolError, ParseError
from ..headers import Headers, Via, split_list
from ..message import Request, Response, response_for
from ..peer import Peer
from ..timers import DEFAULT_TIMERS, TimerConfig
from . import invite_server
from .events import AckReceived, CancelReceived, RequestReceived, TransactionEvent
from .invite_client import InviteClientTransaction, build_ack_for_non2xx, top_via_line
from .invite_server import InviteServerTransaction
from .keys import (
    ClientKey,
    LegacyServerKey,
    ServerKey,
    ServerTransactionKey,
    TransactionKey,
    client_key,
    client_key_for_response,
    invite_key_for_cancel,
    is_rfc3261_branch,
    legacy_ack_key,
    legacy_response_index,
    sent_by_key,
    server_key,
    server_key_for_response,
)
from .noninvite_client import NonInviteClientTransaction
from .noninvite_server import NonInviteServerTransaction
from .routing import add_received, response_destination

__all__ = ["TransactionLayer", "build_ack_for_non2xx", "build_cancel"]

ClientTransaction = InviteClientTransaction | NonInviteClientTransaction
ServerTransaction = InviteServerTransaction | NonInviteServerTransaction
AnyTransaction = ClientTransaction | ServerTransaction

_COMPACT_AT = 64
"Slack before the timer heap is rebuilt: at more than 2 * live + this many entries."


def new_tag() -> str:
    """A To tag for responses the layer writes itself (§19.3: >= 32 random bits)."""
    return secrets.token_hex(6)


class TransactionLayer:
    """All transactions of one endpoint, behind one input/output contract."""

    def __init__(
        self, timers: TimerConfig = DEFAULT_TIMERS, *, auto_trying: float | None = 0.2
    ) -> None:
        self.timers = timers
        self.auto_trying = auto_trying
        "Seconds before an unanswered INVITE gets 100 Trying (§17.2.1); None = never."
        self.stats: Counter[str] = Counter()
        "Counts of absorbed and dropped input, for logs and dashboards."
        self._transactions: dict[TransactionKey, AnyTransaction] = {}
        # RFC 2543 book-keeping: ACK keys (To tag of our response) -> the INVITE's key,
        # and the response-side index (no Request-URI in a response).
        self._ack_aliases: dict[LegacyServerKey, LegacyServerKey] = {}
        self._aliases_of: dict[LegacyServerKey, list[LegacyServerKey]] = {}
        self._legacy_index: dict[tuple[object, ...], LegacyServerKey] = {}
        self._index_of: dict[LegacyServerKey, tuple[object, ...]] = {}
        self._cancel_tags: dict[ServerTransactionKey, str] = {}
        self._heap: list[tuple[float, int, TransactionKey]] = []
        self._scheduled: dict[TransactionKey, float] = {}
        self._seq = itertools.count()
        self._outgoing: list[tuple[bytes, Peer]] = []
        self._events: deque[TransactionEvent] = deque()

    def __len__(self) -> int:
        """Live transactions."""
        return len(self._transactions)

    def transaction(self, key: TransactionKey) -> AnyTransaction | None:
        """The live transaction for *key* (to read ``.state``), or ``None``."""
        return self._transactions.get(key)

    # -- inputs from the wire ------------------------------------------------------

    def receive(self, message: Request | Response, source: Peer, now: float) -> None:
        """Feed one parsed message that arrived from *source*; then drain the outputs.

        Raises ``ParseError`` (a ``RemoteProtocolError``) when a header needed for
        matching (Via, CSeq; Call-ID/From/To for RFC 2543 requests) is missing or
        malformed; the layer is unchanged then, and the shell answers or drops.
        """
        if isinstance(message, Response):
            self._receive_response(message, now)
        else:
            self._receive_request(message, source, now)

    def _receive_response(self, response: Response, now: float) -> None:
        key = client_key_for_response(response)
        tx = self._transactions.get(key) if key is not None else None
        if not isinstance(tx, InviteClientTransaction | NonInviteClientTransaction):
            self.stats["stray_responses"] += 1  # RFC 6026 (update of §18.1.2): discarded
            return
        if tx.sent_by != sent_by_key(response.top_via):
            self.stats["stray_responses"] += 1  # §18.1.2: not our sent-by
            return
        tx.receive_response(response, now)
        self._sync(tx)

    def _receive_request(self, request: Request, source: Peer, now: float) -> None:
        via = request.top_via
        key = server_key(request)  # from the Via as sent, before we stamp it
        index = legacy_response_index(request) if isinstance(key, LegacyServerKey) else None
        stamped = add_received(via, source)
        if stamped is not via:
            _replace_top_via(request, stamped)

        if request.method == "ACK":
            primary = self._ack_aliases.get(key, key) if isinstance(key, LegacyServerKey) else key
            target = self._transactions.get(primary)
            if isinstance(target, InviteServerTransaction):
                target.receive_ack(request, source, now)  # absorbed, or passed up if Accepted
                self._sync(target)
            else:
                self._events.append(AckReceived(request, source))  # ACK for a 2xx
            return

        existing = self._transactions.get(key)
        if existing is not None:
            self.stats["request_retransmissions"] += 1
            if isinstance(existing, InviteServerTransaction | NonInviteServerTransaction):
                existing.receive_request(request, now)
                self._sync(existing)
            return

        destination = response_destination(stamped, source)
        if destination is None:
            self.stats["unroutable_requests"] += 1  # responses would be broadcast
            return
        tx: ServerTransaction
        if request.method == "INVITE":
            tx = InviteServerTransaction(
                request, key, destination, timers=self.timers, trying_delay=self.auto_trying
            )
        else:
            tx = NonInviteServerTransaction(request, key, destination, timers=self.timers)
        self._transactions[key] = tx
        if isinstance(key, LegacyServerKey) and index is not None:
            self._legacy_index[index] = key
            self._index_of[key] = index
        tx.start(now)
        if isinstance(tx, NonInviteServerTransaction) and request.method == "CANCEL":
            self._answer_cancel(tx, source, now)
        else:
            self._events.append(RequestReceived(request, source, key))
        self._sync(tx)

    def _answer_cancel(self, tx: NonInviteServerTransaction, source: Peer, now: float) -> None:
        """§9.2: 200 to a CANCEL that matches an INVITE, 481 otherwise; tell the TU."""
        cancel = tx.request
        invite_key = invite_key_for_cancel(tx.key)
        invite = self._transactions.get(invite_key)
        if not isinstance(invite, InviteServerTransaction):
            # Simplification: a CANCEL for a non-INVITE request also gets 481 here.
            self.stats["unmatched_cancels"] += 1
            tx.send_response(response_for(cancel, 481, to_tag=new_tag()), now)
            return
        tag = self._tag_of(invite) or cancel.to.tag or new_tag()
        # §9.2: the 200 to the CANCEL and the 487 SHOULD carry the same To tag.
        self._cancel_tags.setdefault(invite_key, tag)
        tx.send_response(response_for(cancel, 200, to_tag=tag), now)
        if invite.state is invite_server.State.PROCEEDING:
            self._events.append(CancelReceived(cancel, source, invite_key))

    # -- inputs from the TU ----------------------------------------------------------

    def send_request(self, request: Request, destination: Peer, now: float) -> ClientKey:
        """Open a client transaction for *request* and queue it for *destination*.

        The top Via must carry an RFC 3261 branch, unique per transaction (§8.1.1.7);
        a CANCEL reuses its INVITE's (``build_cancel``). Raises ``LocalProtocolError``
        for an ACK (use ``send_stateless``), a missing branch, a key already in use,
        or a CANCEL for an INVITE that has no provisional response yet (§9.1).
        """
        if request.method == "ACK":
            raise LocalProtocolError(
                "an ACK for a 2xx is not a transaction (§17.1.1.3): use send_stateless"
            )
        try:
            key = client_key(request)
        except ParseError as exc:
            raise LocalProtocolError(f"cannot send this request: {exc}") from exc
        if not is_rfc3261_branch(key.branch):
            raise LocalProtocolError(f"top Via branch {key.branch!r} lacks the magic cookie")
        if key in self._transactions:
            raise LocalProtocolError(f"a client transaction {key} already exists")
        if request.method == "CANCEL":
            invite = self._transactions.get(ClientKey(key.branch, "INVITE"))
            if isinstance(invite, InviteClientTransaction):
                invite.cancel_sent(now)  # may raise: before any state of ours changes
                self._sync(invite)
        tx: ClientTransaction
        if request.method == "INVITE":
            tx = InviteClientTransaction(request, destination, timers=self.timers)
        else:
            tx = NonInviteClientTransaction(request, destination, timers=self.timers)
        self._transactions[key] = tx
        tx.start(now)
        self._sync(tx)
        return key

    def send_response(
        self, response: Response, now: float, *, key: ServerTransactionKey | None = None
    ) -> bool:
        """Send *response* through the server transaction of the request it answers.

        The transaction is found from the response's top Via and CSeq (as
        ``response_for`` copies them), or given as *key*. Returns False, counting
        ``stats["responses_without_transaction"]``, when that transaction is gone
        (terminated by a timer or a transport error the TU has not acted on yet).
        Raises ``LocalProtocolError`` when the transaction's state forbids the
        response (a second final response, a 1xx after the final).
        """
        if key is None:
            key = self._server_key_for(response)
        tx = self._transactions.get(key) if key is not None else None
        if not isinstance(tx, InviteServerTransaction | NonInviteServerTransaction):
            self.stats["responses_without_transaction"] += 1
            return False
        tx.send_response(response, now)
        if isinstance(tx.key, LegacyServerKey) and isinstance(tx, InviteServerTransaction):
            self._register_ack_alias(tx.key, response.to.tag)
        self._sync(tx)
        return True

    def send_request_terminated(
        self, invite_key: ServerTransactionKey, now: float, *, to_tag: str | None = None
    ) -> None:
        """Answer a cancelled INVITE with 487 Request Terminated (§9.2).

        The To tag defaults to the one of an earlier provisional response, else the
        one the layer used in its 200 to the CANCEL. Raises ``LocalProtocolError``
        when *invite_key* is not a live INVITE server transaction.
        """
        tx = self._transactions.get(invite_key)
        if not isinstance(tx, InviteServerTransaction):
            raise LocalProtocolError(f"no INVITE server transaction {invite_key}")
        tag = to_tag or self._tag_of(tx) or self._cancel_tags.get(invite_key) or new_tag()
        self.send_response(response_for(tx.request, 487, to_tag=tag), now, key=invite_key)

    def send_stateless(self, message: Request | Response, destination: Peer) -> None:
        """Queue *message* for *destination* outside any transaction (ACK for 2xx)."""
        self._outgoing.append((message.to_bytes(), destination))

    def transport_error(self, target: TransactionKey | Peer, now: float) -> None:
        """The shell failed to send for *target*: one transaction, or every one whose
        messages go to a peer (a TCP connection that closed). Unknown targets are ignored.
        """
        if isinstance(target, Peer):
            affected = [tx for tx in self._transactions.values() if tx.destination == target]
        else:
            found = self._transactions.get(target)
            affected = [found] if found is not None else []
        for tx in affected:
            tx.transport_error(now)
            self._sync(tx)

    def handle_timer(self, now: float) -> None:
        """Fire every deadline due at *now*. Spurious or early calls are harmless."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, key = heapq.heappop(heap)
            if self._scheduled.get(key) != at:
                continue  # stale: that transaction re-armed or ended
            del self._scheduled[key]
            tx = self._transactions[key]
            sent = len(self._outgoing)
            tx.handle_timer(now)
            self._sync(tx)
            # What a timer sends is a retransmission (Timers A, E, G), except the
            # automatic 100 Trying (§17.2.1); counted for metrics.
            for data, _ in self._outgoing[sent:]:
                if not data.startswith(b"SIP/2.0 100 "):
                    self.stats["retransmissions"] += 1

    # -- outputs -----------------------------------------------------------------------

    def data_to_send(self) -> list[tuple[bytes, Peer]]:
        """Datagrams / stream messages to send, oldest first; the queue is emptied."""
        data, self._outgoing = self._outgoing, []
        return data

    def next_event(self) -> TransactionEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The earliest deadline over all transactions, or ``None``."""
        heap = self._heap
        while heap and self._scheduled.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    # -- book-keeping --------------------------------------------------------------------

    def _sync(self, tx: AnyTransaction) -> None:
        """Collect *tx*'s outputs; reschedule it, or forget it once terminated."""
        for data in tx.data_to_send():
            self._outgoing.append((data, tx.destination))
        while (event := tx.next_event()) is not None:
            self._events.append(event)
        key = tx.key
        if tx.is_terminated:
            self._forget(key)
            return
        at = tx.get_timer()
        if at == self._scheduled.get(key):
            return
        if at is None:
            del self._scheduled[key]
            return
        self._scheduled[key] = at
        heapq.heappush(self._heap, (at, next(self._seq), key))
        if len(self._heap) > 2 * len(self._scheduled) + _COMPACT_AT:
            self._heap = [(a, next(self._seq), k) for k, a in self._scheduled.items()]
            heapq.heapify(self._heap)

    def _forget(self, key: TransactionKey) -> None:
        self._transactions.pop(key, None)
        self._scheduled.pop(key, None)
        if isinstance(key, LegacyServerKey):
            for alias in self._aliases_of.pop(key, ()):
                self._ack_aliases.pop(alias, None)
            index = self._index_of.pop(key, None)
            if index is not None and self._legacy_index.get(index) == key:
                del self._legacy_index[index]
        if isinstance(key, ServerKey | LegacyServerKey):
            self._cancel_tags.pop(key, None)

    def _register_ack_alias(self, key: LegacyServerKey, to_tag: str | None) -> None:
        alias = legacy_ack_key(key, to_tag)
        if alias != key and alias not in self._ack_aliases:
            self._ack_aliases[alias] = key
            self._aliases_of.setdefault(key, []).append(alias)

    def _server_key_for(self, response: Response) -> ServerTransactionKey | None:
        key = server_key_for_response(response)
        if key is not None:
            return key
        return self._legacy_index.get(legacy_response_index(response))

    @staticmethod
    def _tag_of(tx: InviteServerTransaction) -> str | None:
        last = tx.last_response
        return last.to.tag if last is not None else None


def _replace_top_via(request: Request, via: Via) -> None:
    """Rewrite the first Via value in place (the first line may hold a comma list)."""
    items = list(request.headers)
    for index, (name, value) in enumerate(items):
        if name == "Via":
            values = split_list(value)
            values[0] = str(via)
            items[index] = (name, ", ".join(values))
            break
    request.headers = Headers(items)


def build_cancel(invite: Request) -> Request:
    """The CANCEL for *invite* (RFC 3261 §9.1).

    Request-URI, Call-ID, From, To (tags included) and the CSeq number are the
    INVITE's, with method CANCEL; a single Via, the INVITE's top one (so the branch
    matches, §9.1); the Route headers copied. Send it with ``send_request`` once the
    INVITE has a provisional response.
    """
    headers = Headers()
    headers.add("Via", top_via_line(invite))
    for value in invite.headers.get_lines("Route"):
        headers.add("Route", value)
    headers.add("Max-Forwards", "70")
    for name in ("From", "To"):
        line = invite.headers.get(name)
        if line is None:
            raise LocalProtocolError(f"INVITE without {name}")
        headers.add(name, line)
    headers.add("Call-ID", invite.call_id)
    headers.add("CSeq", f"{invite.cseq.number} CANCEL")
    return Request(headers, b"", "CANCEL", invite.uri)

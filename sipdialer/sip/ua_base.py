"""The state and the plumbing every part of the user agent core shares: the
transaction layer, the records of ``ua_state``, the event queue, request building,
Via/Contact, and ending a dialog. ``ua_uac`` and ``ua`` add the behaviour."""

from __future__ import annotations

from collections import deque
from itertools import count

from .dialog import Dialog, DialogId, DialogInput, new_branch, new_call_id, new_tag
from .headers import Headers
from .message import Request, Response
from .peer import Peer
from .schedule import Schedule
from .transaction.keys import ServerTransactionKey, TransactionKey
from .transaction.layer import TransactionLayer
from .transaction.routing import response_destination
from .ua_events import DialogTerminated, UaEvent
from .ua_state import AckWait, ClientInvite, ClientRequest, ServerPending, UaConfig


class UaBase:
    def __init__(self, config: UaConfig | None = None) -> None:
        self.config = config or UaConfig()
        self.layer = TransactionLayer(self.config.timers)
        self._events: deque[UaEvent] = deque()
        self._ids = count(1)
        self._invites: dict[str, ClientInvite] = {}
        self._invite_by_tx: dict[TransactionKey, str] = {}
        self._requests: dict[str, ClientRequest] = {}
        self._request_by_tx: dict[TransactionKey, str] = {}
        self._pending: dict[ServerTransactionKey, ServerPending] = {}
        self._dialogs: dict[DialogId, Dialog] = {}
        self._ack_waits: dict[DialogId, AckWait] = {}
        # The ACK sent for each 2xx, by INVITE client transaction and To tag; kept until
        # the transaction ends (Timer M) to repeat it for each retransmission of that 2xx.
        self._acks: dict[TransactionKey, dict[str, tuple[Request, Peer]]] = {}
        self._ack_schedule: Schedule[DialogId] = Schedule()
        self.stats: dict[str, int] = {"dropped": 0, "rejected": 0}

    # --- outputs --------------------------------------------------------------------

    def data_to_send(self) -> list[tuple[bytes, Peer]]:
        return self.layer.data_to_send()

    def next_event(self) -> UaEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        deadlines = [
            t
            for t in (
                self.layer.get_timer(),
                self._ack_schedule.next_deadline(),
            )
            if t is not None
        ]
        return min(deadlines) if deadlines else None

    def dialog(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def state_size(self) -> dict[str, int]:
        """How much the UA holds, for leak checks and metrics."""
        return {
            "transactions": len(self.layer),
            "invites": len(self._invites),
            "requests": len(self._requests),
            "pending": len(self._pending),
            "dialogs": len(self._dialogs),
            "ack_waits": len(self._ack_waits),
            "acks": sum(len(acks) for acks in self._acks.values()),
        }

    # --- building and sending -------------------------------------------------------

    def new_request(
        self,
        method: str,
        request_uri: str,
        destination: Peer,
        *,
        from_uri: str,
        to_uri: str | None = None,
        from_name: str | None = None,
        call_id: str | None = None,
        cseq: int = 1,
        body: bytes = b"",
        content_type: str = "application/sdp",
        headers: list[tuple[str, str]] | None = None,
    ) -> Request:
        """An out-of-dialog request with everything §8.1.1 asks for."""
        out = Headers()
        out.add("Via", self._via(destination))
        out.add("Max-Forwards", "70")
        display = f'"{from_name}" ' if from_name else ""
        out.add("From", f"{display}<{from_uri}>;tag={new_tag()}")
        out.add("To", f"<{to_uri or request_uri}>")
        out.add("Call-ID", call_id or new_call_id(self.config.host))
        out.add("CSeq", f"{cseq} {method}")
        if method in ("INVITE", "REGISTER", "SUBSCRIBE", "REFER"):
            out.add("Contact", self.contact(destination))
        if method in ("INVITE", "OPTIONS"):
            out.add("Allow", ", ".join(self.config.policy.allow))
            out.add("Supported", ", ".join(self.config.policy.supported))
        out.add("User-Agent", self.config.user_agent)
        for name, value in headers or ():
            out.add(name, value)
        if body:
            out.add("Content-Type", content_type)
        return Request(out, body, method, request_uri)

    def _start_request(self, pending: ClientRequest, now: float) -> None:
        tx_key = self.layer.send_request(pending.request, pending.destination, now)
        self._requests[pending.key] = pending
        self._request_by_tx[tx_key] = pending.key

    def _send_internal(self, request: Request, destination: Peer, now: float) -> None:
        key = f"i{next(self._ids)}"
        pending = ClientRequest(key, request, destination, None, None, internal=True)
        self._start_request(pending, now)

    def _bye_internal(self, dialog_id: DialogId, now: float) -> None:
        """A BYE the TU did not ask for: its response is not reported."""
        dialog = self._dialogs[dialog_id]
        request = dialog.create_request("BYE", via=self._via(dialog.peer))
        self._end_dialog(dialog_id, by_remote=False, reason="BYE sent")
        self._send_internal(request, dialog.destination(), now)

    def _via(self, destination: Peer) -> str:
        host, port = self.config.host, self.config.port
        return f"SIP/2.0/{destination.transport} {host}:{port};branch={new_branch()};rport"

    @staticmethod
    def _new_via(old: str) -> str:
        """The Via of a retried request: the same sent-by, a new branch."""
        sent = old.split(";", 1)[0]
        return f"{sent};branch={new_branch()};rport"

    def contact(self, peer: Peer) -> str:
        """Our Contact for messages to *peer*."""
        suffix = "" if peer.transport == "UDP" else f";transport={peer.transport.lower()}"
        return f"<sip:{self.config.user}@{self.config.host}:{self.config.port}{suffix}>"

    def _send_2xx(self, dialog_id: DialogId, response: Response) -> None:
        dialog = self._dialogs.get(dialog_id)
        if dialog is not None:
            destination = response_destination(response.top_via, dialog.peer)
            if destination is not None:
                self.layer.send_stateless(response, destination)

    def _end_dialog(
        self,
        dialog_id: DialogId,
        *,
        by_remote: bool,
        reason: str,
        request: Request | None = None,
        status: int | None = None,
    ) -> None:
        dialog = self._dialogs.pop(dialog_id, None)
        self._ack_waits.pop(dialog_id, None)
        self._ack_schedule.cancel(dialog_id)
        # The ACKs we sent stay until Timer M: a 2xx retransmitted after our BYE still
        # wants its ACK (RFC 3261 §13.2.2.4).
        if dialog is not None:
            dialog.apply(DialogInput.TERMINATE)
            self._events.append(DialogTerminated(dialog_id, by_remote, reason, request, status))

"""The user agent core (RFC 3261 §8, §12–15): transactions + dialogs + call rules.

Theory of operation. ``UserAgentCore`` is the one object the shells and the calls
layer talk to. Inputs: ``receive_data(data, peer, now)`` for every datagram or
framed stream message, ``handle_timer(now)``, and the TU's commands (``invite``,
``cancel``, ``respond``, ``request_in_dialog``, ``bye``, ``send``). Outputs, drained
after every input: ``data_to_send()`` (bytes and the ``Peer`` to send them to),
``next_event()`` (``ua_events``), ``get_timer()`` (one deadline for the whole UA).

Rules that live here, not in the TU: §8.2 inspection (``inspect.py``), answering
bad requests, OPTIONS, BYE and CANCEL (§9.2, §15.1.2), the 2xx retransmission
until ACK and its 64*T1 give-up (§13.3.1.4), the ACK for a 2xx (§13.2.2.4) and its
repetition when the 2xx is retransmitted (RFC 6026), CANCEL only after a provisional
(§9.1), ACK-then-BYE for a 2xx that raced our CANCEL, extra 2xx of a forked INVITE
hung up, a 2xx no dialog can be made from ACKed, hung up and reported as CallFailed
(``unusable``), and answering 401/407 with digest credentials (§22.2). An INVITE we
sent always ends with CallAnswered or CallFailed, never silently.
"""

from __future__ import annotations

from .dialog import Dialog, DialogId, DialogInput, dialog_id_of_request, new_tag
from .errors import ParseError, RemoteProtocolError
from .inspect import inspect_request, reject_unparsable
from .message import Request, Response, check_request, check_response, parse_message, response_for
from .peer import Peer
from .transaction.events import (
    AckReceived,
    CancelReceived,
    RequestReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from .transaction.events import ResponseReceived as TxResponse
from .transaction.keys import ClientKey, ServerTransactionKey, TransactionKey
from .ua_auth import Account, authorize
from .ua_events import (
    CallCancelled,
    CallConfirmed,
    CallFailed,
    IncomingCall,
    IncomingRequest,
    RequestFailed,
    ResponseReceived,
)
from .ua_state import MAX_AUTH_ATTEMPTS, AckWait, ClientRequest, ServerPending, UaConfig
from .ua_uac import UacInvites

__all__ = ["UaConfig", "UserAgentCore"]


class UserAgentCore(UacInvites):
    """The user agent core; see the module docstring. Build it with a ``UaConfig``."""

    def receive_data(self, data: bytes, peer: Peer, now: float, *, stream: bool = False) -> None:
        """Feed one datagram or one framed stream message. Never raises for bad input."""
        if not data.strip(b"\r\n"):
            return  # keep-alive (RFC 5626 §3.5.1); the shell answers pings on streams
        try:
            message = parse_message(data, stream=stream)
        except ParseError as exc:
            self._reject_unparsable(data, exc, peer)
            return
        try:
            if isinstance(message, Request):
                check_request(message)
            else:
                check_response(message)
        except ParseError as exc:
            self._reject(message, exc, peer)
            return
        self.layer.receive(message, peer, now)
        self._pump(now)

    def transport_error(self, peer: Peer, now: float) -> None:
        """A connection to *peer* failed: its client transactions fail (RFC 3261 §8.1.3.1)."""
        self.layer.transport_error(peer, now)
        self._pump(now)

    def handle_timer(self, now: float) -> None:
        """Fire every deadline that is due. Spurious calls are harmless."""
        self.layer.handle_timer(now)
        for dialog_id in self._ack_schedule.pop_due(now):
            wait = self._ack_waits.get(dialog_id)
            if wait is None:
                continue
            if now >= wait.give_up_at:
                del self._ack_waits[dialog_id]
                self._ack_timed_out(dialog_id, now)
                continue
            self._send_2xx(dialog_id, wait.response)
            self.layer.stats["retransmissions"] += 1  # §13.3.1.4, counted with the layer's
            wait.interval = min(wait.interval * 2, self.config.timers.t2)
            self._ack_schedule.set(dialog_id, min(now + wait.interval, wait.give_up_at))
        self._pump(now)

    def send(
        self,
        request: Request,
        destination: Peer,
        now: float,
        *,
        credentials: Account | None = None,
    ) -> str:
        """Send a non-INVITE request outside a dialog; returns its key (stable across a
        digest retry). Events: ResponseReceived (1xx and the final) or RequestFailed."""
        key = f"r{next(self._ids)}"
        self._start_request(ClientRequest(key, request, destination, credentials, None), now)
        return key

    def request_in_dialog(
        self,
        dialog_id: DialogId,
        method: str,
        now: float,
        *,
        body: bytes = b"",
        content_type: str = "application/sdp",
        headers: list[tuple[str, str]] | None = None,
    ) -> str:
        """Send BYE, re-INVITE, UPDATE, INFO, OPTIONS ... inside a dialog; returns a key."""
        dialog = self._dialogs[dialog_id]
        extra = list(headers or ())
        if body:
            extra.append(("Content-Type", content_type))
        request = dialog.create_request(
            method, via=self._via(dialog.peer), body=body, headers=extra
        )
        key = f"r{next(self._ids)}"
        pending = ClientRequest(key, request, dialog.destination(), None, dialog_id)
        if method == "BYE":
            # RFC 3261 §15.1.1: the session ends when the BYE is sent, not answered.
            self._end_dialog(dialog_id, by_remote=False, reason="BYE sent")
        self._start_request(pending, now)
        return key

    def bye(self, dialog_id: DialogId, now: float, *, reason: str | None = None) -> None:
        """Hang up a confirmed dialog (RFC 3261 §15.1.1)."""
        if dialog_id in self._dialogs:
            headers = [("Reason", reason)] if reason else None
            self.request_in_dialog(dialog_id, "BYE", now, headers=headers)

    def respond(
        self,
        key: ServerTransactionKey,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        body: bytes = b"",
        content_type: str = "application/sdp",
        headers: list[tuple[str, str]] | None = None,
    ) -> DialogId | None:
        """Answer a request from IncomingCall/IncomingRequest. Returns the dialog a
        1xx/2xx to an INVITE made (or the one the request belongs to)."""
        pending = self._pending.get(key)
        if pending is None:
            return None  # already answered, or cancelled: harmless
        request = pending.request
        extra = list(headers or ())
        invite = request.method == "INVITE"
        if invite and 100 < status < 300:
            extra.append(("Contact", self.contact(pending.peer)))
        if body:
            extra.append(("Content-Type", content_type))
        response = response_for(
            request, status, reason, to_tag=pending.local_tag, headers=extra, body=body
        )
        dialog_id = pending.dialog
        if invite and 100 < status < 300 and dialog_id is None:
            dialog = Dialog.from_uas(request, pending.local_tag, pending.peer,
                                     self.contact(pending.peer))  # fmt: skip
            dialog_id = pending.dialog = dialog.id
            self._dialogs[dialog_id] = dialog
        if status >= 200:
            del self._pending[key]
        self.layer.send_response(response, now)
        if invite and dialog_id is not None:
            dialog = self._dialogs[dialog_id]
            if 200 <= status < 300:
                if dialog.state.name == "EARLY":
                    dialog.apply(DialogInput.CONFIRM)
                t1 = self.config.timers.t1
                give_up = now + 64 * t1
                # Retransmit only where the transport may lose it; wait for ACK anyway.
                first = give_up if pending.peer.reliable else now + t1
                reinvite = request.to.tag is not None
                self._ack_waits[dialog_id] = AckWait(response, t1, give_up, reinvite)
                self._ack_schedule.set(dialog_id, first)
            elif status >= 300 and request.to.tag is None:
                self._dialogs.pop(dialog_id, None)  # the early dialog dies with the call
        self._pump(now)
        return dialog_id

    def _reject(self, message: Request | Response, error: ParseError, peer: Peer) -> None:
        """Answer a request that parsed but breaks a rule (400 naming it, 505, 416 ...);
        drop a bad response (RFC 3261 §18.1.2) and never answer an ACK."""
        if isinstance(message, Response) or message.method == "ACK":
            self.stats["dropped"] += 1
            return
        self.stats["rejected"] += 1
        status = error.status_hint
        response = response_for(message, status, error.reason if status == 400 else None)
        # Answer where it came from: its Via may be what is broken (RFC 3581 spirit).
        self.layer.send_stateless(response, peer)

    def _reject_unparsable(self, data: bytes, error: ParseError, peer: Peer) -> None:
        response = reject_unparsable(data, error)
        self.stats["rejected" if response else "dropped"] += 1
        if response is not None:
            # The Via of a request that failed to parse is not to be trusted: answer
            # the address it came from (what received/rport would say, RFC 3581).
            self.layer.send_stateless(response, peer)

    def _ack_timed_out(self, dialog_id: DialogId, now: float) -> None:
        # RFC 3261 §13.3.1.4: no ACK in 64*T1: confirm, then end the session with BYE.
        if dialog_id in self._dialogs:
            dialog = self._dialogs[dialog_id]
            request = dialog.create_request("BYE", via=self._via(dialog.peer))
            self._end_dialog(dialog_id, by_remote=True, reason="no ACK", status=408)
            self._send_internal(request, dialog.destination(), now)

    def _pump(self, now: float) -> None:
        while (event := self.layer.next_event()) is not None:
            try:
                if isinstance(event, RequestReceived):
                    self._on_request(event.request, event.peer, _server_key(event.key), now)
                elif isinstance(event, TxResponse):
                    self._on_response(event.response, event.key, now)
                elif isinstance(event, AckReceived):
                    self._on_ack(event.request)
                elif isinstance(event, CancelReceived):
                    self._on_cancel(_server_key(event.invite_key), now)
                elif isinstance(event, TransactionTimedOut):
                    self._on_no_response(event.key, 408, now)
                elif isinstance(event, TransportFailed):
                    self._on_no_response(event.key, 503, now)
                elif isinstance(event, TransactionTerminated):
                    handle = self._invite_by_tx.pop(event.key, None)
                    invite = self._invites.get(handle) if handle else None
                    if invite is not None and invite.tx_key == event.key:
                        self._invite_ended(invite)  # answered or failed; Timer M is over
                    self._acks.pop(event.key, None)
                    self._request_by_tx.pop(event.key, None)
            except RemoteProtocolError:
                # A message we cannot act on is dropped, but an INVITE must not end
                # unheard: a final response to it that broke here fails the call now.
                self.stats["dropped"] += 1
                if isinstance(event, TxResponse):
                    self._response_broke(event.response, event.key)

    def _response_broke(self, response: Response, tx_key: TransactionKey) -> None:
        """Processing a response raised: if it was the final response of an INVITE not
        reported yet, report it failed (``unusable``). The INVITE is forgotten when its
        transaction ends; until then a 2xx is ACKed and hung up."""
        handle = self._invite_by_tx.get(tx_key)
        invite = self._invites.get(handle) if handle else None
        if invite is not None and invite.tx_key == tx_key and response.status_code >= 200:
            if not invite.reported:
                self._fail_unusable(invite, response)

    def _on_request(
        self, request: Request, peer: Peer, key: ServerTransactionKey, now: float
    ) -> None:
        rejection = inspect_request(request, self.config.policy)
        if rejection is not None:
            self.stats["rejected"] += 1
            self.layer.send_response(rejection, now)
            return
        dialog_id = dialog_id_of_request(request)
        if dialog_id is not None:
            self._on_request_in_dialog(request, peer, key, dialog_id, now)
            return
        if request.method == "OPTIONS" and self.config.answer_options:
            self.layer.send_response(self._options_response(request), now)
            return
        if request.method == "BYE":
            self.layer.send_response(response_for(request, 481), now)
            return
        self._pending[key] = ServerPending(request, peer, new_tag(), None)
        if request.method == "INVITE":
            self._events.append(IncomingCall(key, request, peer))
        else:
            self._events.append(IncomingRequest(key, request, peer))

    def _options_response(self, request: Request) -> Response:
        policy = self.config.policy
        return response_for(
            request, 200, to_tag=new_tag(),
            headers=[
                ("Allow", ", ".join(policy.allow)),
                ("Accept", ", ".join(policy.accept)),
                ("Supported", ", ".join(policy.supported)),
                ("User-Agent", self.config.user_agent),
            ],
        )  # fmt: skip

    def _on_request_in_dialog(
        self,
        request: Request,
        peer: Peer,
        key: ServerTransactionKey,
        dialog_id: DialogId,
        now: float,
    ) -> None:
        dialog = self._dialogs.get(dialog_id)
        if dialog is None:
            self.layer.send_response(response_for(request, 481), now)  # §12.2.2
            return
        try:
            dialog.receive_request(request)
        except RemoteProtocolError as exc:
            self.layer.send_response(response_for(request, exc.status_hint, exc.reason), now)
            return
        if request.method == "BYE":
            self.layer.send_response(response_for(request, 200), now)  # §15.1.2
            self._end_dialog(dialog_id, by_remote=True, reason="BYE received", request=request)
            return
        self._pending[key] = ServerPending(request, peer, dialog_id.local_tag, dialog_id)
        self._events.append(IncomingRequest(key, request, peer, dialog_id))

    def _on_ack(self, ack: Request) -> None:
        dialog_id = dialog_id_of_request(ack)
        wait = self._ack_waits.pop(dialog_id, None) if dialog_id else None
        if dialog_id is not None:
            self._ack_schedule.cancel(dialog_id)
        if dialog_id is not None and wait is not None:
            self._events.append(CallConfirmed(dialog_id, ack, wait.reinvite))

    def _on_cancel(self, invite_key: ServerTransactionKey, now: float) -> None:
        pending = self._pending.pop(invite_key, None)
        if pending is None:
            return
        # RFC 3261 §9.2: the INVITE gets 487; the early dialog, if any, goes with it.
        response = response_for(pending.request, 487, to_tag=pending.local_tag)
        self.layer.send_response(response, now)
        if pending.dialog is not None:
            self._dialogs.pop(pending.dialog, None)
        self._events.append(CallCancelled(invite_key))

    def _on_response(self, response: Response, tx_key: TransactionKey, now: float) -> None:
        handle = self._invite_by_tx.get(tx_key)
        if handle is not None:
            self._on_invite_response(handle, response, tx_key, now)
            return
        if response.is_success and self._reack(tx_key, response):
            return  # a re-INVITE's 2xx again: the same ACK again (RFC 6026 §8.4)
        req_key = self._request_by_tx.get(tx_key)
        pending = self._requests.get(req_key) if req_key else None
        if pending is None:
            return
        if response.status_code in (401, 407) and self._retry_with_auth(pending, response, now):
            return
        if response.status_code >= 200:
            del self._requests[pending.key]
            dialog_id = pending.dialog
            if dialog_id is not None and dialog_id in self._dialogs:
                dialog = self._dialogs[dialog_id]
                try:
                    dialog.receive_response(response)
                except RemoteProtocolError:
                    # A refreshed Contact that does not parse: the old target stays;
                    # the response (and a 2xx's ACK) must not be lost with it.
                    self.stats["dropped"] += 1
                if response.status_code in (408, 481):
                    self._end_dialog(dialog_id, by_remote=True, reason="dialog gone",
                                     status=response.status_code)  # fmt: skip
                elif response.is_success and pending.request.method == "INVITE":
                    cseq = pending.request.cseq.number
                    self._ack_2xx(dialog, response, cseq, tx_key)
        if not pending.internal:
            self._events.append(ResponseReceived(pending.key, response, pending.dialog))

    def _retry_with_auth(self, pending: ClientRequest, response: Response, now: float) -> bool:
        if pending.credentials is None or pending.auth_attempts >= MAX_AUTH_ATTEMPTS:
            return False
        retry = authorize(pending.request, response, pending.credentials, self._new_via)
        if retry is None:
            return False
        pending.auth_attempts += 1
        pending.request = retry
        tx_key = self.layer.send_request(retry, pending.destination, now)
        self._request_by_tx[tx_key] = pending.key
        return True

    def _on_no_response(self, tx_key: TransactionKey, status: int, now: float) -> None:
        handle = self._invite_by_tx.get(tx_key)
        if handle is not None and handle in self._invites:
            invite = self._invites[handle]
            if invite.tx_key != tx_key or invite.reported:
                return
            del self._invites[handle]
            self._drop_early(invite)
            self._events.append(CallFailed(handle, status, None, invite.cancelled))
            return
        req_key = self._request_by_tx.get(tx_key)
        pending = self._requests.pop(req_key, None) if req_key else None
        if pending is None:
            return
        if pending.dialog is not None and pending.dialog in self._dialogs:
            self._end_dialog(pending.dialog, by_remote=True, reason="no response",
                             status=status)  # fmt: skip
        if not pending.internal:
            self._events.append(RequestFailed(pending.key, status, pending.dialog))


def _server_key(key: TransactionKey) -> ServerTransactionKey:
    """Requests and CANCELs always arrive on server transactions."""
    if isinstance(key, ClientKey):
        raise TypeError(f"a client key where a server key belongs: {key}")
    return key

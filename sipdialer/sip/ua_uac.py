"""The UAC side of INVITE (RFC 3261 §13.2, §9.1, §22.2): sending it, CANCEL after a
provisional, early and confirmed dialogs, the ACK for each 2xx (repeated for a
retransmitted 2xx, RFC 6026), ACK-then-BYE for a 2xx that raced our CANCEL or came
from a second fork, and the digest retry of a 401/407."""

from __future__ import annotations

from .dialog import Dialog, DialogId, DialogInput, dialog_id_of_response
from .errors import RemoteProtocolError
from .message import Response
from .peer import Peer
from .transaction.layer import build_cancel
from .ua_auth import Account, authorize
from .ua_base import UaBase
from .ua_events import CallAnswered, CallFailed, CallProgress
from .ua_state import MAX_AUTH_ATTEMPTS, ClientInvite


class UacInvites(UaBase):
    def invite(
        self,
        request_uri: str,
        destination: Peer,
        now: float,
        *,
        from_uri: str,
        to_uri: str | None = None,
        from_name: str | None = None,
        body: bytes = b"",
        content_type: str = "application/sdp",
        headers: list[tuple[str, str]] | None = None,
        credentials: Account | None = None,
        follow_target: bool = False,
    ) -> str:
        """Send an INVITE; returns its handle. Events: CallProgress*, then CallAnswered
        or CallFailed. *follow_target*: see ``Dialog.follow_target``."""
        request = self.new_request(
            "INVITE", request_uri, destination, from_uri=from_uri, to_uri=to_uri,
            from_name=from_name, body=body, content_type=content_type, headers=headers,
        )  # fmt: skip
        handle = request.call_id
        tx_key = self.layer.send_request(request, destination, now)
        self._invites[handle] = ClientInvite(handle, request, destination, tx_key, credentials,
                                             follow_target=follow_target)  # fmt: skip
        self._invite_by_tx[tx_key] = handle
        return handle

    def cancel(self, handle: str, now: float, *, reason: str | None = None) -> None:
        """Give up on an INVITE we sent (RFC 3261 §9.1). CANCEL waits for a provisional."""
        invite = self._invites.get(handle)
        if invite is None or invite.cancelled or invite.answered is not None:
            return
        invite.cancelled = True
        invite.cancel_pending = not invite.provisional
        invite.cancel_reason = reason
        if invite.provisional:
            self._send_cancel(invite, now, reason)

    def _send_cancel(self, invite: ClientInvite, now: float, reason: str | None = None) -> None:
        cancel = build_cancel(invite.request)
        if reason:
            cancel.headers.add("Reason", reason)  # RFC 3326
        self._send_internal(cancel, invite.destination, now)

    def _on_invite_response(self, handle: str, response: Response, now: float) -> None:
        invite = self._invites.get(handle)
        if invite is None:
            return
        code = response.status_code
        dialog_id = dialog_id_of_response(response)
        if code < 200:
            if invite.cancel_pending:  # RFC 3261 §9.1: any provisional, 100 included
                invite.cancel_pending = False
                self._send_cancel(invite, now, invite.cancel_reason)
            invite.provisional = True
            early = None
            if code > 100 and dialog_id is not None and not invite.cancelled:
                if dialog_id not in self._dialogs:
                    self._dialogs[dialog_id] = Dialog.from_uac(invite.request, response,
                                                               invite.destination)  # fmt: skip
                    self._dialogs[dialog_id].follow_target = invite.follow_target
                invite.early[dialog_id.remote_tag] = dialog_id
                early = dialog_id
            if not invite.cancelled:
                self._events.append(CallProgress(handle, response, early))
            return
        if 200 <= code < 300:
            self._on_invite_2xx(invite, response, dialog_id, now)
            return
        if (
            code in (401, 407)
            and not invite.cancelled
            and self._retry_invite(invite, response, now)
        ):
            return
        self._invites.pop(handle, None)
        for early_id in invite.early.values():
            self._dialogs.pop(early_id, None)
        self._events.append(CallFailed(handle, code, response, invite.cancelled))

    def _on_invite_2xx(
        self, invite: ClientInvite, response: Response, dialog_id: DialogId | None, now: float
    ) -> None:
        if dialog_id is None:
            raise RemoteProtocolError("2xx without tags")
        if dialog_id in self._acks:
            request, peer = self._acks[dialog_id]  # retransmitted 2xx: ACK again
            self.layer.send_stateless(request, peer)
            return
        dialog = self._dialogs.get(dialog_id)
        if dialog is None:
            dialog = Dialog.from_uac(invite.request, response, invite.destination)
            dialog.follow_target = invite.follow_target
            self._dialogs[dialog_id] = dialog
        else:
            dialog.remote_uri = response.to
            dialog.receive_response(response)
            # RFC 3261 §13.2.2.4: the 2xx recomputes the early dialog's route set.
            fresh = Dialog.from_uac(invite.request, response, invite.destination)
            dialog.route_set = fresh.route_set
        if dialog.state.name == "EARLY":
            dialog.apply(DialogInput.CONFIRM)
        self._ack_2xx(dialog_id, response, now)
        if invite.cancelled or invite.answered is not None:
            # The 200 raced our CANCEL, or a second fork answered: ACK, then BYE.
            self._bye_internal(dialog_id, now)
            if invite.answered is None:
                self._invites.pop(invite.handle, None)
                self._events.append(CallFailed(invite.handle, 487, response, cancelled=True))
            return
        invite.answered = dialog_id
        for tag, early_id in invite.early.items():
            if tag != dialog_id.remote_tag:
                self._dialogs.pop(early_id, None)
        self._events.append(CallAnswered(invite.handle, response, dialog_id))

    def _ack_2xx(self, dialog_id: DialogId, response: Response, now: float) -> None:
        dialog = self._dialogs[dialog_id]
        ack = dialog.create_request("ACK", via=self._via(dialog.peer), cseq=dialog.invite_seq)
        destination = dialog.destination()
        self._acks[dialog_id] = (ack, destination)
        self.layer.send_stateless(ack, destination)

    def _retry_invite(self, invite: ClientInvite, response: Response, now: float) -> bool:
        if invite.credentials is None or invite.auth_attempts >= MAX_AUTH_ATTEMPTS:
            return False
        retry = authorize(invite.request, response, invite.credentials, self._new_via)
        if retry is None:
            return False
        invite.auth_attempts += 1
        invite.request = retry
        invite.provisional = False
        invite.tx_key = self.layer.send_request(retry, invite.destination, now)
        self._invite_by_tx[invite.tx_key] = invite.handle
        return True

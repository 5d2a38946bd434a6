"""The UAC side of INVITE (RFC 3261 §13.2, §9.1, §22.2): sending it, CANCEL after a
provisional, early and confirmed dialogs, the ACK for each 2xx (repeated for a
retransmitted 2xx, RFC 6026), ACK-then-BYE for a 2xx that raced our CANCEL, came
from a second fork or cannot make a dialog (no To tag, a Contact that does not parse),
and the digest retry of a 401/407. An INVITE is kept until its transaction ends
(Timer M after a 2xx), so each late 2xx still gets its ACK; its early dialogs go then
at the latest."""

from __future__ import annotations

from .dialog import Dialog, DialogId, DialogInput, DialogState
from .errors import RemoteProtocolError
from .message import Response
from .peer import Peer
from .transaction.keys import TransactionKey
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
        if invite is None or invite.cancelled or invite.reported:
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

    def _on_invite_response(
        self, handle: str, response: Response, tx_key: TransactionKey, now: float
    ) -> None:
        invite = self._invites.get(handle)
        if invite is None:
            return
        code = response.status_code
        if code < 200:
            if invite.cancel_pending:  # RFC 3261 §9.1: any provisional, 100 included
                invite.cancel_pending = False
                self._send_cancel(invite, now, invite.cancel_reason)
            invite.provisional = True
            if invite.cancelled or invite.reported:
                return  # nobody wants its progress, nor an early dialog that would stay
            early = self._early_dialog(invite, response) if code > 100 else None
            self._events.append(CallProgress(handle, response, early))
            return
        if 200 <= code < 300:
            self._on_invite_2xx(invite, response, tx_key, now)
            return
        if invite.reported:
            return  # a transaction in Accepted absorbs these (RFC 6026); be safe anyway
        if (
            code in (401, 407)
            and not invite.cancelled
            and self._retry_invite(invite, response, now)
        ):
            return
        self._invites.pop(handle, None)
        self._drop_early(invite)
        self._events.append(CallFailed(handle, code, response, invite.cancelled))

    def _early_dialog(self, invite: ClientInvite, response: Response) -> DialogId | None:
        """The early dialog a 1xx with a To tag makes (§12.1.2), or None: no tag, or a
        Contact/Record-Route that does not parse (the progress is still reported)."""
        if response.to.tag is None:
            return None
        try:
            fresh = Dialog.from_uac(invite.request, response, invite.destination)
        except RemoteProtocolError:
            return None
        # Keyed by the id made from our request (its Call-ID and From tag) and the To
        # tag: a 1xx that matched the transaction by branch but names another Call-ID
        # or From tag joins the same entry instead of leaving one nobody removes.
        dialog_id = fresh.id
        if dialog_id not in self._dialogs:
            fresh.follow_target = invite.follow_target
            self._dialogs[dialog_id] = fresh
        invite.early[dialog_id.remote_tag] = dialog_id
        return dialog_id

    def _drop_early(self, invite: ClientInvite) -> None:
        """Forget every early dialog of *invite* but the one its 2xx confirmed."""
        for early_id in invite.early.values():
            dialog = self._dialogs.get(early_id)
            if (
                early_id != invite.answered
                and dialog is not None
                and dialog.state is DialogState.EARLY
            ):
                del self._dialogs[early_id]
        invite.early.clear()

    def _on_invite_2xx(
        self, invite: ClientInvite, response: Response, tx_key: TransactionKey, now: float
    ) -> None:
        if self._reack(tx_key, response):
            # A retransmission (the peer missed our ACK): the same ACK again until
            # Timer M ends the transaction (RFC 6026 §8.4, RFC 3261 §13.2.2.4).
            return
        if invite.cancelled or invite.reported:
            # The 200 raced our CANCEL, another fork answered too, or the call already
            # failed: every 2xx is ACKed, then hung up (§13.2.2.4, §15).
            self._refuse_2xx(invite, response, tx_key, now)
            if not invite.reported:
                invite.failed = True
                self._drop_early(invite)
                self._events.append(CallFailed(invite.handle, 487, response, cancelled=True))
            return
        try:
            dialog = self._confirm_dialog(invite, response)
        except RemoteProtocolError:
            # No To tag, or a Contact/Record-Route that does not parse: no dialog can be
            # made. ACK and BYE it with what the request says, and tell the TU.
            self._refuse_2xx(invite, response, tx_key, now)
            self._fail_unusable(invite, response)
            return
        self._ack_2xx(dialog, response, invite.request.cseq.number, tx_key)
        invite.answered = dialog.id
        self._drop_early(invite)
        self._events.append(CallAnswered(invite.handle, response, dialog.id))

    def _fail_unusable(self, invite: ClientInvite, response: Response | None) -> None:
        """Report *invite* failed: a final response it could not use (``unusable``)."""
        invite.failed = True
        self._drop_early(invite)
        status = response.status_code if response is not None else 500
        self._events.append(CallFailed(invite.handle, status, response, invite.cancelled,
                                       unusable=True))  # fmt: skip

    def _confirm_dialog(self, invite: ClientInvite, response: Response) -> Dialog:
        """The confirmed dialog of a 2xx (§12.1.2, §13.2.2.4). Raises RemoteProtocolError
        before changing anything when the 2xx cannot make one."""
        fresh = Dialog.from_uac(invite.request, response, invite.destination)
        dialog = self._dialogs.get(fresh.id)
        if dialog is None:
            fresh.follow_target = invite.follow_target
            self._dialogs[fresh.id] = dialog = fresh
        else:
            dialog.remote_uri = fresh.remote_uri
            if response.headers.get_all("Contact"):
                dialog.remote_target = fresh.remote_target  # target refresh
            # RFC 3261 §13.2.2.4: the 2xx recomputes the early dialog's route set.
            dialog.route_set = fresh.route_set
        if dialog.state.name == "EARLY":
            dialog.apply(DialogInput.CONFIRM)
        return dialog

    def _refuse_2xx(
        self, invite: ClientInvite, response: Response, tx_key: TransactionKey, now: float
    ) -> None:
        """ACK a 2xx we will not keep, then BYE it once, from a dialog that is never
        stored. When the 2xx cannot make a dialog, the ACK and BYE go where the INVITE
        went, to its Request-URI, with the 2xx's To as it is (a missing tag is the null
        tag of RFC 3261 §12.1.2: a peer that left it out matches on the rest)."""
        try:
            dialog = Dialog.from_uac(invite.request, response, invite.destination)
            dialog.follow_target = invite.follow_target
        except RemoteProtocolError:
            request = invite.request
            dialog = Dialog(
                id=DialogId(request.call_id, request.from_.tag or "", response.to.tag or ""),
                local_uri=request.from_, remote_uri=response.to,
                remote_target=request.request_uri, route_set=[],
                local_seq=request.cseq.number, remote_seq=None, is_uac=True,
                peer=invite.destination, state=DialogState.CONFIRMED,
            )  # fmt: skip
        self._ack_2xx(dialog, response, invite.request.cseq.number, tx_key)
        bye = dialog.create_request("BYE", via=self._via(dialog.peer))
        self._send_internal(bye, dialog.destination(), now)

    def _ack_2xx(self, dialog: Dialog, response: Response, cseq: int,
                 tx_key: TransactionKey) -> None:  # fmt: skip
        """Send the ACK of a 2xx (§13.2.2.4) and remember it under the transaction and
        the To tag, so each 2xx (initial INVITE, re-INVITE, each fork) keeps its own
        ACK for its retransmissions until the transaction ends (Timer M)."""
        ack = dialog.create_request("ACK", via=self._via(dialog.peer), cseq=cseq)
        destination = dialog.destination()
        self._acks.setdefault(tx_key, {})[response.to.tag or ""] = (ack, destination)
        self.layer.send_stateless(ack, destination)

    def _reack(self, tx_key: TransactionKey, response: Response) -> bool:
        """Send again the ACK of a 2xx already ACKed on *tx_key*; False if there is none."""
        remembered = self._acks.get(tx_key, {}).get(response.to.tag or "")
        if remembered is None:
            return False
        self.layer.send_stateless(*remembered)
        return True

    def _invite_ended(self, invite: ClientInvite) -> None:
        """The INVITE's transaction is over (Timer M after a 2xx): forget it and its
        early dialogs. It cannot end unheard: if the TU was never told, it is now."""
        del self._invites[invite.handle]
        if not invite.reported:
            self._fail_unusable(invite, None)  # a 2xx whose handling broke: see _pump
        self._drop_early(invite)

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

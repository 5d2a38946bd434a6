"""Dialogs (RFC 3261 §12) and the INVITE-session rules that live with them (§13–15).

A ``Dialog`` is pure state: the dialog ID (Call-ID, local tag, remote tag), the local
and remote sequence numbers, the URIs, the remote target and the route set. It builds
in-dialog requests (§12.2.1.1) and vets incoming ones (§12.2.2). It never sends
anything: ``UserAgentCore`` owns the transactions and the 2xx/ACK retransmissions.

    UAC:  INVITE ──> 1xx with To tag ──> EARLY ──> 2xx ──> CONFIRMED ──> BYE ──> TERMINATED
    UAS:  INVITE <── we send 1xx+tag  ──> EARLY ──> 2xx ──> CONFIRMED ──> BYE ──> TERMINATED

A failure final response or a 2xx for another early dialog terminates an early dialog.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import Enum, auto

from .bindings import ip_or_none
from .errors import LocalProtocolError, RemoteProtocolError
from .headers import MAX_CSEQ, Headers, NameAddr, parse_name_addr
from .message import Request, Response
from .peer import Peer
from .uri import SipUri, Uri, parse_uri


class DialogState(Enum):
    EARLY = auto()
    CONFIRMED = auto()
    TERMINATED = auto()


# (state, input) -> next state. Inputs are the dialog-level facts the UA observes.
class DialogInput(Enum):
    CONFIRM = auto()  # 2xx to the INVITE sent or received
    TERMINATE = auto()  # BYE either way, failure final, ACK timeout, 481/408 on a request


TRANSITIONS: dict[tuple[DialogState, DialogInput], DialogState] = {
    (DialogState.EARLY, DialogInput.CONFIRM): DialogState.CONFIRMED,
    (DialogState.EARLY, DialogInput.TERMINATE): DialogState.TERMINATED,
    (DialogState.CONFIRMED, DialogInput.CONFIRM): DialogState.CONFIRMED,  # 2xx retransmit
    (DialogState.CONFIRMED, DialogInput.TERMINATE): DialogState.TERMINATED,
    (DialogState.TERMINATED, DialogInput.TERMINATE): DialogState.TERMINATED,
}


@dataclass(frozen=True, slots=True)
class DialogId:
    call_id: str
    local_tag: str
    remote_tag: str

    def __str__(self) -> str:
        return f"{self.call_id};{self.local_tag};{self.remote_tag}"


def new_tag() -> str:
    """A From/To tag with 64 bits of randomness (RFC 3261 §19.3 asks for 32)."""
    return secrets.token_hex(8)


def new_branch() -> str:
    """A branch parameter with the RFC 3261 magic cookie (§8.1.1.7)."""
    return "z9hG4bK" + secrets.token_hex(10)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(12)}@{host}"


@dataclass
class Dialog:
    id: DialogId
    local_uri: NameAddr
    "Our party (From of our requests); carries the local tag."
    remote_uri: NameAddr
    remote_target: Uri
    route_set: list[NameAddr]
    local_seq: int
    remote_seq: int | None
    is_uac: bool
    peer: Peer
    "Where in-dialog requests go when the route set and target do not say otherwise."
    state: DialogState = DialogState.EARLY
    secure: bool = False
    local_contact: str = ""
    invite_seq: int = 0
    "CSeq number of the INVITE that made (or last refreshed) the dialog; ACK uses it."
    extra: dict[str, str] = field(default_factory=dict)
    follow_target: bool = False
    "Send to the remote target's address when it is an IP literal (``destination``)."

    # --- construction (§12.1) -------------------------------------------------------

    @classmethod
    def from_uac(cls, request: Request, response: Response, peer: Peer) -> Dialog:
        """The dialog a 1xx-with-tag or 2xx creates for the INVITE we sent (§12.1.2)."""
        to = response.to
        if to.tag is None:
            raise RemoteProtocolError("dialog-creating response without a To tag")
        local = request.from_
        if local.tag is None:
            raise LocalProtocolError("our request has no From tag")
        routes = [parse_name_addr(v) for v in response.headers.get_all("Record-Route")]
        routes.reverse()
        contacts = response.headers.get_all("Contact")
        target = parse_name_addr(contacts[0]).uri if contacts else request.request_uri
        return cls(
            id=DialogId(request.call_id, local.tag, to.tag),
            local_uri=local,
            remote_uri=to,
            remote_target=target,
            route_set=routes,
            local_seq=request.cseq.number,
            remote_seq=None,
            is_uac=True,
            peer=peer,
            state=DialogState.CONFIRMED if response.is_success else DialogState.EARLY,
            secure=isinstance(request.request_uri, SipUri) and request.request_uri.secure,
            local_contact=request.headers.get("Contact") or "",
            invite_seq=request.cseq.number,
        )

    @classmethod
    def from_uas(
        cls, request: Request, local_tag: str, peer: Peer, local_contact: str, local_seq: int = 0
    ) -> Dialog:
        """The dialog our 1xx/2xx to *request* creates (§12.1.1)."""
        remote = request.from_
        if remote.tag is None:
            # RFC 3261 §12.1.1: an RFC 2543 peer may omit the From tag; use an empty one.
            remote = remote.with_params(tag="")
        routes = [parse_name_addr(v) for v in request.headers.get_all("Record-Route")]
        contacts = request.headers.get_all("Contact")
        if not contacts:
            raise RemoteProtocolError("dialog-creating request without Contact")
        target = parse_name_addr(contacts[0]).uri
        local = request.to.with_params(tag=local_tag)
        return cls(
            id=DialogId(request.call_id, local_tag, remote.tag or ""),
            local_uri=local,
            remote_uri=remote,
            remote_target=target,
            route_set=routes,
            local_seq=local_seq or secrets.randbelow(2**16) + 1,
            remote_seq=request.cseq.number,
            is_uac=False,
            peer=peer,
            local_contact=local_contact,
            invite_seq=request.cseq.number,
        )

    # --- state ----------------------------------------------------------------------

    def apply(self, input_: DialogInput) -> DialogState:
        try:
            self.state = TRANSITIONS[self.state, input_]
        except KeyError:
            raise LocalProtocolError(f"{input_.name} in dialog state {self.state.name}") from None
        return self.state

    @property
    def terminated(self) -> bool:
        return self.state is DialogState.TERMINATED

    # --- requests within the dialog (§12.2) -----------------------------------------

    def next_cseq(self) -> int:
        if self.local_seq >= MAX_CSEQ:
            raise LocalProtocolError("CSeq space exhausted")
        self.local_seq += 1
        return self.local_seq

    def create_request(
        self,
        method: str,
        *,
        via: str,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        cseq: int | None = None,
    ) -> Request:
        """Build an in-dialog request (§12.2.1.1). ACK and CANCEL pass their own *cseq*."""
        number = cseq if cseq is not None else self.next_cseq()
        uri: Uri = self.remote_target
        routes = list(self.route_set)
        if routes and not _loose(routes[0]):
            # Strict routing (RFC 2543): the first route becomes the Request-URI and the
            # remote target goes to the end of the Route set.
            uri = routes.pop(0).uri
            routes.append(NameAddr(self.remote_target))
        out = Headers()
        out.add("Via", via)
        out.add("Max-Forwards", "70")
        for route in routes:
            out.add("Route", str(route))
        out.add("From", str(self.local_uri))
        out.add("To", str(self.remote_uri))
        out.add("Call-ID", self.id.call_id)
        out.add("CSeq", f"{number} {method}")
        if self.local_contact and method in ("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"):
            out.add("Contact", self.local_contact)
        for name, value in headers or ():
            out.add(name, value)
        if method == "INVITE":
            self.invite_seq = number
        return Request(out, body, method, str(uri))

    def destination(self) -> Peer:
        """Where in-dialog requests go: by default the peer the dialog was set up with.

        Office phones sit behind NAT (their Contact names a private address), so the
        source of the dialog is the reliable way back (RFC 3581 spirit; RFC 5626 would
        make it formal). A trunk may answer from one address and name another in its
        Contact (RFC 3261 §12.2.1.1: requests go to the remote target): with
        ``follow_target`` set (the UAC asked for it) and no route set, a ``sip:`` remote
        target whose host is an IP literal, over UDP like the dialog, is used. A host
        name would need a DNS look-up the pure core cannot do: the peer is kept then.
        Proxies in between would need the route set resolved by the shell: not
        supported, so not attempted.
        """
        target = self.remote_target
        if not self.follow_target or self.route_set or not isinstance(target, SipUri):
            return self.peer
        transport = (target.transport or "UDP").upper()
        if target.secure or self.peer.transport != "UDP" or transport != "UDP":
            return self.peer
        if ip_or_none(target.host) is None:
            return self.peer
        return Peer(self.peer.transport, target.host, target.port or 5060)

    def receive_request(self, request: Request) -> None:
        """Vet an in-dialog request (§12.2.2). Raises with status 500 for an old CSeq."""
        number = request.cseq.number
        if request.method not in ("ACK", "CANCEL"):
            if self.remote_seq is not None and number < self.remote_seq:
                raise RemoteProtocolError("CSeq lower than the last one", status_hint=500)
            self.remote_seq = number
        if request.method in ("INVITE", "UPDATE"):
            # Target refresh (§12.2.2): a new Contact replaces the remote target.
            contacts = request.headers.get_all("Contact")
            if contacts:
                self.remote_target = parse_name_addr(contacts[0]).uri

    def receive_response(self, response: Response) -> None:
        """Apply a response to a request sent in the dialog (target refresh on 2xx)."""
        if response.is_success and response.cseq.method in ("INVITE", "UPDATE"):
            contacts = response.headers.get_all("Contact")
            if contacts:
                self.remote_target = parse_name_addr(contacts[0]).uri


def _loose(route: NameAddr) -> bool:
    return isinstance(route.uri, SipUri) and route.uri.has_param("lr")


def dialog_id_of_request(request: Request) -> DialogId | None:
    """The ID of the dialog an incoming in-dialog request belongs to, or ``None``."""
    to_tag = request.to.tag
    if not to_tag:
        return None
    return DialogId(request.call_id, to_tag, request.from_.tag or "")


def dialog_id_of_response(response: Response) -> DialogId | None:
    """The ID of the dialog a response to our request belongs to, or ``None``."""
    to_tag = response.to.tag
    from_tag = response.from_.tag
    if not to_tag or not from_tag:
        return None
    return DialogId(response.call_id, from_tag, to_tag)


__all__ = [
    "Dialog",
    "DialogId",
    "DialogInput",
    "DialogState",
    "dialog_id_of_request",
    "dialog_id_of_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_uri",
]

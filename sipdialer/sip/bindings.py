"""Registrar bindings (RFC 3261 §10): the record, its key, where to reach it, events.

A ``Binding`` ties an address-of-record (here: an agent id, the user part of To) to
one Contact, together with what §10.3 step 7 needs (Call-ID, CSeq), when it expires
(``expires_at``, on the registrar's clock) and where its REGISTER came from
(``source``). Contacts of one AOR are told apart by ``contact_key``, which maps two
URIs to the same string exactly when RFC 3261 §19.1.4 calls them equivalent
(``SipUri.equivalent``), so the table can be a dict.

Where to send (``Binding.target``). The contact is trusted only as far as the source
address confirms it: when the contact's host is the very IP address the REGISTER came
from, requests go to the contact's port (a phone may listen on another port than the
one it registers from, as sipp agents do) over the contact's transport. In every other
case (a private address behind NAT, a host name, another IP, a spoofed
``sip:123@1.1.1.1`` from a scanner) they go to the source address and port, over the
transport the REGISTER used. So the dialer only ever sends to an address that has sent
us an authenticated REGISTER, never to one a contact merely names.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cached_property

from .headers import NameAddr, parse_name_addr
from .peer import Peer
from .uri import SipUri

# URI parameters that take part in §19.1.4 comparison (the same list as SipUri.equivalent).
_COMPARED_PARAMS = ("user", "ttl", "method", "maddr", "transport")


def contact_key(uri: SipUri) -> str:
    """A string equal for two URIs exactly when ``SipUri.equivalent`` holds.

    Scheme, user and password compare case-sensitively (already unescaped), the host
    ignores case, the compared parameters ignore case and absent equals empty, other
    parameters are ignored, and URI headers all compare.
    """
    parts = [uri.scheme, uri.user or "", "" if uri.password is None else ":" + uri.password]
    parts += [uri.host.lower(), "" if uri.port is None else str(uri.port)]
    for name in _COMPARED_PARAMS:
        parts.append((uri.param(name) or "").lower())
    parts.append("&".join(f"{k}={v}" for k, v in sorted(dict(uri.headers).items())))
    return "|".join(p.replace("\\", "\\\\").replace("|", "\\|") for p in parts)


def strip_brackets(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def ip_or_none(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(strip_brackets(host))
    except ValueError:
        return None


@dataclass(frozen=True)
class Binding:
    """One registered contact of one AOR. Frozen: updates make a new one."""

    aor: str
    "The address-of-record's user part: the agent id (extension)."
    contact: str
    "The Contact value as it goes into a 200: name-addr with header params, no expires."
    key: str
    "``contact_key`` of the contact's URI: unique within the AOR."
    source: Peer
    "Where the REGISTER came from (transport, IP, port)."
    call_id: str
    cseq: int
    expires_at: float
    "On the registrar's clock (the store keeps wall-clock time; the shell converts)."
    registered_at: float
    "When this contact was first bound (a refresh keeps it)."
    user_agent: str | None = None
    q: float = 1.0
    qualify_supported: bool | None = None
    "None: not asked yet; True: answered an OPTIONS at least once; False: asked, never answered."
    qualify_failures: int = 0
    "Consecutive unanswered OPTIONS since the last answer."

    @cached_property
    def uri(self) -> SipUri:
        return parse_name_addr(self.contact).sip_uri

    def remaining(self, now: float) -> float:
        return max(0.0, self.expires_at - now)

    def target(self) -> Peer:
        """Where to send INVITE and OPTIONS for this binding (module docstring)."""
        return self._target

    @cached_property
    def _target(self) -> Peer:
        uri, source = self.uri, self.source
        contact_ip, source_ip = ip_or_none(uri.host), ip_or_none(source.host)
        if contact_ip is None or contact_ip != source_ip:
            return source
        transport = (uri.transport or "").upper() or source.transport
        if uri.port is not None:
            port = uri.port
        elif transport == source.transport:
            port = source.port  # no port: the one it speaks from is the one it hears on
        else:
            port = 5061 if transport == "TLS" or uri.secure else 5060
        return Peer(transport, source.host, port)

    @property
    def behind_nat(self) -> bool:
        """True when the contact names another address than the one it came from."""
        contact_ip = ip_or_none(self.uri.host)
        return contact_ip is None or contact_ip != ip_or_none(self.source.host)


def contact_value(address: NameAddr) -> str:
    """The stored form of a Contact: without display name and without ``expires``."""
    params = tuple((k, v) for k, v in address.params if k.lower() != "expires")
    return str(NameAddr(address.uri, None, params))


# --- events ---------------------------------------------------------------------------


class RegistrarEvent:
    """Base class of the registrar's events (drained with ``next_event``)."""


@dataclass(frozen=True)
class BindingAdded(RegistrarEvent):
    """A new contact was bound. Persist it; the agent's phone is now reachable."""

    binding: Binding


@dataclass(frozen=True)
class BindingRefreshed(RegistrarEvent):
    """A REGISTER renewed (or, with another Call-ID, replaced) a binding. Persist it."""

    binding: Binding


@dataclass(frozen=True)
class BindingRemoved(RegistrarEvent):
    """A binding went away before its time. Delete it from the store.

    ``reason``: ``unregistered`` (expires 0 or ``Contact: *``) or ``unreachable`` (a
    phone that used to answer OPTIONS stopped answering)."""

    binding: Binding
    reason: str


@dataclass(frozen=True)
class BindingExpired(RegistrarEvent):
    """A binding reached its expiry without a refresh. Delete it from the store."""

    binding: Binding


@dataclass(frozen=True)
class SourceLockedOut(RegistrarEvent):
    """Too many failed authentications: REGISTERs of ``key`` get 403 until ``until``.
    The shell logs it as a WARNING."""

    kind: str
    "``ip`` or ``user``."
    key: str
    until: float
    failures: int
    peer: Peer | None = field(default=None, compare=False)
    "The source of the failure that started the lock."

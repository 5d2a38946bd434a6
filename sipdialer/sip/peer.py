"""The address type of the whole SIP stack: where a message came from or goes to.

A ``Peer`` names a transport flow end: the transport protocol, the host and the port.
For connection-oriented transports the shell maps a ``Peer`` to its connection
(RFC 3261 §18: responses on TCP go back over the connection the request came on), so
the cores never see a socket. Hosts are kept without IPv6 brackets, the form the socket
API wants; ``str()`` adds them back.
"""

from __future__ import annotations

from dataclasses import dataclass

UNRELIABLE_TRANSPORTS = frozenset({"UDP"})
"Transports that can lose messages, so the transaction layer retransmits (RFC 3261 §17)."


@dataclass(frozen=True, slots=True)
class Peer:
    """One end of a SIP transport flow, for example ``Peer("UDP", "192.0.2.1", 5060)``."""

    transport: str
    "Upper-case transport token: UDP, TCP, TLS, SCTP, WS, WSS."
    host: str
    "IP address (IPv6 without brackets) or, before resolution, a host name."
    port: int

    def __post_init__(self) -> None:
        # Normalise instead of refusing: callers build peers from Via headers and
        # socket addresses, which differ only in case and brackets.
        transport = self.transport.upper()
        host = self.host
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not transport or not host:
            raise ValueError(f"empty transport or host in {self.transport!r} {self.host!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port out of range: {self.port}")
        object.__setattr__(self, "transport", transport)
        object.__setattr__(self, "host", host)

    @property
    def reliable(self) -> bool:
        """True when the transport itself retransmits (everything but UDP)."""
        return self.transport not in UNRELIABLE_TRANSPORTS

    @property
    def host_port(self) -> str:
        """``host:port`` with IPv6 brackets, as written in SIP headers."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.transport}:{self.host_port}"

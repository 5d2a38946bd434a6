"""Exceptions of the SIP core.

``RemoteProtocolError`` is the peer's fault and carries the status code a UAS should
answer with (h11's ``error_status_hint``); the transport shell catches only that class.
``LocalProtocolError`` is our own bug and propagates.
"""

from __future__ import annotations


class SipError(Exception):
    """Base class of every error raised by ``sipdialer.sip``."""


class ProtocolError(SipError):
    """A violation of the protocol; ``status_hint`` is the SIP status to answer with."""

    def __init__(self, message: str, *, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint
        "Status code a UAS should send in reply (400 unless the rule names another)."

    @property
    def reason(self) -> str:
        """The message, usable as a reason phrase (one line, printable ASCII)."""
        text = str(self).replace("\r", " ").replace("\n", " ")
        return "".join(ch if " " <= ch <= "~" else "?" for ch in text)[:120]


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol forbids (a bug in the caller)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something we cannot accept."""


class ParseError(RemoteProtocolError):
    """The bytes are not a well-formed SIP message, header or URI."""

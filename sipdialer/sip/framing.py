"""Cutting a TCP (or TLS) byte stream into SIP messages (RFC 3261 §18.3).

Sans-IO, h11 style: the shell calls ``feed(data)`` with whatever the socket gave it,
then ``next_message()`` until it returns ``None``; each message comes out as the exact
bytes to hand to ``parse_message(..., stream=True)``.

Framing rules:

- A message is its header section up to the first blank line, then exactly
  Content-Length octets of body. Content-Length is mandatory on a stream (§18.3,
  §20.14), in its long or compact (``l:``) form.
- CRLFs between messages are not messages. RFC 5626 §3.5.1 gives them a meaning: a
  double CRLF is a keep-alive *ping*, to be answered with a single CRLF *pong*. The
  framer counts pings (``pop_keepalives()``; the shell writes ``b"\\r\\n"`` for each)
  and single CRLFs (``pop_pongs()``, for the side that sent a ping). A lone CRLF at
  the very end of the buffer may be the first half of a ping still in flight, so it
  stays buffered until the next bytes decide it — except that ``pop_pongs()`` takes
  it as a pong: only a client asks, and servers never ping clients.
- Violations raise ``ParseError``: a header section over ``max_header_size``, a
  message over ``max_message_size`` (status hint 513; the others 400), a missing,
  malformed or conflicting Content-Length. Framing is then lost for good, so the
  framer stays broken (every later call raises the same error) and the shell must
  close the connection.
"""

from __future__ import annotations

from .errors import ParseError
from .grammar import is_digits
from .message import MAX_MESSAGE_SIZE

__all__ = ["MAX_HEADER_SIZE", "PONG", "StreamFramer"]

MAX_HEADER_SIZE = 16384
"Largest header section (start line and headers) a stream may send before its blank line."

PONG = b"\r\n"
"RFC 5626 §3.5.1: what the shell writes back for each ping."

_CONTENT_LENGTH_NAMES = (b"content-length", b"l")


class StreamFramer:
    """Stateful splitter for one connection's inbound bytes."""

    def __init__(
        self,
        *,
        max_header_size: int = MAX_HEADER_SIZE,
        max_message_size: int = MAX_MESSAGE_SIZE,
    ) -> None:
        self.max_header_size = max_header_size
        self.max_message_size = max_message_size
        self._buffer = bytearray()
        self._scan_from = 0
        "Where to resume looking for the blank line (no rescanning when fed byte by byte)."
        self._header_end = -1
        "Offset of the blank line of the message being received, once found."
        self._body_length = 0
        self._pings = 0
        self._pongs = 0
        self._error: ParseError | None = None

    @property
    def keepalive_count(self) -> int:
        """Pings received and not yet popped (``pop_keepalives`` resets it)."""
        self._consume_crlfs()
        return self._pings

    @property
    def buffered(self) -> int:
        """Octets received but not yet returned as a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._buffer += data

    def pop_keepalives(self) -> int:
        """Pings (double CRLFs) received since the last call; answer each with ``PONG``."""
        self._consume_crlfs()
        count, self._pings = self._pings, 0
        return count

    def pop_pongs(self) -> int:
        """Pongs (single CRLFs) received since the last call, a trailing one included."""
        self._consume_crlfs()
        if self._header_end < 0 and self._buffer == b"\r\n":
            del self._buffer[:]
            self._scan_from = 0
            self._pongs += 1
        count, self._pongs = self._pongs, 0
        return count

    def next_message(self) -> bytes | None:
        """The next complete message, or ``None`` until more bytes are fed."""
        if self._error is not None:
            raise self._error
        try:
            return self._next_message()
        except ParseError as exc:
            self._error = exc
            raise

    def _next_message(self) -> bytes | None:
        buffer = self._buffer
        if self._header_end < 0:
            self._consume_crlfs()
            end = buffer.find(b"\r\n\r\n", self._scan_from)
            if end < 0:
                if len(buffer) > self.max_header_size:
                    raise ParseError("header section too large")
                self._scan_from = max(0, len(buffer) - 3)
                return None
            if end > self.max_header_size:
                raise ParseError("header section too large")
            self._body_length = self._content_length(bytes(buffer[:end]))
            self._header_end = end
            if end + 4 + self._body_length > self.max_message_size:
                raise ParseError("message too large", status_hint=513)
        total = self._header_end + 4 + self._body_length
        if len(buffer) < total:
            return None
        message = bytes(buffer[:total])
        del buffer[:total]
        self._header_end = -1
        self._scan_from = 0
        return message

    def _consume_crlfs(self) -> None:
        """Eat the CRLFs in front of the next message, counting pings and pongs."""
        if self._header_end >= 0:
            return
        buffer = self._buffer
        start = 0
        while True:
            if buffer.startswith(b"\r\n\r\n", start):
                self._pings += 1
                start += 4
            elif buffer.startswith(b"\r\n", start) and len(buffer) - start > 2:
                if buffer[start + 2 : start + 3] == b"\r" and len(buffer) - start == 3:
                    break  # "\r\n\r": wait for the byte that decides it
                self._pongs += 1
                start += 2
            else:
                break
        if start:
            del buffer[:start]
            self._scan_from = 0

    def _content_length(self, head: bytes) -> int:
        value: bytes | None = None
        for line in head.split(b"\r\n")[1:]:
            if not line or line[:1] not in b"lLcC":
                continue
            name, colon, rest = line.partition(b":")
            if not colon or name.rstrip(b" \t").lower() not in _CONTENT_LENGTH_NAMES:
                continue
            rest = rest.strip(b" \t")
            if value is not None and rest != value:
                raise ParseError("conflicting Content-Length values")  # RFC 4475 mcl01
            value = rest
        if value is None:
            raise ParseError("missing Content-Length on a stream transport")
        text = value.decode("latin-1")
        if not is_digits(text) or len(text) > 10:
            raise ParseError(f"bad Content-Length {text[:20]!r}")
        length = int(text)
        if length > self.max_message_size:
            raise ParseError("message too large", status_hint=513)
        return length

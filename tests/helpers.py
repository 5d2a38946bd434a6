"""Shared test helpers: fixtures from ``tests/data``, readable CRLF messages, free ports."""

from __future__ import annotations

import socket
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def load(name: str) -> bytes:
    """The exact bytes of ``tests/data/<name>`` (for example ``rfc4475/wsinv.dat``)."""
    return (DATA / name).read_bytes()


def crlf(text: str) -> bytes:
    """A message written with ``\\n`` line ends, as sent on the wire (CRLF, UTF-8)."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")

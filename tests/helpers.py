"""Shared test helpers: fixtures from ``tests/data`` and readable CRLF messages."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def load(name: str) -> bytes:
    """The exact bytes of ``tests/data/<name>`` (for example ``rfc4475/wsinv.dat``)."""
    return (DATA / name).read_bytes()


def crlf(text: str) -> bytes:
    """A message written with ``\\n`` line ends, as sent on the wire (CRLF, UTF-8)."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")

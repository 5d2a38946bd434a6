"""Helpers for real-socket tests: free ports and bounded external programs."""

from __future__ import annotations

import shutil
import socket

import pytest


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
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


SIPP = shutil.which("sipp")
needs_sipp = pytest.mark.skipif(
    SIPP is None and not __import__("os").environ.get("CI"),
    reason="sipp (Debian sip-tester) not installed; CI installs it",
)

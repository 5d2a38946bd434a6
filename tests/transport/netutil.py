"""Helpers for real-socket tests: free ports and bounded external programs."""

from __future__ import annotations

import shutil

import pytest
from helpers import free_port

__all__ = ["free_port", "needs_sipp"]


SIPP = shutil.which("sipp")
needs_sipp = pytest.mark.skipif(
    SIPP is None and not __import__("os").environ.get("CI"),
    reason="sipp (Debian sip-tester) not installed; CI installs it",
)

"""Property-based run over the API's OpenAPI document: no request makes the server fail.

The running dialer (tests/api/apirig.py: PhoneSystem, DialerRunner, uvicorn, a SimTrunk
and a SimPhone) runs in a thread with its own event loop; hypothesis drives a plain httpx
client against it over real HTTP. For every ``/api/v2`` operation it draws requests from
the operation's schemas (built by FastAPI from the pydantic models), mixing valid values,
near-misses and arbitrary JSON (tests/api/openapi_strategies.py). Members really get
dialed while this runs (the agent is made Available, campaigns are run and stopped), so
status results also meet members that wait. The property: no 5xx, and every reply is JSON
(or an empty 204/304) of a documented status code.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from apirig import HEADERS, running_dialer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_strategies import operations, requests

EXAMPLES = int(os.environ.get("SIPDIALER_FUZZ_EXAMPLES", "60"))
"Requests per operation (14 operations: about 10 s in all here); raise it for a long hunt."
# Replies any route may give besides those it documents: FastAPI's and Starlette's own.
GENERIC = {307, 400, 401, 404, 405, 413, 422}  # 307: Starlette's trailing-slash redirect


class DialerThread:
    """``running_dialer`` in a thread; ``base`` once started, stopped by :meth:`stop`."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.base = ""
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="dialer", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(20):
            raise TimeoutError("the dialer did not start")
        if self.error is not None:
            raise self.error

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start() or the test
            self.error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running_dialer(self.tmp_path, ports=48000) as rig:
            self.base = rig.base
            self._ready.set()
            await self._stop.wait()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)


@pytest.fixture(scope="module")
def dialer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DialerThread]:
    running = DialerThread(tmp_path_factory.mktemp("fuzz"))
    running.start()
    try:
        yield running
    finally:
        running.stop()
    assert running.error is None, running.error


@pytest.fixture(scope="module")
def client(dialer: DialerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dialer.base, headers=HEADERS, timeout=10) as http:
        # Give the fuzzer something to find: members in both campaigns, an agent that
        # takes calls (numbers 1xxx are answered, so members end up waiting for results).
        http.put("/api/v2/agents/101/status", json={"status": "Available"}).raise_for_status()
        for campaign, prefix in (("plain", "19"), ("wfr", "11")):
            members = [{"communications": [{"number": f"{prefix}{i:02}"}]} for i in range(8)]
            http.post(f"/api/v2/dialer/{campaign}/members", json=members).raise_for_status()
        yield http


@pytest.fixture(scope="module")
def spec(client: httpx.Client) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def test_the_document_lists_every_operation(spec: dict[str, Any]) -> None:
    assert len(operations(spec)) == 18


@pytest.mark.parametrize("index", range(18))
def test_no_request_makes_the_server_fail(
    index: int, spec: dict[str, Any], client: httpx.Client, dialer: DialerThread
) -> None:
    op = operations(spec)[index]
    seen: Counter[int] = Counter()

    slow = [HealthCheck.too_slow, HealthCheck.filter_too_much]

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=slow)
    @given(request=requests(op), authorised=st.sampled_from([True] * 9 + [False]))
    def check(request: dict[str, Any], authorised: bool) -> None:
        headers = None if authorised else {"X-Access-Token": "x", "X-Key": "y"}
        reply = client.request(**request, headers=headers)
        seen[reply.status_code] += 1
        assert reply.status_code < 500, (request, reply.status_code, reply.text)
        documented = {int(code) for code in op.operation["responses"]} | GENERIC
        assert reply.status_code in documented, (request, reply.status_code, reply.text)
        if reply.status_code not in (204, 304, 307):
            reply.json()
        if not authorised:
            assert reply.status_code in (401, 404, 405), (request, reply.text)

    check()
    print(op.method, op.path, dict(seen))
    assert dialer.error is None
    assert client.get("/api/v2/dialer").status_code == 200  # still serving

"""Helpers for the interop tests against real SIP programs (sipp, baresip, pyVoIP,
sipvicious): a PhoneSystem with a registrar tuned for short refreshes, bounded
subprocesses stopped by PID, polling, and the files under ``tests/data/peers``.

Every external program runs under ``timeout -k`` with its own time bound as well, on
127.0.0.1 only, and is stopped by its PID (never by name). A missing program skips
the test on a developer's machine and fails it under CI (``CI`` set), like
``netutil.needs_sipp``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import sys
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sipdialer.app import PhoneSystem
from sipdialer.config import parse_config
from sipdialer.sip.bindings import Binding, RegistrarEvent
from sipdialer.transport.registrar import build_registrar

DATA = Path(__file__).resolve().parent.parent / "data" / "peers"
DEBIAN_PACKAGE = {"sipp": "sip-tester", "baresip": "baresip-core", "svwar": "sipvicious"}


def program(name: str) -> str:
    """The path of *name*; skip when missing, unless under CI, where it must be there."""
    path = shutil.which(name)
    if path is not None:
        return path
    package = DEBIAN_PACKAGE.get(name, name)
    message = f"{name} not installed (Debian {package}; .ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def python_module(name: str) -> None:
    """Skip when *name* cannot be imported (the dev extras install it), unless under CI."""
    if importlib.util.find_spec(name) is not None:
        return
    message = f"Python module {name} not installed (pip install -e '.[dev]')"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_udp_range(count: int) -> int:
    """The first (even) port of *count* consecutive UDP ports free on 127.0.0.1 now."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1]) & ~1
        if base + count > 65535:
            continue
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return base
    raise RuntimeError("no free UDP port range")


# --- the system under test ----------------------------------------------------------


def config_text(db: Path, agents: dict[str, str], *, qualify_interval: float,
                rtp_base: int) -> str:  # fmt: skip
    text = f"""
[sip]
listen = "127.0.0.1:0"
qualify_interval = {qualify_interval}
t1 = 0.1
t2 = 0.8
t4 = 1.0
[media]
rtp_ports = "{rtp_base}-{rtp_base + 19}"
[store]
url = "sqlite:///{db}"
"""
    for agent_id, password in agents.items():
        text += f'[[agents]]\nid = "{agent_id}"\npassword = "{password}"\n'
    return text


class System:
    """A started ``PhoneSystem`` plus every registrar event it emitted, in order."""

    def __init__(self, phone_system: PhoneSystem) -> None:
        self.ps = phone_system
        self.events: list[RegistrarEvent] = []
        phone_system.registrar.on_event(self.events.append)
        assert phone_system.address is not None
        self.host, self.port = phone_system.address

    def bindings(self, agent_id: str) -> list[Binding]:
        return self.ps.registrar.lookup(agent_id)

    def of(self, kind: type[RegistrarEvent]) -> list[RegistrarEvent]:
        return [e for e in self.events if isinstance(e, kind)]


@contextlib.asynccontextmanager
async def phone_system(
    tmp_path: Path,
    agents: dict[str, str],
    *,
    min_expires: int = 2,
    qualify_interval: float = 30.0,
) -> AsyncIterator[System]:
    """A PhoneSystem on 127.0.0.1 (any free port) for *agents* (id → password).

    Its registrar is rebuilt by ``build_registrar(..., base=...)`` from the one
    PhoneSystem made, with a small ``min_expires`` (the production default, 60 s,
    would answer 423 to the short expiries these tests ask for, so that refreshes
    happen within seconds)."""
    config = parse_config(config_text(tmp_path / "interop.db", agents,
                                      qualify_interval=qualify_interval,
                                      rtp_base=free_udp_range(20)))  # fmt: skip
    ps = PhoneSystem(config)
    # The registrar PhoneSystem built (so the production choices, e.g. the digest
    # algorithms offered), with only min_expires changed.
    base = replace(ps.registrar.registrar.config, min_expires=min_expires)
    ps.registrar.registrar = build_registrar(config.sip, config.agents, base=base)
    await ps.start()
    try:
        yield System(ps)
    finally:
        await ps.close()


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
                     log: Callable[[], str] = lambda: "") -> None:  # fmt: skip
    """Poll *predicate* every 50 ms; fail with *what* (and *log*) after *timeout* s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{log()}")
        await asyncio.sleep(0.05)


# --- bounded external programs ------------------------------------------------------


class Program:
    """One external program run as ``timeout -k 3 LIMIT argv...`` (output to a log
    file), stopped by the PID of that ``timeout`` process, which passes the signal on."""

    def __init__(self, argv: list[str], log_path: Path, *, limit: float,
                 cwd: Path | None = None, env: dict[str, str] | None = None,
                 stdin_pipe: bool = False) -> None:  # fmt: skip
        self.argv = argv
        self.log_path = log_path
        self.limit = limit
        self.cwd = cwd
        self.env = env
        self.stdin_pipe = stdin_pipe
        self.process: asyncio.subprocess.Process | None = None
        self._log_file: object = None

    async def start(self) -> Program:
        timeout = program("timeout")
        log = self.log_path.open("wb")
        self._log_file = log
        self.process = await asyncio.create_subprocess_exec(
            timeout, "-k", "3", f"{self.limit:g}", *self.argv,
            stdin=asyncio.subprocess.PIPE if self.stdin_pipe else asyncio.subprocess.DEVNULL,
            stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=self.cwd, env=self.env,
            start_new_session=True,  # its own process group: ``timeout`` and its child
        )  # fmt: skip
        return self

    def log(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return f"--- {self.argv[0]} log ({self.log_path}) ---\n{text[-6000:]}"

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    async def send_line(self, line: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await self.process.stdin.drain()

    async def wait(self, timeout: float) -> int:
        """The exit status; fails (after stopping it) when it runs past *timeout*."""
        assert self.process is not None
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            await self.stop()
            raise AssertionError(f"{self.argv[0]} still running after {timeout} s\n"
                                 f"{self.log()}") from None  # fmt: skip

    async def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM to our ``timeout`` process (it forwards it to the program), then
        SIGKILL to the process group it leads (that PID's group: itself and its child)."""
        process = self.process
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        if process.stdin is not None:
            process.stdin.close()
        log = self._log_file
        if log is not None:
            log.close()  # type: ignore[attr-defined]
            self._log_file = None
        return process.returncode


@contextlib.asynccontextmanager
async def running(prog: Program) -> AsyncIterator[Program]:
    """Start *prog*; whatever happens, stop it by PID on the way out."""
    await prog.start()
    try:
        yield prog
    finally:
        await prog.stop()


PYTHON = sys.executable


# --- baresip ------------------------------------------------------------------------


def write_tone_wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    """A 16-bit mono PCM WAV of a quiet 1 kHz tone (baresip's aufile source; aufile
    hangs up at the end of the file, so *seconds* bounds every call it makes)."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (3000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def fill(template: Path, out: Path, values: dict[str, object]) -> Path:
    text = template.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", str(value))
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    left = re.findall(r"@[A-Z_]+@", body)
    assert not left, f"unfilled placeholders in {template}: {left}"
    out.write_text(text)
    return out


class BaresipCtrl:
    """baresip's ctrl_tcp: netstring-framed JSON commands; responses and events
    (``{"event": true, "type": "CALL_CLOSED", ...}``) arrive on the same connection.
    The asyncio form of ``shared/peers/tools/bctl.py``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.messages: list[dict[str, object]] = []
        self._token = 0
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, port: int, timeout: float = 10.0,
                      log: Callable[[], str] = lambda: "") -> BaresipCtrl:  # fmt: skip
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                return cls(reader, writer)
            except OSError:
                if loop.time() > deadline:
                    raise AssertionError(f"baresip ctrl_tcp not listening\n{log()}") from None
                await asyncio.sleep(0.1)

    async def _read(self) -> None:
        buf = b""
        while chunk := await self.reader.read(65536):
            buf += chunk
            while b":" in buf:
                size, rest = buf.split(b":", 1)
                if not size.isdigit() or len(rest) < int(size) + 1:
                    break
                body, buf = rest[: int(size)], rest[int(size) + 1 :]
                with contextlib.suppress(ValueError):
                    self.messages.append(json.loads(body))

    async def command(self, command: str, params: str = "") -> None:
        self._token += 1
        body = json.dumps({"command": command, "params": params, "token": str(self._token)})
        data = body.encode()
        self.writer.write(b"%d:%s," % (len(data), data))
        await self.writer.drain()

    def events(self, kind: str) -> list[dict[str, object]]:
        return [m for m in self.messages if m.get("event") and m.get("type") == kind]

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await self._task
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()

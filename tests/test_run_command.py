"""``sipdialer run -c FILE`` as a real child process: it serves SIP on ``[sip] listen``
(OPTIONS over UDP and TCP), stops cleanly on SIGTERM and SIGINT (exit status 0, a
"stopping" line in its log), and refuses an invalid configuration with exit status 1
and the key path of each problem on stderr, without binding anything."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import free_port

from sipdialer.sip.message import Response, parse_message

ROOT = Path(__file__).resolve().parent.parent
STARTUP = 10.0
"Seconds the child may take to import and bind before the test gives up."
STOP = 5.0
"Seconds it may take to stop after a signal."

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def start(config: Path) -> subprocess.Popen[str]:
    """``python -m sipdialer run -c CONFIG``, importing this checkout."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "sipdialer", "run", "-c", str(config)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=ROOT, env=env,
    )  # fmt: skip


def options(port: int, local: tuple[str, int], transport: str, branch: str) -> bytes:
    host, local_port = local
    return (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {host}:{local_port};branch=z9hG4bK-{branch};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=probe\r\n"
        f"To: <sip:127.0.0.1:{port}>\r\nCall-ID: {branch}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def options_udp(port: int, process: subprocess.Popen[str]) -> Response:
    """Probe with OPTIONS every 100 ms until the child answers (it is still starting)."""
    deadline = time.monotonic() + STARTUP
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.1)
        attempt = 0
        while time.monotonic() < deadline:
            assert process.poll() is None, f"sipdialer run exited early: {process.returncode}"
            attempt += 1
            sock.sendto(options(port, sock.getsockname(), "UDP", f"u{attempt}"),
                        ("127.0.0.1", port))  # fmt: skip
            try:
                data = sock.recv(65536)
            except OSError:  # timeout, or ICMP port unreachable before it binds
                continue
            response = parse_message(data)
            assert isinstance(response, Response)
            return response
    raise AssertionError(f"no answer to OPTIONS on UDP port {port} within {STARTUP} s")


def options_tcp(port: int) -> Response:
    with socket.create_connection(("127.0.0.1", port), timeout=STOP) as sock:
        sock.sendall(options(port, sock.getsockname(), "TCP", "t1"))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, "connection closed before a response"
            data += chunk
    head = data[: data.index(b"\r\n\r\n") + 4]
    response = parse_message(head, stream=True)
    assert isinstance(response, Response)
    assert response.headers.get("Content-Length") == "0"
    return response


def check_options_answer(response: Response, branch: str) -> None:
    assert response.status_code == 200
    assert f"z9hG4bK-{branch}" in (response.header("Via") or "")
    assert response.cseq.method == "OPTIONS"
    allow = [m.strip() for m in (response.header("Allow") or "").split(",")]
    assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"} <= set(allow)
    assert response.header("Accept") == "application/sdp"
    assert response.header("Supported") is not None


API_PORT: dict[Path, int] = {}
"The [api] listen port written into each test's configuration."


@pytest.fixture
def config(tmp_path: Path) -> tuple[Path, int]:
    port, api_port = free_port(), free_port()
    path = tmp_path / "dialer.toml"
    path.write_text(
        f'[sip]\nlisten = "127.0.0.1:{port}"\nt1 = 0.05\nt2 = 0.4\nt4 = 0.5\n'
        f'[store]\nurl = "sqlite:///{tmp_path / "dialer.db"}"\n'
        f'[api]\nlisten = "127.0.0.1:{api_port}"\n'
        '[[calendars]]\nname = "always"\ntimezone = "UTC"\n'
        'week = { mon = ["00:00-24:00"] }\n'
        '[[campaigns]]\nname = "reminders"\ncalendar = "always"\n'
    )
    API_PORT[path] = api_port
    return path, port


def api_get(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """GET over real HTTP, retried while the child is still starting its API."""
    deadline = time.monotonic() + STARTUP
    while True:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=2) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_run_serves_options_and_stops_on_signal(
    config: tuple[Path, int], stop_signal: signal.Signals
) -> None:
    path, port = config
    process = start(path)
    try:
        udp = options_udp(port, process)
        branch = udp.top_via.branch or ""
        check_options_answer(udp, branch.removeprefix("z9hG4bK-"))
        check_options_answer(options_tcp(port), "t1")
        # The REST API is served by the same process, behind the default token pair.
        api = API_PORT[path]
        token = {"X-Access-Token": "change-me", "X-Key": "change-me-too"}
        status, body = api_get(api, "/api/v2/dialer", token)
        assert status == 200 and b"reminders" in body, body
        assert api_get(api, "/api/v2/dialer", {})[0] == 401
        status, body = api_get(api, "/api/v2/dialer/reminders/settings", token)
        assert status == 200 and str(path.resolve()).encode() in body, body
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=STOP)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    lines = err.splitlines()
    assert any(f"SIP listening on 127.0.0.1:{port}" in line for line in lines), err
    assert any(line.endswith("sipdialer: stopping") for line in lines), err
    assert "Traceback" not in err
    assert out == ""


def test_run_with_bad_config_exits_1_with_key_paths(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[sip]\nlisten = "127.0.0.1:0"\nt1 = -1\nqualify_intervall = 30\n')
    process = start(bad)
    try:
        out, err = process.communicate(timeout=STARTUP)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, err
    assert out == ""
    lines = err.splitlines()
    assert any(line.startswith("sip.t1: ") for line in lines), err
    assert 'sip.qualify_intervall: unknown key; did you mean "qualify_interval"?' in lines
    assert lines[-1] == f"FAILED: {bad} (2 problems)"
    assert "Traceback" not in err
    assert "SIP listening" not in err  # it never got as far as binding

"""sipvicious 0.3.3 (Debian ``sipvicious``) ``svwar``, the extension scanner attackers
run, against a PhoneSystem with agents 101 and 105: scanning 100-110 it finds NO
extension, because an unknown user is answered exactly like a known one (the same 401
challenge for REGISTER and INVITE; OPTIONS does not look at the user at all).

How svwar decides (sipvicious/svwar.py): it first asks for a random extension and keeps
that answer's first line as "bad user". A 401 there makes it stop ("authentication
request for an unknown extension", found nothing); with ``--force`` it scans anyway, but
an answer equal to the bad user's is no find, and a 401 equal to it is "an unknown
response" that ends the scan: found nothing again. svwar sends no credentials, so the
scan must not count as failed authentications (no lockout of 127.0.0.1).

Never ``-R`` (reports back to the author) or ``-A`` (looks up our address outside);
127.0.0.1 only; HOME is a scratch folder (svwar keeps sessions there).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from pathlib import Path

import pytest
from helpers import free_port
from peers import Program, phone_system, program, running

from sipdialer.sip.bindings import SourceLockedOut
from sipdialer.sip.peer import Peer

pytestmark = pytest.mark.interop


@pytest.mark.parametrize(
    ("method", "force"),
    [("REGISTER", False), ("REGISTER", True), ("OPTIONS", True), ("INVITE", False)],
)
async def test_svwar_finds_no_extension(tmp_path: Path, method: str, force: bool) -> None:
    svwar = program("svwar")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    async with phone_system(tmp_path, {"101": "secret101", "105": "secret105"}) as system:
        argv = [
            svwar, "-b", "127.0.0.1", "-P", str(free_port()), "-x", "127.0.0.1",
            "-p", str(system.port), "-m", method, "-e", "100-110", "--maximumtime", "5", "-v",
            *(["--force"] if force else []), "127.0.0.1",
        ]  # fmt: skip
        prog = Program(argv, tmp_path / "svwar.log", limit=25, cwd=tmp_path, env=env)
        async with running(prog):
            code = await prog.wait(25)
        log = prog.log()
        assert code == 0, log
        assert "found nothing" in log, log
        assert "exists" not in log, log  # svwar's "extension 'N' exists - ..." lines
        core = system.ps.registrar.registrar
        assert core.stats["failures"] == 0 and core.stats["ok"] == 0, core.stats
        assert not system.of(SourceLockedOut)
        assert not system.ps.registrar.is_locked_out(Peer("UDP", "127.0.0.1", 5060))
        assert not system.ps.registrar.is_registered("101")
        assert not system.ps.registrar.is_registered("105")


def _register(user: str, port: int, local: int, n: int) -> bytes:
    """An svwar-like REGISTER (no credentials) for *user*, as bytes."""
    return (
        f"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-{n:08d};rport\r\n"
        f'From: "{user}"<sip:{user}@127.0.0.1>;tag=t{n:08d}\r\n'
        f'To: "{user}"<sip:{user}@127.0.0.1>\r\n'
        f"Call-ID: c{n:08d}\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
        f"Contact: <sip:{user}@127.0.0.1:{local}>\r\nExpires: 3600\r\n"
        f"User-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n"
    ).encode()


_VARYING = [  # what differs between any two answers, whoever is asked
    (rb"branch=z9hG4bK-\d+", b"branch=B"), (rb"tag=[^\s;>]+", b"tag=T"),
    (rb"Call-ID: c\d+", b"Call-ID: C"), (rb'nonce="[^"]*"', b'nonce="N"'),
    (rb"Date: [^\r]*", b"Date: D"), (rb"sip:\d+@", b"sip:U@"), (rb'"\d+"<', b'"U"<'),
]  # fmt: skip


async def test_known_and_unknown_extensions_get_the_same_answer(tmp_path: Path) -> None:
    """What svwar compares, for every extension of the range: the unauthenticated
    REGISTER of 101 and 105 (agents) and of the others gets the same bytes, once the
    per-request values (tags, branch, Call-ID, nonce, Date, the user) are masked."""
    async with phone_system(tmp_path, {"101": "secret101", "105": "secret105"}) as system:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        local = sock.getsockname()[1]
        answers: dict[str, bytes] = {}
        try:
            for n, user in enumerate(str(u) for u in range(100, 111)):
                await loop.sock_sendto(sock, _register(user, system.port, local, n),
                                       (system.host, system.port))  # fmt: skip
                data = await asyncio.wait_for(loop.sock_recv(sock, 65536), 5)
                for pattern, mask in _VARYING:
                    data = re.sub(pattern, mask, data)
                answers[user] = data
        finally:
            sock.close()
        assert answers["101"].startswith(b"SIP/2.0 401 ")
        assert len(set(answers.values())) == 1, answers
        assert system.ps.registrar.registrar.stats["failures"] == 0

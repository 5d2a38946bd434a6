"""The hostile input of ``test_hostile_soak.py``, drawn from a seeded ``random.Random``:
mutations of real SIP messages, in-dialog garbage for a live call, RTP/RTCP garbage.
Every draw whose range depends on the data or on timing takes exactly one ``random()``
(``at``), so a seed gives each generator the same sequence of choices run after run."""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from sipdialer.sip.message import Request, Response, parse_message

# --- byte-level helpers -------------------------------------------------------------------


def at(rng: random.Random, n: int) -> int:
    """An index below *n* (0 when *n* is 0) from exactly one draw, whatever *n*: the lists
    drawn from (the templates seen so far, a message's headers) depend on timing, and
    ``randrange`` would consume a varying number of bits and shift every later draw."""
    return int(rng.random() * n) if n > 0 else 0


def pick(rng: random.Random, items: list[bytes]) -> bytes:
    return items[at(rng, len(items))] if items else b""


def split(data: bytes) -> tuple[bytes, list[bytes], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    return lines[0], lines[1:], body


def join(start: bytes, headers: list[bytes], body: bytes, *, fix_length: bool = True) -> bytes:
    if fix_length:
        headers = [h for h in headers if not h.lower().startswith((b"content-length:", b"l:"))]
        headers.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join([start, *headers]) + b"\r\n\r\n" + body


def readdress(data: bytes, attacker: tuple[str, int], n: int) -> bytes:
    """A request's top Via pointed at *attacker* (rport, branch ``z9hG4bK-soak-n``), so the
    dialer's answers come to us and can be matched; a response is left as it is."""
    start, headers, body = split(data)
    if start.startswith(b"SIP/2.0"):
        return data
    via = b"Via: SIP/2.0/UDP %s:%d;rport;branch=z9hG4bK-soak-%d" % (
        attacker[0].encode(),
        attacker[1],
        n,
    )
    for i, line in enumerate(headers):
        if line.lower().startswith((b"via:", b"v:")):
            headers[i] = via
            break
    else:
        headers.insert(0, via)
    return join(start, headers, body, fix_length=False)


def _replace_header(headers: list[bytes], name: bytes, value: bytes) -> list[bytes]:
    out = [h for h in headers if not h.lower().startswith(name.lower() + b":")]
    return [*out, name + b": " + value]


def _header(headers: list[bytes], name: bytes) -> bytes:
    for line in headers:
        if line.lower().startswith(name.lower() + b":"):
            return line.split(b":", 1)[1].strip()
    return b""


INVALID_UTF8 = (b"\xff\xfe", b"\xc0\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80")


def mutate(rng: random.Random, data: bytes, live_call_ids: list[bytes]) -> tuple[str, bytes]:
    """One hostile variant of *data*: (the mutation's name, the bytes)."""
    start, headers, body = split(data)
    kind = rng.choice(MUTATIONS)
    if kind == "flip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            out[at(rng, len(out))] = rng.randrange(256)
        return kind, bytes(out)
    if kind == "truncate":
        return kind, data[: at(rng, len(data))]
    if kind == "duplicate" and headers:
        i = at(rng, len(headers))
        headers.insert(i, headers[i])
    elif kind == "remove" and headers:
        del headers[at(rng, len(headers))]
    elif kind == "huge_header":
        headers.insert(
            at(rng, len(headers) + 1), b"X-Huge: " + b"a" * rng.choice((1000, 8000, 40000))
        )
    elif kind == "content_length_lie":
        value = rng.choice((b"-1", b"99999", b"0", b"1e3", b"0x10", b"", b"%d" % (len(body) + 7)))
        return kind, join(
            start, _replace_header(headers, b"Content-Length", value), body, fix_length=False
        )
    elif kind == "via_no_branch":
        headers = [
            re.sub(rb";branch=[^;,\s]*", b"", h) if h.lower().startswith(b"via:") else h
            for h in headers
        ]
    elif kind == "cseq_mismatch":
        number = _header(headers, b"CSeq").split(b" ")[0] or b"1"
        method = rng.choice((b"INVITE", b"BYE", b"ACK", b"FOO", b"", b"invite"))
        headers = _replace_header(headers, b"CSeq", number + b" " + method)
    elif kind == "tags":
        name = rng.choice((b"To", b"From"))
        value = re.sub(rb";tag=[^;>\s]*", b"", _header(headers, name))
        if rng.random() < 0.7:
            value += b";tag=" + rng.randbytes(6).hex().encode()
        headers = _replace_header(headers, name, value)
    elif kind == "live_call_id" and live_call_ids:
        headers = _replace_header(headers, b"Call-ID", pick(rng, live_call_ids))
        for name in (b"To", b"From"):
            value = re.sub(rb";tag=[^;>\s]*", b"", _header(headers, name))
            headers = _replace_header(headers, name, value + b";tag=wrong%d" % rng.randrange(99))
    elif kind == "max_forwards_0":
        headers = _replace_header(headers, b"Max-Forwards", rng.choice((b"0", b"-1", b"x", b"")))
    elif kind == "big_body":
        body = rng.randbytes(rng.choice((16000, 60000)))
    elif kind == "nul":
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            out.insert(at(rng, len(out) + 1), 0)
        return kind, bytes(out)
    elif kind == "bad_utf8" and headers:
        i = at(rng, len(headers))
        headers[i] += rng.choice(INVALID_UTF8)
    elif kind == "flip_kind":
        start = (
            b"SIP/2.0 " + rng.choice((b"200 OK", b"180 Ringing", b"487 x", b"999 ?"))
            if not start.startswith(b"SIP/2.0")
            else rng.choice((b"BYE", b"INVITE", b"OPTIONS", b"NOTIFY"))
            + b" sip:x@127.0.0.1 SIP/2.0"
        )
    elif kind == "garbage":
        return kind, rng.randbytes(rng.choice((1, 4, 40, 400, 4000)))
    elif kind == "keepalive":
        return kind, rng.choice((b"\r\n\r\n", b"\r\n", b"", b"\n\n\n"))
    return kind, join(start, headers, body)


MUTATIONS = (
    "flip",
    "flip",
    "truncate",
    "truncate",
    "duplicate",
    "remove",
    "huge_header",
    "content_length_lie",
    "via_no_branch",
    "cseq_mismatch",
    "tags",
    "live_call_id",
    "max_forwards_0",
    "big_body",
    "nul",
    "bad_utf8",
    "flip_kind",
    "garbage",
    "keepalive",
)


# --- in-dialog garbage and media garbage ---------------------------------------------------

BROKEN_SDP = (
    b"v=0\r\nm=audio notaport RTP/AVP 0\r\n",
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 999.1.1.1\r\nt=0 0\r\n"
    b"m=audio 5000 RTP/AVP 0\r\n",
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 70000 RTP/AVP 0\r\n",
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=video 5000 RTP/AVP 96\r\n",
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    + b"m=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU/0\r\n" * 500,
    b"\xff\xfe\x00garbage\r\n",
    b"",
)


@dataclass
class DialogSide:
    """What a far end needs to speak in a live dialog: its own tagged From/To, the
    dialer's Contact (the Request-URI) and the Call-ID."""

    call_id: bytes
    ours: bytes
    "Our (the far end's) tagged name-addr: the From of our requests."
    theirs: bytes
    "The dialer's tagged name-addr: the To of our requests."
    target: bytes
    dialer_via: bytes
    "The dialer's top Via on its INVITE (a response to nothing must carry one of its)."


def dialog_side(
    received: list[bytes], sent: list[bytes], call_id: str | None = None
) -> DialogSide | None:
    """The dialog of the last INVITE the dialer sent a party (*received* by it) and the
    party's 200 to it (in what it *sent*)."""
    invites = [m for m in _parsed(received) if isinstance(m, Request) and m.method == "INVITE"]
    for invite in reversed(invites):
        if call_id is not None and invite.call_id != call_id:
            continue
        for ok in _parsed(sent):
            if (
                isinstance(ok, Response)
                and ok.status_code == 200
                and ok.call_id == invite.call_id
                and ok.cseq.method == "INVITE"
            ):
                contact = invite.headers.get("Contact") or ""
                target = contact.strip().strip("<>").split(">")[0]
                return DialogSide(
                    invite.call_id.encode(),
                    (ok.headers.get("To") or "").encode(),
                    (invite.headers.get("From") or "").encode(),
                    target.encode(),
                    (invite.headers.get("Via") or "").encode(),
                )
    return None


def _parsed(messages: list[bytes]) -> list[Request | Response]:
    out = []
    for data in messages:
        with contextlib.suppress(Exception):
            out.append(parse_message(data))
    return out


def in_dialog_garbage(
    rng: random.Random, side: DialogSide, attacker: tuple[str, int], n: Callable[[], int]
) -> list[tuple[str, bytes]]:
    """Requests in the live dialog *side* (broken re-INVITE, wrong-CSeq BYE/INFO/UPDATE,
    CSeq method mismatch) and responses to transactions that do not exist."""
    out = []

    def request(method: bytes, cseq: bytes, body: bytes = b"", ctype: bytes = b"") -> bytes:
        headers = [
            b"Via: SIP/2.0/UDP %s:%d;rport;branch=z9hG4bK-soak-%d"
            % (attacker[0].encode(), attacker[1], n()),
            b"Max-Forwards: 70",
            b"From: " + side.ours,
            b"To: " + side.theirs,
            b"Call-ID: " + side.call_id,
            b"CSeq: " + cseq,
            b"Contact: <sip:soak@%s:%d>" % (attacker[0].encode(), attacker[1]),
        ]
        if ctype:
            headers.append(b"Content-Type: " + ctype)
        return join(method + b" " + side.target + b" SIP/2.0", headers, body)

    base = rng.randrange(1000, 100000)
    sdp = rng.randrange(len(BROKEN_SDP))
    out.append(
        (
            f"reinvite_broken_sdp{sdp}",
            request(b"INVITE", b"%d INVITE" % base, BROKEN_SDP[sdp], b"application/sdp"),
        )
    )
    sdp = rng.randrange(len(BROKEN_SDP))
    out.append(
        (
            f"update_broken_sdp{sdp}",
            request(b"UPDATE", b"%d UPDATE" % (base + 1), BROKEN_SDP[sdp], b"application/sdp"),
        )
    )
    out.append(
        (
            "info_low_cseq",
            request(
                b"INFO", b"%d INFO" % (base - 500), b"Signal=\xff\r\n", b"application/dtmf-relay"
            ),
        )
    )
    out.append(("update_low_cseq", request(b"UPDATE", b"%d UPDATE" % (base - 400))))
    out.append(("bye_low_cseq", request(b"BYE", b"%d BYE" % (base - 300))))
    out.append(("bye_cseq_mismatch", request(b"BYE", b"%d INVITE" % (base + 2))))
    out.append(
        (
            "info_bad_cseq",
            request(b"INFO", rng.choice((b"x INFO", b"-1 INFO", b"99999999999 INFO"))),
        )
    )
    for status in (200, 183, 401, 481, 100):
        headers = [
            b"Via: " + side.dialer_via.replace(b"branch=", b"branch=z9hG4bKnone%d" % n()),
            b"From: " + side.theirs,
            b"To: " + side.ours,
            b"Call-ID: " + side.call_id,
            b"CSeq: %d %s" % (rng.randrange(1, 9), rng.choice((b"INVITE", b"BYE", b"UPDATE"))),
        ]
        if status == 401:
            headers.append(b'WWW-Authenticate: Digest realm="x", nonce="' + b"n" * 300 + b'"')
        out.append(
            (
                f"stray_{status}",
                join(
                    b"SIP/2.0 %d Whatever" % status,
                    headers,
                    rng.choice(BROKEN_SDP) if status in (183, 200) else b"",
                ),
            )
        )
    return out


def rtp_garbage(rng: random.Random) -> tuple[str, bytes]:
    """One packet for an RTP or RTCP port: short, wrong version, huge, lying lengths,
    RTCP-shaped."""
    kind = rng.choice(
        ("short", "version", "huge", "rtcp", "csrc", "extension", "padding", "random")
    )
    if kind == "short":
        return kind, rng.randbytes(rng.randrange(0, 12))
    if kind == "version":
        head = bytes([rng.choice((0x00, 0x40, 0xC0)) | rng.randrange(16), rng.randrange(256)])
        return kind, head + rng.randbytes(170)
    if kind == "huge":
        return kind, b"\x80\x00" + rng.randbytes(rng.choice((1500, 9000, 60000)))
    if kind == "rtcp":
        pt = rng.choice((200, 201, 202, 203, 204, 207))
        length = rng.choice((0, 1, 6, 0xFFFF))
        return kind, bytes([0x80 | rng.randrange(32), pt]) + length.to_bytes(
            2, "big"
        ) + rng.randbytes(rng.choice((0, 4, 24, 100)))
    if kind == "csrc":  # CC = 15 but no CSRC list
        return kind, bytes([0x8F, 0]) + rng.randbytes(10)
    if kind == "extension":  # X bit, extension length far past the end
        return kind, bytes([0x90, 0]) + rng.randbytes(10) + b"\xbe\xde\xff\xff" + rng.randbytes(8)
    if kind == "padding":  # P bit, padding count larger than the packet
        return kind, bytes([0xA0, 0]) + rng.randbytes(10) + rng.randbytes(20) + b"\xff"
    return kind, rng.randbytes(rng.randrange(1, 400))


def media_ports(received: list[bytes], call_id: str) -> list[int]:
    """The dialer's RTP ports (and RTCP: +1) in the SDP of its INVITE with *call_id*."""
    ports = []
    for message in _parsed(received):
        if isinstance(message, Request) and message.call_id == call_id:
            for match in re.finditer(rb"^m=audio (\d+) ", message.body, re.MULTILINE):
                port = int(match.group(1))
                ports += [port, port + 1]
    return sorted(set(ports))

"""Answering a 401/407 for a request we sent (RFC 3261 §22.2, RFC 8760).

``authorize`` turns the challenged request into its retry: same Call-ID and From
tag, CSeq + 1, a new branch, and one Authorization (401) or Proxy-Authorization
(407) per challenging realm. It returns ``None`` when retrying is pointless: no
supported challenge, or the server challenges again a realm we already answered
without saying ``stale=true`` (RFC 7616 §3.3: the credentials are wrong).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from .auth import AuthError, Challenge, Credentials, answer_challenge, supported
from .headers import Headers
from .message import Request, Response

ViaFactory = Callable[[str], str]
"Given the Via of the challenged request, the Via of its retry (a new branch)."


@dataclass(frozen=True)
class Account:
    """Digest credentials of one account: for a trunk, or a test's client."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Account({self.username!r}, password=***)"


def authorize(request: Request, response: Response, account: Account,
              new_via: ViaFactory) -> Request | None:  # fmt: skip
    if response.status_code == 407:
        challenge_name, answer_name = "Proxy-Authenticate", "Proxy-Authorization"
    else:
        challenge_name, answer_name = "WWW-Authenticate", "Authorization"
    try:
        challenges = [
            c for line in response.headers.get_lines(challenge_name)
            for c in Challenge.parse_all(line)
        ]  # fmt: skip
    except AuthError:
        return None
    chosen: dict[str, Challenge] = {}
    for challenge in challenges:
        if supported(challenge):
            chosen.setdefault(challenge.realm, challenge)  # topmost per realm (RFC 8760 §2.4)
    if not chosen:
        return None
    answered = _realms_sent(request, answer_name)
    if any(c.realm in answered and not c.stale for c in chosen.values()):
        # We answered this realm already and it challenges again without stale=true:
        # the credentials are wrong (RFC 7616 §3.3), whatever the new nonce.
        return None
    headers = Headers()
    first_via = True
    for name, value in request.headers:
        if name == "Via" and first_via:
            headers.add(name, new_via(value))
            first_via = False
        elif name == "CSeq":
            cseq = request.cseq
            headers.add(name, f"{cseq.number + 1} {cseq.method}")
        elif name != answer_name:
            headers.add(name, value)
    cnonce = secrets.token_hex(8)
    for challenge in chosen.values():
        credentials = answer_challenge(
            challenge, request.method, request.uri, account.username, account.password,
            cnonce, 1, request.body,
        )  # fmt: skip
        headers.add(answer_name, str(credentials))
    return Request(headers, request.body, request.method, request.uri)


def _realms_sent(request: Request, header: str) -> set[str]:
    realms = set()
    for line in request.headers.get_lines(header):
        try:
            realms.add(Credentials.parse(line).realm)
        except AuthError:
            continue
    return realms

"""Sessions of the dashboard's pages: signed cookies for the supervisor and the agents.

Theory of operation
-------------------
The pages themselves (HTML, CSS, JS) hold no data and are served to anyone; every byte
of dialer state comes from a data route that checks who asks:

* **Supervisor.** The login form posts ``{token, key}``; when it is one of the ``[api]
  tokens`` pairs (the API's own constant-time :func:`~sipdialer.api.auth.credentials_match`)
  the reply sets the cookie ``sipdialer_supervisor``. The page keeps token and key in
  ``sessionStorage`` and sends them as ``X-Access-Token`` / ``X-Key`` to the REST API
  (run/stop); the event stream, which a browser's ``EventSource`` cannot give headers,
  is admitted by the cookie (or by the two headers, for scripts).
* **Agent.** The console's form posts ``{extension, password}``, checked against the
  ``[[agents]]`` entry with :func:`hmac.compare_digest` (an unknown extension is compared
  against a dummy, so the reply time does not tell which extensions exist). The cookie
  ``sipdialer_agent`` names the agent; it admits that agent's routes only.

A cookie is ``<kind>:<subject>:<expiry>:<mac>`` (colons: an extension may hold dots):
HMAC-SHA256 under a secret drawn at start (so a restart signs everyone out, which a
dialer's restart does anyway) over the kind, the subject and the expiry (Unix seconds).
The supervisor's subject is a hash of the token, so a pair removed from the
configuration stops admitting its sessions.
Failed sign-ins are counted per source address and per extension (or token) with the
registrar's own :class:`~sipdialer.sip.lockout.Lockout` (5 in a minute lock either for
5 minutes): the console must not become a way around the SIP digest lockout to guess
phone passwords. A locked sign-in is refused even with the right password.

Cookies are ``HttpOnly`` and ``SameSite=Strict``; the agent's state-changing routes also
want the ``X-Console`` header, which a cross-site form cannot send (a second guard
against CSRF behind SameSite).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Sequence

from sipdialer.api.auth import credentials_match
from sipdialer.config import AgentConfig, ApiToken
from sipdialer.sip.lockout import Lockout

SUPERVISOR_COOKIE = "sipdialer_supervisor"
AGENT_COOKIE = "sipdialer_agent"
CONSOLE_HEADER = "X-Console"
"Header the agent console's scripts send with every state-changing request."
SESSION_SECONDS = 12 * 3600
"A session lasts one working day; then the page asks to sign in again."

_DUMMY = secrets.token_bytes(16)


def _token_subject(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def supervisor_lockout_key(token: str) -> str:
    """The lockout's "user" for a supervisor sign-in: per token tried, so that failures
    with one token never lock out the supervisors who sign in with another (the source
    address is locked out on its own count)."""
    return "supervisor:" + _token_subject(token)


class Sessions:
    """Signs and checks the pages' session cookies."""

    def __init__(
        self,
        tokens: Sequence[ApiToken],
        agents: Sequence[AgentConfig],
        *,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tokens = tuple(tokens)
        self._subjects = {_token_subject(t.token) for t in self._tokens}
        self._agents = {a.id: a for a in agents}
        self._secret = secret or secrets.token_bytes(32)
        self._clock = clock
        self.lockout = Lockout()

    def locked(self, ip: str, user: str) -> bool:
        """Too many failed sign-ins from *ip* or for *user* lately."""
        now = self._clock()
        return self.lockout.ip_locked(ip, now) or self.lockout.user_locked(user, now)

    def failed(self, ip: str, user: str) -> None:
        self.lockout.failure(ip, user, self._clock())

    # --- the forms ---------------------------------------------------------------------

    def supervisor_login(self, token: str, key: str) -> str | None:
        """A cookie value for a valid (token, key) pair, else None."""
        if not token or not key or not credentials_match(self._tokens, token, key):
            return None
        return self._sign("s", _token_subject(token))

    def agent_login(self, extension: str, password: str) -> str | None:
        """A cookie value when *password* is the agent's SIP password, else None."""
        agent = self._agents.get(extension)
        expected = agent.password.encode() if agent is not None else _DUMMY
        ok = hmac.compare_digest(expected, password.encode())
        if agent is None or not ok or not password:
            return None
        return self._sign("a", extension)

    # --- the cookies -------------------------------------------------------------------

    def supervisor(self, cookie: str | None) -> bool:
        subject = self._check("s", cookie)
        return subject is not None and subject in self._subjects

    def agent(self, cookie: str | None) -> str | None:
        """The agent id the cookie was signed for, if valid and the agent still exists."""
        subject = self._check("a", cookie)
        return subject if subject is not None and subject in self._agents else None

    def supervisor_headers(self, token: str | None, key: str | None) -> bool:
        return bool(token and key and credentials_match(self._tokens, token, key))

    def _sign(self, kind: str, subject: str) -> str:
        expiry = str(int(self._clock()) + SESSION_SECONDS)
        return f"{kind}:{subject}:{expiry}:{self._mac(kind, subject, expiry)}"

    def _mac(self, kind: str, subject: str, expiry: str) -> str:
        message = f"{kind}\n{subject}\n{expiry}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _check(self, kind: str, cookie: str | None) -> str | None:
        # We only ever sign ASCII: anything else is forged, and compare_digest (str) or
        # int() (non-ASCII digits such as "²") would raise on it (a 500, not a 401).
        if not cookie or not cookie.isascii():
            return None
        parts = cookie.split(":")
        if len(parts) != 4 or parts[0] != kind or not parts[2].isdigit():
            return None
        _, subject, expiry, mac = parts
        if not hmac.compare_digest(mac.encode(), self._mac(kind, subject, expiry).encode()):
            return None
        if int(expiry) < self._clock():
            return None
        return subject

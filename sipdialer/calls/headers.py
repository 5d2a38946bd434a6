"""The dialer's own SIP headers: the member's record (``X-Dialer-*``) and auto-answer.

Theory of operation (dialer-semantics §1 step 3, §7). Both legs of an attempt carry
the member's record so an agent's softphone or CRM can pop it::

    X-Dialer-Campaign: reminders
    X-Dialer-Member-Id: 42
    X-Dialer-Member-Name: Олена Коваль
    X-Dialer-Number: +380441234567
    X-Dialer-Var-<name>: <value>        one per variable (campaign overlaid with member)

``dialer_headers(order)`` returns them as ``(name, value)`` pairs in that order, ready
for ``UserAgentCore.invite(headers=...)``. ``auto_answer_headers(host)`` gives the two
headers phones read as "answer at once" (Call-Info answer-after=0, used by Polycom,
Yealink, Grandstream, Snom, baresip; Alert-Info info=alert-autoanswer, used by Cisco
SPA/Linksys and Yealink): semantics §1 sends them when the agent has ``auto_answer``.

Making values safe (values come from CSV imports and the REST API, so anything can be
in them; a CR or LF would let a member's name inject header lines, and
``Message.to_bytes`` would refuse the whole INVITE):

* **Decision: non-ASCII stays UTF-8.** RFC 3261 §25.1 lets an extension header's value
  be TEXT-UTF8 (``header-value = *(TEXT-UTF8char / UTF8-CONT / LWS)``), and CRMs want
  ``Олена``, not ``%D0%9E...``. Percent-encoding would be ambiguous (is ``%41`` an
  ``A``?) with no standard telling the receiver to decode it.
* Every control character (C0, DEL, C1, and the Unicode line/paragraph separators
  U+2028/U+2029) becomes a space; lone surrogates (undecodable bytes smuggled in by
  ``surrogateescape``) are dropped, so the octets on the wire are valid UTF-8. Runs of
  white space collapse to one space and the ends are trimmed: what is left is one
  TEXT-UTF8 line.
* A value is cut to ``MAX_VALUE_LENGTH`` characters, and at most
  ``MAX_VARIABLE_HEADERS`` variables are sent, so a huge record cannot push the INVITE
  past a UDP datagram (``MAX_MESSAGE_SIZE``) or the header limits of the far end.
* Header names must be RFC 3261 tokens. Configured variable names already are
  (``config_checks.check_variable_names``: letters, digits, ``-``, ``_``); a member
  variable's name from the API is made one by replacing every other character with
  ``_`` and cutting it to 64; a name with nothing left is skipped.

Pure: no IO, no clock.
"""

from __future__ import annotations

import re

from .events import CallOrder

__all__ = [
    "AUTO_ANSWER_ALERT_INFO", "MAX_VALUE_LENGTH", "MAX_VARIABLE_HEADERS", "VAR_PREFIX",
    "auto_answer_headers", "dialer_headers", "safe_header_name", "safe_header_value",
]  # fmt: skip

VAR_PREFIX = "X-Dialer-Var-"
MAX_VALUE_LENGTH = 512
"Characters kept of one value; a CRM key or URL fits, a pasted document does not."
MAX_VARIABLE_HEADERS = 64
"Variables sent per leg; the rest are left out (MAX_HEADERS is 256 per message)."
MAX_NAME_LENGTH = 64
"Same limit as a configured variable name."
AUTO_ANSWER_ALERT_INFO = "<http://localhost>;info=alert-autoanswer"

# C0 controls (HTAB included: it is LWS, but folded to a plain space), DEL, C1
# controls, U+2028/U+2029. Lone surrogates are dropped separately.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SURROGATES = re.compile("[\ud800-\udfff]+")
_SPACES = re.compile(" {2,}")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]")
_HOST = re.compile(r"[A-Za-z0-9.\-_:\[\]]+")


def safe_header_value(value: str, limit: int = MAX_VALUE_LENGTH) -> str:
    """*value* as one line of TEXT-UTF8: controls to spaces, spaces collapsed, cut."""
    text = _SURROGATES.sub("", _CONTROLS.sub(" ", value))
    text = _SPACES.sub(" ", text).strip(" ")
    return text[:limit].rstrip(" ")


def safe_header_name(name: str) -> str:
    """A variable name as the tail of an ``X-Dialer-Var-`` token ("" if nothing is left)."""
    return _NOT_NAME.sub("_", name)[:MAX_NAME_LENGTH].strip("_")


def dialer_headers(order: CallOrder) -> list[tuple[str, str]]:
    """The ``X-Dialer-*`` headers of *order* (semantics §7), values made safe."""
    headers = [
        ("X-Dialer-Campaign", safe_header_value(order.campaign)),
        ("X-Dialer-Member-Id", safe_header_value(order.member_id)),
        ("X-Dialer-Member-Name", safe_header_value(order.member_name)),
        ("X-Dialer-Number", safe_header_value(order.number)),
    ]
    seen: set[str] = set()
    for name, value in order.variables.items():
        if len(seen) >= MAX_VARIABLE_HEADERS:
            break
        tail = safe_header_name(str(name))
        # Header names compare case-insensitively: two variables differing only in
        # case would be one header to the receiver; the first one wins.
        if not tail or tail.lower() in seen:
            continue
        seen.add(tail.lower())
        headers.append((VAR_PREFIX + tail, safe_header_value(str(value))))
    return headers


def auto_answer_headers(host: str) -> list[tuple[str, str]]:
    """``Call-Info: <sip:HOST>;answer-after=0`` and ``Alert-Info:
    <http://localhost>;info=alert-autoanswer``. *host* is ours (host or host:port);
    a bare IPv6 address gets its brackets. Raises ``ValueError`` for anything that is
    not a host."""
    if not _HOST.fullmatch(host):
        raise ValueError(f"not a host: {host!r}")
    if host.count(":") > 1 and not host.startswith("["):
        host = f"[{host}]"
    return [
        ("Call-Info", f"<sip:{host}>;answer-after=0"),
        ("Alert-Info", AUTO_ANSWER_ALERT_INFO),
    ]

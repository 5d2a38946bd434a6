"""What the simulated trunk does with a call, chosen by the dialed number (pure).

Theory of operation. A ``Behaviour`` is one row of a table: a regular expression searched
in the dialed number (the Request-URI user) and what the trunk does when it matches. The
first matching row wins (``match_behaviour``); a number no row matches is answered 404.
Times are seconds. The trunk (``trunk.py``) turns a row into a schedule:

- ``status = 200``: 180 Ringing (or 183 with SDP when ``early_media``), ``ring`` seconds,
  then 200 with an SDP answer. ``talk`` seconds later the trunk hangs up with BYE;
  ``talk = None`` waits for the caller's BYE.
- ``status`` 3xx-6xx: 180 (or 183 + early media), ``ring`` seconds, then that final status;
  with ``ring = 0`` the failure is sent at once, without a 180.
- ``status = 0``: ringing forever; only the caller's CANCEL ends it (487).
- ``challenge``: the INVITE is first answered 401 with a digest challenge; the retry with
  the trunk's username/password proceeds as above (a wrong password stays at 401).
- ``codec`` is the codec the trunk answers with whenever the offer has it (``PCMA``
  simulates a carrier preferring A-law even when PCMU is offered first); else it takes
  the other G.711 law, else 488. ``tone`` Hz, or the ``wav`` file, is sent as RTP
  while answered and during early media; ``dtmf`` digits are sent as RFC 4733 events
  half a second after the answer.

``DEFAULT_BEHAVIOURS``, the demo's table, keyed by the first digit (an optional ``+``
before it is ignored)::

    1  answer after 0.5 s ringing, talk 5 s, the trunk hangs up
    2  busy: 486 after 0.3 s
    3  no answer: 180 until CANCEL
    4  rejected: 603 after 0.5 s
    5  404 Not Found at once
    6  480 Temporarily Unavailable after 0.3 s
    7  503 Service Unavailable at once
    8  183 with early media (a 425 Hz tone) for 1 s, then answer, talk 4 s
    9  short call: answer after 0.3 s, talk 2 s (below a min_success_duration: retried)
    0  401 challenge first, then as 1 (needs the trunk's --username/--password)

The compact text form (``parse_behaviour``, the ``trunk-sim --behave`` option) is the
pattern followed by space-separated words: ``key=value`` for any field (``ring talk
status tone wav codec dtmf``; ``talk=none`` waits for BYE) and the flags/aliases ``answer``
(200), ``busy`` (486), ``reject`` (603), ``notfound`` (404), ``unavailable`` (480),
``congestion`` (503), ``noanswer`` (status 0), ``early`` (early media), ``challenge``.
Example: ``'^555 early ring=2 status=486 codec=PCMA'``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Final


class BehaviourError(ValueError):
    """A behaviour spec that cannot be read (the CLI prints it and exits 2)."""


CODECS: Final = ("PCMU", "PCMA")


@dataclass(frozen=True)
class Behaviour:
    """One row of the trunk's table (module docstring)."""

    pattern: str
    "Regular expression searched in the dialed number (the Request-URI user)."
    ring: float = 0.0
    "Seconds between the 180 (or 183) and the final answer."
    status: int = 200
    "Final status: 200, a failure (486, 603, 404, 480, 503 ...), or 0 = never answer."
    talk: float | None = None
    "Answered: seconds before the trunk sends BYE; None waits for the caller's BYE."
    early_media: bool = False
    "183 with SDP and RTP while ringing."
    challenge: bool = False
    "The first INVITE gets 401 (digest with the trunk's username/password)."
    tone: float = 1000.0
    "Hz of the tone sent as RTP (answered, and during early media)."
    wav: str | None = None
    "A WAV file sent instead of the tone (looped)."
    codec: str = "PCMU"
    "The codec the trunk answers with when offered: PCMU or PCMA."
    dtmf: str = ""
    "Digits sent as RFC 4733 events after answering."

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise BehaviourError(f"bad pattern {self.pattern!r}: {exc}") from None
        if self.status != 0 and not (self.status == 200 or 300 <= self.status <= 699):
            raise BehaviourError(f"status must be 200, 300-699 or 0 (never), not {self.status}")
        if self.ring < 0 or (self.talk is not None and self.talk < 0):
            raise BehaviourError("ring and talk are seconds >= 0")
        if self.codec.upper() not in CODECS:
            raise BehaviourError(f"codec must be one of {', '.join(CODECS)}, not {self.codec!r}")
        if not 0 < self.tone < 4000:
            raise BehaviourError(f"tone must be in (0, 4000) Hz, not {self.tone}")
        if any(d not in "0123456789*#ABCDabcd" for d in self.dtmf):
            raise BehaviourError(f"dtmf digits are 0-9 * # A-D, not {self.dtmf!r}")

    @property
    def answers(self) -> bool:
        return self.status == 200

    @property
    def never_answers(self) -> bool:
        return self.status == 0


def match_behaviour(behaviours: Sequence[Behaviour], number: str) -> Behaviour | None:
    """The first row whose pattern is found in ``number``, or None."""
    for behaviour in behaviours:
        if re.search(behaviour.pattern, number):
            return behaviour
    return None


_ALIASES: Final[dict[str, dict[str, object]]] = {
    "answer": {"status": 200},
    "busy": {"status": 486},
    "reject": {"status": 603},
    "notfound": {"status": 404},
    "unavailable": {"status": 480},
    "congestion": {"status": 503},
    "noanswer": {"status": 0},
    "early": {"early_media": True},
    "challenge": {"challenge": True},
}
_KEYS: Final = {f.name for f in fields(Behaviour)} - {"pattern"} | {"early"}


def parse_behaviour(text: str) -> Behaviour:
    """Read the compact form ``PATTERN [word ...]`` (module docstring)."""
    words = text.split()
    if not words:
        raise BehaviourError("empty behaviour spec: expected 'PATTERN [key=value|flag ...]'")
    values: dict[str, object] = {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        key = key.lower().replace("-", "_")
        if not sep:
            if key not in _ALIASES:
                known = ", ".join(sorted(_ALIASES))
                raise BehaviourError(f"unknown word {word!r} in {text!r} (flags: {known})")
            values.update(_ALIASES[key])
            continue
        if key not in _KEYS:
            raise BehaviourError(f"unknown key {key!r} in {text!r} ({', '.join(sorted(_KEYS))})")
        values["early_media" if key == "early" else key] = _value(key, value, text)
    try:
        return Behaviour(words[0], **values)  # type: ignore[arg-type]
    except TypeError as exc:  # pragma: no cover - keys are checked above
        raise BehaviourError(str(exc)) from None


def _value(key: str, value: str, text: str) -> object:
    try:
        if key in ("ring", "tone"):
            return float(value)
        if key == "talk":
            return None if value.lower() in ("none", "") else float(value)
        if key == "status":
            return int(value)
        if key in ("early", "early_media", "challenge"):
            if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("1", "true", "yes")
    except ValueError:
        raise BehaviourError(f"bad value for {key} in {text!r}: {value!r}") from None
    if key == "codec":
        return value.upper()
    if key == "wav":
        return value or None
    return value


DEFAULT_BEHAVIOURS: Final[tuple[Behaviour, ...]] = (
    Behaviour(r"^\+?1", ring=0.5, talk=5.0),
    Behaviour(r"^\+?2", ring=0.3, status=486),
    Behaviour(r"^\+?3", status=0),
    Behaviour(r"^\+?4", ring=0.5, status=603),
    Behaviour(r"^\+?5", status=404),
    Behaviour(r"^\+?6", ring=0.3, status=480),
    Behaviour(r"^\+?7", status=503),
    Behaviour(r"^\+?8", ring=1.0, early_media=True, talk=4.0, tone=425.0),
    Behaviour(r"^\+?9", ring=0.3, talk=2.0),
    Behaviour(r"^\+?0", ring=0.5, talk=5.0, challenge=True),
)
"The demo's table (module docstring)."

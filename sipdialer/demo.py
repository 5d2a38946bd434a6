"""``sipdialer demo``: the campaign it runs, its configuration, and the check of its result.

Theory of operation
-------------------
The demo needs no file: :func:`demo_config` writes the configuration a small office would
have (N agents ``101``, ``102``..., one trunk, one route, a calendar open all week, one
campaign), pointing at the simulated trunk's port and a throw-away SQLite store, with
times short enough that a campaign ends in about a minute: ``retry_wait`` 2 s,
``min_success_duration`` 3 s, agents' wrap-up 1 s, the member ring time
(``call_timeout``) 4 s.

:func:`demo_members` draws M members from :data:`MIX`. The simulated trunk decides a call's
fate by the number's first digit (``simulate.behaviour.DEFAULT_BEHAVIOURS``), so each
*kind* of member is a prefix; one kind has two numbers (an invalid one first). 7 (503, a
Minus cause: never counted, retried for ever) is left out so that every member ends.

:func:`audit` is the check the demo ends with (and CI repeats against the store): every
member in exactly one final state (ended, with an end cause, not leased, not waiting,
never due again), every attempt ended, and per member the attempts counted equal its
attempt counter. It takes plain :class:`MemberFacts` / :class:`AttemptFacts`, so the SIP
run (from the store) and the virtual run (from memory) are checked by the same code.

The runs themselves live in :mod:`sipdialer.demo_run`; the screen in
:mod:`sipdialer.cli_demo`. Pure: no IO.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sipdialer.config import Config, parse_config
from sipdialer.report import AttemptFacts

CAMPAIGN = "demo"
TRUNK = "sim"
TRUNK_USER = "demo"
TRUNK_PASSWORD = "demo-trunk-secret"
AGENT_NAMES = (
    "Alice", "Bohdan", "Chen", "Dana", "Emeka", "Fatima", "Goran", "Hana", "Ivan", "Julia",
    "Kofi", "Lena", "Mateo", "Nadia", "Oleh", "Priya", "Quinn", "Rosa", "Sven", "Taro",
)  # fmt: skip
MEMBER_NAMES = (
    "Olena Kovalenko", "James Smith", "Maria Garcia", "Wei Zhang", "Amara Okafor",
    "Lukas Muller", "Sofia Rossi", "Yuki Tanaka", "Ahmed Hassan", "Ines Silva",
    "Piotr Nowak", "Emma Johnson", "Arjun Patel", "Lea Dubois", "Mehmet Yilmaz",
    "Anna Svensson", "Carlos Lopez", "Hanna Virtanen", "Kwame Mensah", "Sara Cohen",
)  # fmt: skip
RETRY_WAIT = 2.0
MAX_RETRIES = 3
MIN_SUCCESS = 3.0
MEMBER_RING = 4.0
AGENT_WRAP_UP = 1.0


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of member: the first digits of its numbers and what should happen."""

    key: str
    prefixes: tuple[str, ...]
    "One per number, highest priority first."
    what: str
    expect: str
    "The end cause it should get with the demo's settings."
    weight: int


MIX: tuple[Kind, ...] = (
    Kind("answers", ("1",), "answers, talks 5 s", "NORMAL_CLEARING", 6),
    Kind("early media", ("8",), "early media 1 s, answers, talks 4 s", "NORMAL_CLEARING", 2),
    Kind("trunk digest", ("0",), "trunk challenges (401), answers", "NORMAL_CLEARING", 1),
    Kind("busy", ("2",), "486 Busy Here", "MAX_TRY_COUNT", 3),
    Kind("no answer", ("3",), f"rings past call_timeout {MEMBER_RING:g} s", "MAX_TRY_COUNT", 2),
    Kind("rejected", ("4",), "603 Decline", "MAX_TRY_COUNT", 2),
    Kind("invalid", ("5",), "404 Not Found: number stopped", "UNALLOCATED_NUMBER", 2),
    Kind("unavailable", ("6",), "480 Temporarily Unavailable", "MAX_TRY_COUNT", 1),
    Kind("short call", ("9",), f"talks 2 s < {MIN_SUCCESS:g} s: retried", "MAX_TRY_COUNT", 2),
    Kind("2nd number", ("5", "1"), "1st number 404, 2nd answers", "NORMAL_CLEARING", 1),
)
"""The members' mix; weights are shares of M (every kind appears once M >= len(MIX))."""


@dataclass(frozen=True, slots=True)
class DemoMember:
    name: str
    numbers: tuple[str, ...]
    kind: Kind


def demo_members(count: int, seed: int = 1) -> list[DemoMember]:
    """``count`` members: each kind once (as far as ``count`` goes), the rest by weight,
    shuffled with ``seed``. Numbers are unique: prefix + 555 + a serial."""
    rnd = random.Random(seed)
    kinds = list(MIX[:count])
    weights = [kind.weight for kind in MIX]
    kinds += rnd.choices(MIX, weights=weights, k=max(0, count - len(MIX)))
    rnd.shuffle(kinds)
    members = []
    serial = 0
    for index, kind in enumerate(kinds):
        numbers = []
        for prefix in kind.prefixes:
            serial += 1
            numbers.append(f"{prefix}555{serial:04d}")
        name = MEMBER_NAMES[index % len(MEMBER_NAMES)]
        if index >= len(MEMBER_NAMES):
            name += f" {index // len(MEMBER_NAMES) + 1}"
        members.append(DemoMember(name, tuple(numbers), kind))
    return members


def kind_of(number: str) -> Kind | None:
    """The kind whose first number is ``number``'s prefix (second numbers: None)."""
    for kind in MIX:
        if len(kind.prefixes) == 1 and number.startswith(kind.prefixes[0]):
            return kind
    return None


def demo_config(
    agents: int,
    *,
    store_url: str,
    trunk_port: int,
    rtp_ports: str,
    sip_listen: str = "127.0.0.1:0",
    api_listen: str = "127.0.0.1:0",
) -> Config:
    """The demo office (module docstring)."""
    ids = [str(101 + i) for i in range(agents)]
    every_day = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    data: dict[str, Any] = {
        "sip": {"listen": sip_listen, "realm": "demo.local", "qualify_interval": 0},
        "media": {"rtp_ports": rtp_ports, "media_timeout": 10, "ringback": "eu"},
        "store": {"url": store_url},
        "api": {"listen": api_listen, "tokens": [{"token": "demo", "key": "demo"}]},
        "trunks": [{
            "name": TRUNK, "address": f"127.0.0.1:{trunk_port}", "transport": "udp",
            "username": TRUNK_USER, "password": TRUNK_PASSWORD, "caller_id": "5550100",
            "max_calls": 200, "cps": 50,
        }],
        "routes": [{"pattern": ".", "trunk": TRUNK, "variables": {"call_timeout": MEMBER_RING}}],
        "agents": [
            {
                "id": agent_id, "name": AGENT_NAMES[i % len(AGENT_NAMES)],
                "password": f"demo-{agent_id}", "call_timeout": 10,
                "wrap_up_time": AGENT_WRAP_UP, "max_no_answer": 0,
                "busy_delay": 2, "reject_delay": 2, "no_answer_delay": 2,
            }
            for i, agent_id in enumerate(ids)
        ],
        "calendars": [{"name": "always", "timezone": "UTC", "week": every_day}],
        "campaigns": [{
            "name": CAMPAIGN, "calendar": "always", "limit": agents,
            "retry_wait": RETRY_WAIT, "max_retries": MAX_RETRIES,
            "min_success_duration": MIN_SUCCESS, "agents": ids,
            "variables": {"source": "sipdialer-demo"},
        }],
    }  # fmt: skip
    return parse_config(data)


# --- the check ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberFacts:
    """What the audit needs of one member."""

    member_id: int
    status: str
    "ready | leased | waiting | ended"
    ended_with: str | None
    attempts: int
    "The member's attempt counter."
    due: bool
    "It has a next attempt time (an ended member must not)."
    first_number: str


@dataclass(frozen=True, slots=True)
class AuditAttempt:
    member_id: int
    facts: AttemptFacts
    ended: bool


@dataclass
class Audit:
    """The demo's check (module docstring); ``ok`` when ``problems`` is empty."""

    members: int = 0
    ended: int = 0
    attempts: int = 0
    counted: int = 0
    member_counters: int = 0
    "Sum of the members' attempt counters."
    problems: list[str] = field(default_factory=list)
    ended_with: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    "Kind -> end causes of its members."
    attempts_by_kind: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    "Kinds whose members did not end as the mix says (shown, not a failure)."

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "members": self.members,
            "ended": self.ended,
            "attempts": self.attempts,
            "counted": self.counted,
            "member_counters": self.member_counters,
            "ended_with": dict(self.ended_with),
            "problems": list(self.problems),
            "by_kind": {kind: dict(causes) for kind, causes in self.by_kind.items()},
            "unexpected": list(self.unexpected),
        }


def audit(
    members: Iterable[MemberFacts],
    attempts: Iterable[AuditAttempt],
    kinds: dict[str, Kind] | None = None,
) -> Audit:
    """Check that the run adds up; ``kinds``: first number -> kind, for the per-kind table."""
    result = Audit()
    counted: Counter[int] = Counter()
    made: Counter[int] = Counter()
    for attempt in attempts:
        result.attempts += 1
        result.counted += attempt.facts.counted
        counted[attempt.member_id] += attempt.facts.counted
        made[attempt.member_id] += 1
        if not attempt.ended:
            result.problems.append(f"an attempt of member {attempt.member_id} never ended")
    seen: set[int] = set()
    for member in members:
        seen.add(member.member_id)
        result.members += 1
        result.member_counters += member.attempts
        final = member.status == "ended" and member.ended_with is not None and not member.due
        if final:
            result.ended += 1
            result.ended_with[member.ended_with or ""] += 1
        else:
            result.problems.append(
                f"member {member.member_id} is not in a final state (status {member.status},"
                f" ended_with {member.ended_with}, due {member.due})"
            )
        if counted[member.member_id] != member.attempts:
            result.problems.append(
                f"member {member.member_id}: its counter says {member.attempts} attempts,"
                f" the attempt records count {counted[member.member_id]}"
            )
        kind = (kinds or {}).get(member.first_number)
        if kind is not None:
            result.by_kind.setdefault(kind.key, Counter())[member.ended_with or member.status] += 1
            result.attempts_by_kind[kind.key] += made[member.member_id]
    strays = set(made) - seen
    if strays:
        result.problems.append(f"attempts of unknown members {sorted(strays)}")
    for key, causes in result.by_kind.items():
        expected = next(kind.expect for kind in MIX if kind.key == key)
        if set(causes) != {expected}:
            result.unexpected.append(f"{key}: expected {expected}, got {dict(causes)}")
    return result


def kinds_by_number(members: Sequence[DemoMember]) -> dict[str, Kind]:
    return {member.numbers[0]: member.kind for member in members}

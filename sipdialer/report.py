"""A campaign's results: totals by hangup cause, attempts, talk time, success rate.

Theory of operation
-------------------
Pure: :func:`build_report` folds a campaign's attempts (:class:`AttemptFacts`, one per
attempt record, whichever source they come from: the store for ``sipdialer report``, the
virtual-time run for ``sipdialer demo --fast``) and its members' counts into one frozen
:class:`CampaignReport`; :func:`to_json`, :func:`to_csv` and :func:`render_table` give the
three output formats. No IO, no clock: the shells read the store and print.

What the figures mean (dialer-semantics §3 and §8):

* an *attempt* is one attempt record: an agent was reserved and a member leased. Its
  ``disposition`` says how it was judged: ``ok``, ``retry``, ``error`` and ``minus``
  judge the member's call; ``refund`` means the agent leg failed and the member was never
  dialed; ``waiting`` waits for a status result (wait-for-result campaigns);
* *counted* attempts are those that used up one of the member's tries
  (``Disposition.attempts_delta``): the sum over a campaign equals the sum of its
  members' attempt counters, which is what ``sipdialer demo`` checks;
* *bridged* attempts reached the member and were connected to the agent; *talk time* is
  bridge → hangup, summed over them;
* *success rate* is the share of the campaign's **ended** members that ended with
  ``NORMAL_CLEARING`` (a successful call, or a status result with ``success``): members
  still to dial are not counted either way. ``answer rate`` is bridged / dialed attempts
  (refunds excluded: the member was not dialed).
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table

SUCCESS = "NORMAL_CLEARING"
"""The end cause of a member reached with success (dispositions.NORMAL_CLEARING)."""
IN_FLIGHT = "(in flight)"
"""The cause line of attempts not ended yet."""
DISPOSITIONS = ("ok", "retry", "error", "minus", "refund", "waiting", "manager_request")
"""Columns of the per-cause table, in this order (DispositionKind values that attempts hold)."""
CSV_COLUMNS = (
    "campaign", "cause", "attempts", "counted", "bridged", "talk_seconds", *DISPOSITIONS,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class AttemptFacts:
    """What the report needs of one attempt."""

    cause: str | None
    "Hangup cause name; None while the attempt is in flight."
    disposition: str | None = None
    "A DispositionKind value; None while in flight (or not judged)."
    counted: int = 0
    "Tries used up (0 or 1)."
    talk_seconds: float = 0.0
    bridged: bool = False
    agent_id: str | None = None


@dataclass(frozen=True, slots=True)
class CauseLine:
    """Attempts that ended with one cause."""

    cause: str
    attempts: int
    counted: int
    bridged: int
    talk_seconds: float
    dispositions: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class AgentLine:
    """One agent's share of the campaign's attempts."""

    agent_id: str
    attempts: int
    bridged: int
    talk_seconds: float


@dataclass(frozen=True)
class CampaignReport:
    campaign_id: str
    name: str
    state: str
    members_by_status: Mapping[str, int]
    "ready / leased / waiting / ended -> members."
    ended_with: Mapping[str, int]
    "End cause -> ended members, most frequent first."
    causes: tuple[CauseLine, ...]
    "Most attempts first."
    agents: tuple[AgentLine, ...] = ()
    dispositions: Mapping[str, int] = field(default_factory=dict)

    @property
    def members(self) -> int:
        return sum(self.members_by_status.values())

    @property
    def ended(self) -> int:
        return self.members_by_status.get("ended", 0)

    @property
    def successes(self) -> int:
        return self.ended_with.get(SUCCESS, 0)

    @property
    def attempts(self) -> int:
        return sum(line.attempts for line in self.causes)

    @property
    def counted(self) -> int:
        return sum(line.counted for line in self.causes)

    @property
    def bridged(self) -> int:
        return sum(line.bridged for line in self.causes)

    @property
    def in_flight(self) -> int:
        return sum(line.attempts for line in self.causes if line.cause == IN_FLIGHT)

    @property
    def dialed(self) -> int:
        """Attempts where the member was dialed (not refunded, not in flight)."""
        return self.attempts - self.dispositions.get("refund", 0) - self.in_flight

    @property
    def talk_seconds(self) -> float:
        return sum(line.talk_seconds for line in self.causes)

    @property
    def success_rate(self) -> float | None:
        """Successes / ended members (None before any member ended)."""
        return self.successes / self.ended if self.ended else None

    @property
    def answer_rate(self) -> float | None:
        return self.bridged / self.dialed if self.dialed else None

    @property
    def average_talk(self) -> float | None:
        return self.talk_seconds / self.bridged if self.bridged else None


def build_report(
    campaign_id: str,
    name: str,
    state: str,
    members_by_status: Mapping[str, int],
    ended_with: Mapping[str, int],
    attempts: Iterable[AttemptFacts],
) -> CampaignReport:
    """Fold the attempts (any order, streamed) into a report."""
    count: Counter[str] = Counter()
    counted: Counter[str] = Counter()
    bridged: Counter[str] = Counter()
    talk: defaultdict[str, float] = defaultdict(float)
    by_disposition: dict[str, Counter[str]] = {}
    agent_calls: Counter[str] = Counter()
    agent_bridged: Counter[str] = Counter()
    agent_talk: defaultdict[str, float] = defaultdict(float)
    for attempt in attempts:
        cause = attempt.cause or IN_FLIGHT
        count[cause] += 1
        counted[cause] += attempt.counted
        if attempt.bridged:
            bridged[cause] += 1
            talk[cause] += attempt.talk_seconds
        if attempt.disposition is not None:
            by_disposition.setdefault(cause, Counter())[attempt.disposition] += 1
        if attempt.agent_id is not None:
            agent_calls[attempt.agent_id] += 1
            if attempt.bridged:
                agent_bridged[attempt.agent_id] += 1
                agent_talk[attempt.agent_id] += attempt.talk_seconds
    causes = tuple(
        CauseLine(
            cause=cause,
            attempts=n,
            counted=counted[cause],
            bridged=bridged[cause],
            talk_seconds=talk[cause],
            dispositions=dict(by_disposition.get(cause, {})),
        )
        for cause, n in sorted(count.items(), key=lambda item: (-item[1], item[0]))
    )
    agents = tuple(
        AgentLine(agent, n, agent_bridged[agent], agent_talk[agent])
        for agent, n in sorted(agent_calls.items())
    )
    totals: Counter[str] = Counter()
    for per_cause in by_disposition.values():
        totals.update(per_cause)
    ends = dict(sorted(ended_with.items(), key=lambda item: (-item[1], item[0])))
    return CampaignReport(
        campaign_id=campaign_id,
        name=name,
        state=state,
        members_by_status=dict(members_by_status),
        ended_with={cause: n for cause, n in ends.items() if n},
        causes=causes,
        agents=agents,
        dispositions=dict(totals),
    )


# --- output ---------------------------------------------------------------------------------


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def to_json(report: CampaignReport) -> dict[str, Any]:
    """JSON-able; rates are fractions (0..1) or null when undefined."""
    return {
        "campaign": {"id": report.campaign_id, "name": report.name, "state": report.state},
        "members": {
            "total": report.members,
            "by_status": dict(report.members_by_status),
            "ended_with": dict(report.ended_with),
            "successes": report.successes,
            "success_rate": _rate(report.success_rate),
        },
        "attempts": {
            "total": report.attempts,
            "counted": report.counted,
            "dialed": report.dialed,
            "bridged": report.bridged,
            "in_flight": report.in_flight,
            "answer_rate": _rate(report.answer_rate),
            "talk_seconds": round(report.talk_seconds, 3),
            "average_talk_seconds": _rate(report.average_talk),
            "by_disposition": dict(report.dispositions),
            "by_cause": [
                {
                    "cause": line.cause,
                    "attempts": line.attempts,
                    "counted": line.counted,
                    "bridged": line.bridged,
                    "talk_seconds": round(line.talk_seconds, 3),
                    "dispositions": dict(line.dispositions),
                }
                for line in report.causes
            ],
        },
        "agents": [
            {
                "id": agent.agent_id,
                "attempts": agent.attempts,
                "bridged": agent.bridged,
                "talk_seconds": round(agent.talk_seconds, 3),
            }
            for agent in report.agents
        ],
    }


def to_csv(report: CampaignReport) -> str:
    """One row per cause, then a ``TOTAL`` row; columns :data:`CSV_COLUMNS`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for line in report.causes:
        writer.writerow(
            [report.name, line.cause, line.attempts, line.counted, line.bridged,
             f"{line.talk_seconds:.1f}", *(line.dispositions.get(d, 0) for d in DISPOSITIONS)]
        )  # fmt: skip
    writer.writerow(
        [report.name, "TOTAL", report.attempts, report.counted, report.bridged,
         f"{report.talk_seconds:.1f}", *(report.dispositions.get(d, 0) for d in DISPOSITIONS)]
    )  # fmt: skip
    return out.getvalue()


def duration(seconds: float) -> str:
    """``75.2`` -> ``"1m15s"``; under a minute ``"12.3s"``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{rest:02d}s"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render_table(report: CampaignReport, *, title: str | None = None) -> Group:
    """The report as rich tables: the totals, members by end cause, attempts by cause."""
    totals = Table(box=box.SIMPLE_HEAD, show_header=False, title=title or "totals",
                   title_justify="left")  # fmt: skip
    totals.add_column("what", style="bold")
    totals.add_column("value", justify="right")
    by_status = ", ".join(f"{n} {s}" for s, n in report.members_by_status.items() if n)
    totals.add_row("campaign", f"{report.name} ({report.state})")
    totals.add_row("members", f"{report.members}" + (f"  ({by_status})" if by_status else ""))
    totals.add_row("reached (NORMAL_CLEARING)", f"{report.successes}")
    totals.add_row("success rate (of ended)", percent(report.success_rate))
    totals.add_row("attempts", f"{report.attempts} ({report.counted} counted)")
    totals.add_row("bridged / dialed", f"{report.bridged} / {report.dialed}")
    totals.add_row("answer rate", percent(report.answer_rate))
    average = "" if report.average_talk is None else f", {report.average_talk:.1f}s avg"
    totals.add_row("talk time", duration(report.talk_seconds) + average)

    ends = Table(box=box.SIMPLE_HEAD, title="members by end cause", title_justify="left")
    ends.add_column("end cause")
    ends.add_column("members", justify="right")
    for cause, n in report.ended_with.items():
        ends.add_row(cause, str(n), style="green" if cause == SUCCESS else None)
    if not report.ended_with:
        ends.add_row("(none ended yet)", "")

    causes = Table(box=box.SIMPLE_HEAD, title="attempts by cause", title_justify="left")
    causes.add_column("cause")
    for name in ("attempts", "counted", "bridged", "talk"):
        causes.add_column(name, justify="right")
    shown = [d for d in DISPOSITIONS if report.dispositions.get(d)]
    for name in shown:
        causes.add_column(name, justify="right")
    for line in report.causes:
        causes.add_row(
            line.cause, str(line.attempts), str(line.counted), str(line.bridged),
            duration(line.talk_seconds), *(str(line.dispositions.get(d, 0)) for d in shown),
        )  # fmt: skip
    if not report.causes:
        causes.add_row("(no attempts yet)", "", "", "", "", *("" for _ in shown))
    return Group(totals, ends, causes)

"""Read-only views of the running dialer for the API, the CLI and the dashboard.

Theory of operation
-------------------
The runner (``dialer/runner.py``) owns the engine, the calls and the store; everything
outside it sees the dialer through these frozen snapshots, built on demand from the
engine's state and the runner's bookkeeping (``DialerRunner.campaign_view``,
``agent_views``, ``live_calls``); a campaign's member counters come from the store
(:class:`MemberCounters`), read apart so that they can be read off the event loop. Each
view has ``to_json()``: plain dicts, lists, strings, numbers, booleans and None, times as
float Unix seconds (wall clock), so the REST layer and the dashboard's event stream can
send them as they are.

:class:`RunnerMetrics` is the runner's counters for ``/metrics``: ended calls by campaign
and cause, and the last lease latencies (seconds) in a bounded window.

Pure code: no IO, no clock.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "NO_COUNTERS",
    "AgentView",
    "CallView",
    "CampaignView",
    "MemberCounters",
    "RunnerMetrics",
]

LEASE_SAMPLES = 1000
"How many recent lease latencies ``RunnerMetrics`` keeps."


@dataclass(frozen=True, slots=True)
class CallView:
    """One live progressive call."""

    call_id: str
    agent: str
    number: str
    campaign: str
    "Campaign id."
    campaign_name: str
    member: int
    state: str
    """offering (attempt stored, agent INVITE going out) | ringing (the agent's phone rings)
    | dialing (agent answered, member leg rings) | talking (member answered) | bridged"""
    since: float
    "Wall time the call entered ``state``."
    started_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "agent": self.agent,
            "number": self.number,
            "campaign": self.campaign,
            "campaign_name": self.campaign_name,
            "member": self.member,
            "state": self.state,
            "since": self.since,
            "started_at": self.started_at,
        }


@dataclass(frozen=True, slots=True)
class AgentView:
    """One agent as the engine knows it."""

    id: str
    name: str
    registered: bool
    status: str
    "AgentStatus value: Available | Break | LoggedOut."
    state: str
    "AgentState value: Waiting | Reserved | Ringing | Talking | WrapUp | Delayed."
    since: float
    "Wall time of the last status/state/registration change the runner saw."
    calls: int
    "Answered agent legs since start."
    call: CallView | None = None
    "The agent's current call, if any."

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "registered": self.registered,
            "status": self.status,
            "state": self.state,
            "since": self.since,
            "calls": self.calls,
            "call": None if self.call is None else self.call.to_json(),
        }


@dataclass(frozen=True, slots=True)
class MemberCounters:
    """The store's side of a :class:`CampaignView`: two GROUP BY queries over a campaign's
    members, O(members), so the API and the dashboard read them in a worker thread
    (``DialerRunner.campaign_counts``) and build the rest of the view on the loop."""

    counts: Mapping[str, int]
    "Members by status: ready, leased, waiting, ended (MemberStore.counts)."
    causes: Mapping[str, int]
    "Ended members by the cause they ended with."


NO_COUNTERS = MemberCounters({}, {})
"For a view of what the engine alone knows (name, state...), without a store query."


@dataclass(frozen=True, slots=True)
class CampaignView:
    """One campaign: engine state plus the store's member counters."""

    id: str
    name: str
    state: str
    "running | stopped | finished"
    calendar_open: bool
    "Some member zone's calendar window is open now."
    lines_in_use: int
    "This node's leases asked for + calls in flight."
    limit: int
    "The campaign's ``limit`` (lines); each node enforces it on its own lines."
    counts: Mapping[str, int] = field(default_factory=dict)
    "Members by status: ready, leased, waiting, ended (MemberStore.counts)."
    causes: Mapping[str, int] = field(default_factory=dict)
    "Ended members by the cause they ended with (NORMAL_CLEARING, MAX_TRY_COUNT, ...)."
    in_flight: int = 0
    "Calls of this campaign in progress on this node."
    waiting: int = 0
    "Members waiting for a status result (held by this node's engine)."
    priority: int = 0
    finished_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "calendar_open": self.calendar_open,
            "lines_in_use": self.lines_in_use,
            "limit": self.limit,
            "counts": dict(self.counts),
            "causes": dict(self.causes),
            "in_flight": self.in_flight,
            "waiting": self.waiting,
            "priority": self.priority,
            "finished_reason": self.finished_reason,
        }


@dataclass
class RunnerMetrics:
    """Counters for ``/metrics`` (the runner updates them; readers only read)."""

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    "(campaign id, cause) -> ended calls."
    lease_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=LEASE_SAMPLES))
    "Most recent lease latencies (seconds)."
    leases: int = 0
    "Leases asked for (answered with a member or empty)."
    empty_leases: int = 0
    commands: int = 0
    "Engine commands executed."
    recovered_members: int = 0
    "Members given back by ``recover`` at start (a previous crash)."

    def call_ended(self, campaign_id: str, cause: str) -> None:
        self.calls[campaign_id, cause] += 1

    def leased(self, seconds: float, *, empty: bool) -> None:
        self.leases += 1
        self.empty_leases += int(empty)
        self.lease_seconds.append(seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": [
                {"campaign": campaign, "cause": cause, "count": count}
                for (campaign, cause), count in sorted(self.calls.items())
            ],
            "lease_seconds": list(self.lease_seconds),
            "leases": self.leases,
            "empty_leases": self.empty_leases,
            "commands": self.commands,
            "recovered_members": self.recovered_members,
        }

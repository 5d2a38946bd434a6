"""The member card of the agent console: who the agent is talking to, from the store.

Theory of operation
-------------------
A card is a JSON object built from read-only store queries (``MemberStore.get``,
``AttemptStore.for_member``) and the campaign's configuration: the member's name,
numbers and variables, its status (``waiting`` while the campaign waits for the agent's
result, with ``result_deadline``), and its attempt history, newest first. The number on
the card is the one of the member's latest attempt (the one ringing now).

:meth:`CardSource.owner_of` says which agent handled a member's latest attempt: the
console lets an agent submit a result for that member only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sipdialer.api.routes_common import Dialer
from sipdialer.config import CampaignConfig, Config
from sipdialer.store.attempts import AttemptRecord

HISTORY = 20
"Attempts shown on a card (newest first)."
RECENT_ATTEMPTS = 50
"Attempts per campaign searched for an agent's last member after a restart of the hub."

Json = dict[str, Any]


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


class CardSource:
    """The runner's stores and the campaigns' settings, for cards."""

    def __init__(self, runner: Dialer, config: Config) -> None:
        self.runner = runner
        self._campaigns = {c.name: c for c in config.campaigns}

    def campaign(self, campaign_id: str) -> tuple[str, CampaignConfig | None]:
        """The campaign's name and configuration (None when it is not configured)."""
        for name, cid in self.runner.campaign_ids().items():
            if cid == campaign_id:
                return name, self._campaigns.get(name)
        return campaign_id, None

    def owner_of(self, member_id: int) -> str | None:
        """The agent of the member's latest attempt."""
        attempts = self.runner.attempts.for_member(member_id)
        return attempts[-1].agent_id if attempts else None

    def last_member_of(self, agent_id: str) -> tuple[str, int] | None:
        """(campaign id, member id) of the agent's most recent attempt, searched among
        each campaign's latest attempts (used when the hub has not seen its call)."""
        best: AttemptRecord | None = None
        for campaign_id in self.runner.campaign_ids().values():
            for attempt in self.runner.attempts.for_campaign(campaign_id, limit=RECENT_ATTEMPTS):
                if attempt.agent_id == agent_id:
                    if best is None or attempt.created_at > best.created_at:
                        best = attempt
                    break  # newest first: the first one is this campaign's latest
        return None if best is None else (best.campaign_id, best.member_id)


def member_card(source: CardSource, campaign_id: str, member_id: int) -> Json | None:
    """The card of a member, or None when it is gone (deleted)."""
    record = source.runner.members.get(member_id)
    if record is None or record.campaign_id != campaign_id:
        return None
    attempts = source.runner.attempts.for_member(member_id)
    name, settings = source.campaign(campaign_id)
    latest = attempts[-1] if attempts else None
    return {
        "campaign": campaign_id,
        "campaign_name": name,
        "member": member_id,
        "name": record.name,
        "number": latest.number if latest is not None else "",
        "numbers": [
            {"number": n.number, "active": n.active, "attempts": n.attempts, "priority": n.priority}
            for n in record.state.numbers
        ],
        "variables": dict(record.variables),
        "status": record.status,
        "ended_with": record.state.ended_with,
        "waiting": record.status == "waiting",
        "result_deadline": _ts(record.result_deadline),
        "wait_for_result": bool(settings and settings.wait_for_result),
        "wrap_up_time": settings.wrap_up_time if settings else None,
        "agent": latest.agent_id if latest is not None else None,
        "attempts": [_attempt(a) for a in reversed(attempts[-HISTORY:])],
    }


def _attempt(attempt: AttemptRecord) -> Json:
    row = attempt.row
    return {
        "call_id": attempt.call_id,
        "number": attempt.number,
        "agent": attempt.agent_id,
        "state": attempt.state,
        "created_at": _ts(attempt.created_at),
        "ended_at": _ts(attempt.ended_at),
        "cause": attempt.cause,
        "disposition": attempt.disposition,
        "talk_seconds": row.get("talk_seconds"),
        "comment": row.get("comment"),
    }

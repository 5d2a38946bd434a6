"""A campaign as the engine sees it: settings, run state, lines, calendar by member zone.

Theory of operation
-------------------
:class:`CampaignSettings` is the frozen part (from ``[[campaigns]]`` plus its calendar);
:class:`Campaign` the running part the engine keeps per campaign:

* ``state``: running, stopped (by the manager) or finished (by itself, §5);
* ``lines``: leases asked for plus calls in flight. A line is taken when the engine reserves
  an agent and asks for a member, and given back at ``CallEnded`` (or an empty lease): so
  ``limit`` caps agent legs ringing plus member legs (§6), and a burst of leases cannot
  overshoot it;
* ``idle_until``: after an empty lease the campaign does not ask again before this time
  (the next member due, or a re-check) unless something wakes it: a disposition that
  schedules a member, ``MembersChanged``, or a change of the open zones;
* ``zones``: the distinct member time zones, given at load (``Campaign(zones=...)``) and
  grown by ``MembersChanged``. :meth:`Campaign.open_zones` answers which of them the
  calendar's window holds now (the calendar's own zone for ``None``); each closed zone
  caches its ``next_open`` so the question is a few ``is_open`` calls per dispatch, and
  :meth:`Campaign.next_opening` is the engine's calendar timer.

:class:`Trunk` is the shared part of campaigns on one trunk: ``max_calls`` over their lines
and ``cps`` as a minimum spacing of attempt starts.

Times are floats of Unix seconds (the engine's clock); the calendar takes aware UTC.
Pure code: no IO, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from sipdialer.dialer.calendar import Calendar, zone_of
from sipdialer.dialer.dispositions import DispositionPolicy

if TYPE_CHECKING:
    from sipdialer.config import CampaignConfig, TrunkConfig

EMPTY_RECHECK = 30.0
"Seconds before an idle campaign asks again when the source cannot say when a member is due."


def utc(now: float) -> datetime:
    """The engine's float clock as an aware UTC datetime."""
    return datetime.fromtimestamp(now, tz=UTC)


class CampaignState(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class CampaignSettings:
    """One campaign's parameters (``[[campaigns]]`` and its calendar)."""

    id: str
    "Store id (24 hex) or, when it has none yet, the name; LeaseMember carries it."
    name: str
    calendar: Calendar
    policy: DispositionPolicy
    priority: int = 0
    "Higher first, for shared agents and shared trunks; equal priorities round robin."
    limit: int = 10
    "Lines: leases asked for + calls in flight."
    strategy: str = "longest_idle"
    tiers: tuple[tuple[str, int], ...] = ()
    "(agent id, level); lower levels are offered first."
    wrap_up_time: float = 60.0
    "The agents' wrap-up when ``policy.wait_for_result``: the result's deadline."
    variables: Mapping[str, str] = field(default_factory=dict)
    trunk: str | None = None
    "The trunk its calls use, for the trunk's ``max_calls``/``cps`` (None: no trunk cap)."

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")

    @classmethod
    def from_config(
        cls,
        cfg: CampaignConfig,
        calendar: Calendar,
        *,
        campaign_id: str | None = None,
        trunk: str | None = None,
        refund_missed_result: bool = False,
    ) -> CampaignSettings:
        return cls(
            id=campaign_id or cfg.id or cfg.name,
            name=cfg.name,
            calendar=calendar,
            policy=DispositionPolicy.from_config(cfg, refund_missed_result=refund_missed_result),
            priority=cfg.priority,
            limit=cfg.limit,
            strategy=cfg.strategy,
            tiers=tuple((t.id, t.level) for t in cfg.agents),
            wrap_up_time=float(cfg.wrap_up_time),
            variables={k: str(v) for k, v in cfg.variables.items()},
            trunk=trunk,
        )

    @property
    def agent_ids(self) -> tuple[str, ...]:
        return tuple(agent_id for agent_id, _ in self.tiers)

    def levels(self) -> list[list[str]]:
        """Agent ids grouped by tier level, lowest level first."""
        by_level: dict[int, list[str]] = {}
        for agent_id, level in self.tiers:
            by_level.setdefault(level, []).append(agent_id)
        return [by_level[level] for level in sorted(by_level)]


@dataclass(frozen=True, slots=True)
class TrunkSettings:
    name: str
    max_calls: int = 30
    cps: float = 5.0
    "New attempts per second over all campaigns on the trunk."

    @classmethod
    def from_config(cls, cfg: TrunkConfig) -> TrunkSettings:
        return cls(cfg.name, cfg.max_calls, float(cfg.cps))


@dataclass
class Trunk:
    settings: TrunkSettings
    lines: int = 0
    next_start: float = -math.inf
    "No attempt on this trunk starts before this time (cps spacing)."
    blocked: bool = False
    "A campaign wanted to start and cps said no: the engine wakes at ``next_start``."

    def may_start(self, now: float) -> bool:
        if now < self.next_start:
            self.blocked = True
            return False
        self.blocked = False  # a full trunk frees a line at a CallEnded: no timer needed
        return self.lines < self.settings.max_calls

    def started(self, now: float) -> None:
        self.lines += 1
        self.next_start = max(now, self.next_start) + 1.0 / self.settings.cps
        self.blocked = False


class Campaign:
    """The engine's running record of one campaign."""

    def __init__(
        self,
        settings: CampaignSettings,
        *,
        state: CampaignState = CampaignState.RUNNING,
        zones: Iterable[str | None] = (None,),
    ) -> None:
        self.settings = settings
        self.state = state
        self.lines = 0
        "Leases asked for + calls in flight."
        self.pending_leases = 0
        self.waiting = 0
        "Members of this campaign waiting for a status result (held by the engine)."
        self.idle_until = -math.inf
        self.idle_zones: frozenset[str | None] = frozenset()
        "The open zones when it went idle: a different set wakes it."
        self.finished_reason = ""
        self.zones: set[str | None] = set(zones)
        self._closed_until: dict[str | None, float] = {}
        self._ends_at = _ends_at(settings.calendar)
        self.levels = settings.levels()
        "Agent ids by tier level, lowest first."

    def __repr__(self) -> str:
        return f"<Campaign {self.settings.name} {self.state.value} lines={self.lines}>"

    @property
    def id(self) -> str:
        return self.settings.id

    @property
    def busy(self) -> bool:
        """Calls, leases or waiting members still in the engine's hands."""
        return self.lines > 0 or self.waiting > 0

    def ended_by_calendar(self, now: float) -> bool:
        return now >= self._ends_at

    def wake(self, at: float | None = None) -> None:
        """A member becomes due at ``at`` (None: now): do not sleep past it."""
        if at is None:
            self.idle_until = -math.inf
        else:
            self.idle_until = min(self.idle_until, at)

    def open_zones(self, now: float) -> frozenset[str | None]:
        """Member zones whose calendar window holds at ``now``."""
        calendar = self.settings.calendar
        moment: datetime | None = None
        opened = []
        for zone in self.zones:
            if now < self._closed_until.get(zone, -math.inf):
                continue
            moment = moment or utc(now)
            tz = zone_of(zone)
            if calendar.is_open(moment, tz):
                opened.append(zone)
                continue
            nxt = calendar.next_open(moment, tz)
            self._closed_until[zone] = math.inf if nxt is None else nxt.timestamp()
        return frozenset(opened)

    def next_opening(self, now: float) -> float | None:
        """When a closed zone opens next (after ``open_zones`` ran), or None."""
        pending = [t for z, t in self._closed_until.items() if z in self.zones and t > now]
        best = min(pending, default=math.inf)
        return None if best == math.inf else best

    def ends_at(self) -> float | None:
        return None if self._ends_at == math.inf else self._ends_at


def _ends_at(calendar: Calendar) -> float:
    """First instant after the calendar's end date (its zone's midnight), or inf."""
    if calendar.end is None:
        return math.inf
    day: date = calendar.end + timedelta(days=1)
    return datetime.combine(day, time(), tzinfo=calendar.zone).timestamp()

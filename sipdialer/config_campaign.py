"""The ``[[calendars]]``, ``[causes]`` and ``[[campaigns]]`` tables of the configuration
(:mod:`sipdialer.config` has the rest and the whole file's checks; it re-exports these)."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sipdialer.config_checks import (
    DEFAULT_ERROR_CAUSES,
    DEFAULT_MINUS_CAUSES,
    DEFAULT_OK_CAUSES,
    DEFAULT_RETRY_CAUSES,
    CauseName,
    Day,
    Flag,
    Name,
    Variables,
    check_timezone,
    check_windows_disjoint,
    checked,
    count,
    parse_window,
    seconds,
)

CauseList = Literal["error", "retry", "ok", "minus"]
HOUR, DAY = 3600.0, 86400.0


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


# --- [[calendars]] -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class TimeWindow:
    """A dialing window of one day, in minutes since midnight; ``end`` may be 1440."""

    start: int
    end: int

    def contains(self, minute_of_day: int) -> bool:
        return self.start <= minute_of_day < self.end


class WeekConfig(_Model):
    """Windows per weekday, ``"HH:MM-HH:MM"``; an absent day is closed."""

    mon: Day = ()
    tue: Day = ()
    wed: Day = ()
    thu: Day = ()
    fri: Day = ()
    sat: Day = ()
    sun: Day = ()

    @field_validator("*")
    @classmethod
    def _disjoint(cls, value: Day) -> Day:
        check_windows_disjoint(value)
        return value

    def windows(self, weekday: int) -> tuple[TimeWindow, ...]:
        """Sorted windows of ``weekday`` (0 = Monday, as ``date.weekday()``)."""
        day: Day = getattr(self, ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[weekday])
        return tuple(sorted(TimeWindow(*parse_window(text)) for text in day))


class CalendarConfig(_Model):
    name: Name
    timezone: Annotated[str, checked(check_timezone)] = "UTC"
    start: date | None = None  # None = no limit
    end: date | None = None
    holidays: tuple[date, ...] = ()
    week: WeekConfig = WeekConfig()

    @field_validator("end")
    @classmethod
    def _end(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start")
        if value is not None and start is not None and value < start:
            raise ValueError(f"end ({value}) is before start ({start})")
        return value

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def windows_on(self, day: date) -> tuple[TimeWindow, ...]:
        """Windows of a local date: none on holidays or outside ``start``..``end``."""
        if day in self.holidays or (self.start and day < self.start):
            return ()
        if self.end and day > self.end:
            return ()
        return self.week.windows(day.weekday())


# --- [[campaigns]] -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CauseLists:
    """The effective disposition lists of a campaign (defaults filled in)."""

    error: tuple[str, ...]
    retry: tuple[str, ...]
    ok: tuple[str, ...]
    minus: tuple[str, ...]

    def list_of(self, cause: str) -> CauseList | None:
        """Which list holds ``cause``, or None (then it counts like Retry)."""
        for which in ("minus", "ok", "retry", "error"):
            if cause in getattr(self, which):
                return which
        return None


class CausesConfig(_Model):
    """Cause names per disposition; an absent list means Webitel's default list."""

    error: tuple[CauseName, ...] | None = None
    retry: tuple[CauseName, ...] | None = None
    ok: tuple[CauseName, ...] | None = None
    minus: tuple[CauseName, ...] | None = None

    @field_validator("*")
    @classmethod
    def _no_repeats(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for cause in set(value or ()):
            if value and value.count(cause) > 1:
                raise ValueError(f"{cause} is listed twice")
        return value

    @model_validator(mode="after")
    def _disjoint(self) -> CausesConfig:
        lists = self.effective()
        seen: dict[str, str] = {}
        for which in ("error", "retry", "ok", "minus"):
            for cause in getattr(lists, which):
                if cause in seen:
                    default = [w for w in (seen[cause], which) if getattr(self, w) is None]
                    hint = f' ("{default[0]}" is the default list; set it)' if default else ""
                    raise ValueError(f'{cause} is in both "{seen[cause]}" and "{which}"{hint}')
                seen[cause] = which
        return self

    def effective(self) -> CauseLists:
        return CauseLists(
            error=DEFAULT_ERROR_CAUSES if self.error is None else self.error,
            retry=DEFAULT_RETRY_CAUSES if self.retry is None else self.retry,
            ok=DEFAULT_OK_CAUSES if self.ok is None else self.ok,
            minus=DEFAULT_MINUS_CAUSES if self.minus is None else self.minus,
        )


class AgentTier(_Model):
    """An agent of a campaign; lower levels are offered first (mod_callcenter tiers)."""

    id: Annotated[str, Field(min_length=1)]
    level: int = count(1, ge=1, le=100)


def _tier(value: Any) -> Any:
    if isinstance(value, str):
        return {"id": value}
    if not isinstance(value, Mapping | AgentTier):
        raise ValueError('expected an agent id or { id = "...", level = N }')
    return value


class CampaignConfig(_Model):
    name: Name
    id: str = ""  # optional 24-hex id; the store generates one when empty
    type: Literal["progressive"] = "progressive"
    calendar: Name
    priority: int = count(0, ge=0, le=1000)  # higher first on a shared trunk
    limit: int = count(10, ge=1, le=10_000)  # simultaneous calls (lines)
    retry_wait: float = seconds(600, le=30 * DAY)
    max_retries: int = count(3, ge=1, le=1000)
    min_success_duration: float = seconds(10, le=HOUR)
    wrap_up_time: float = seconds(60, le=DAY)  # used when wait_for_result = true
    wait_for_result: Flag = False
    refund_missed_result: Flag = False  # no status result by the deadline: refund, not count
    strategy: Literal["longest_idle", "fewest_calls"] = "longest_idle"
    agents: tuple[Annotated[AgentTier, BeforeValidator(_tier)], ...] = ()
    variables: Variables = Field(default_factory=dict)
    causes: CausesConfig = CausesConfig()

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if value and not re.fullmatch(r"[0-9a-fA-F]{24}", value):
            raise ValueError(f'expected "" or 24 hex digits, got "{value}"')
        return value.lower()

    @field_validator("agents")
    @classmethod
    def _unique(cls, value: tuple[AgentTier, ...]) -> tuple[AgentTier, ...]:
        ids = [tier.id for tier in value]
        for agent in ids:
            if ids.count(agent) > 1:
                raise ValueError(f'agent "{agent}" is listed twice')
        return value

    @property
    def agent_ids(self) -> tuple[str, ...]:
        return tuple(tier.id for tier in self.agents)

    def effective_causes(self) -> CauseLists:
        """Error/Retry/OK/Minus lists with Webitel's defaults for the absent ones."""
        return self.causes.effective()

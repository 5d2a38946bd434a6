"""The TOML configuration file as frozen pydantic models.

``load_config(path)`` / ``parse_config(text_or_dict)`` return a :class:`Config` or raise
:class:`ConfigError`, which carries *every* problem found, each as ``key.path[0].sub:
message`` (``campaigns[0].calendar: no calendar named "ofice"``). Unknown keys are
errors (``extra="forbid"``), so a typo never silently falls back to a default. Every key
has a default, so an empty file is a valid configuration that dials nothing.

Durations are seconds (float) unless the key says otherwise. The models are the
settings objects handed to the cores; the helpers (``sip.listen_host``,
``campaign.effective_causes()``...) only parse or look up, they decide nothing.
"""

from __future__ import annotations

import os
import re
import tomllib
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sipdialer import config_checks
from sipdialer.config_checks import (
    REFERENCES_ERROR,
    CauseName,
    Day,
    Dialable,
    FeatureCode,
    Flag,
    ListenAddress,
    Name,
    Problem,
    PublicAddress,
    TrunkAddress,
    Variables,
    check_references,
    check_regex,
    check_timezone,
    check_windows_disjoint,
    checked,
    count,
    format_problem,
    matching,
    parse_host_port,
    parse_port_range,
    parse_window,
    problems_from_validation_error,
    seconds,
    sort_key,
    toml_problem,
)

# The cause vocabulary (causes.md §3 plus the dialer's own) and Webitel's default lists (§4).
KNOWN_CAUSES = config_checks.KNOWN_CAUSES
DEFAULT_ERROR_CAUSES = config_checks.DEFAULT_ERROR_CAUSES
DEFAULT_RETRY_CAUSES = config_checks.DEFAULT_RETRY_CAUSES
DEFAULT_OK_CAUSES = config_checks.DEFAULT_OK_CAUSES
DEFAULT_MINUS_CAUSES = config_checks.DEFAULT_MINUS_CAUSES

CauseList = Literal["error", "retry", "ok", "minus"]
T = TypeVar("T")


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every ``key.path: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = f"{len(problems)} problem" + ("" if len(problems) == 1 else "s")
        super().__init__(f"invalid configuration ({count}):\n" + "\n".join(problems))


HOUR, DAY = 3600.0, 86400.0
REALM_RULE = "must be non-empty, without quotes, backslashes or line breaks"
URL_RULE = 'expected "sqlite:///FILE" or "postgresql+psycopg://user:pass@host/db"'
AGENT_ID_RULE = "must be 1..64 letters, digits or _ . + -"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


# --- [sip] [media] [store] [api] -----------------------------------------------------------


class FeatureCodes(_Model):
    """Codes an agent's phone dials to the dialer to set its status."""

    available: FeatureCode = "*1"
    break_: FeatureCode = Field(default="*2", alias="break")
    logged_out: FeatureCode = "*0"

    @model_validator(mode="after")
    def _distinct(self) -> FeatureCodes:
        if len({self.available, self.break_, self.logged_out}) < 3:
            raise ValueError("the three feature codes must differ")
        return self


class SipConfig(_Model):
    listen: ListenAddress = "0.0.0.0:5060"  # UDP and TCP; port 0 = any free port
    public_address: PublicAddress = ""  # host[:port] for Via/Contact/SDP behind NAT
    realm: Annotated[str, matching(r'[^"\\\r\n]+', REALM_RULE)] = "dialer.local"  # digest realm
    qualify_interval: float = seconds(30, le=HOUR)  # OPTIONS to registered phones; 0 = off
    feature_codes: FeatureCodes = FeatureCodes()
    t1: float = seconds(0.5, gt=0, le=10)  # RFC 3261 timers, seconds
    t2: float = seconds(4.0, gt=0, le=60, validate_default=True)  # checked against t1
    t4: float = seconds(5.0, gt=0, le=60)

    @field_validator("t2")
    @classmethod
    def _t2(cls, value: float, info: ValidationInfo) -> float:
        t1 = info.data.get("t1")
        if t1 is not None and value < t1:
            raise ValueError(f"t2 ({value}) must not be below t1 ({t1})")
        return value

    @property
    def listen_host(self) -> str:
        return parse_host_port(self.listen, default_port=None, allow_zero=True)[0]

    @property
    def listen_port(self) -> int:
        return parse_host_port(self.listen, default_port=None, allow_zero=True)[1]

    @property
    def public_host(self) -> str:
        """Host for Via/Contact/SDP: ``public_address``, else the listen host."""
        if not self.public_address:
            return self.listen_host
        return parse_host_port(self.public_address, default_port=0, allow_zero=False)[0]

    @property
    def public_port(self) -> int:
        """Port for Via/Contact: ``public_address``'s port, else the listen port."""
        if not self.public_address:
            return self.listen_port
        port = parse_host_port(self.public_address, default_port=0, allow_zero=False)[1]
        return port or self.listen_port


class MediaConfig(_Model):
    rtp_ports: Annotated[str, checked(parse_port_range)] = "20000-20999"  # even lo, RTCP = RTP+1
    media_timeout: float = seconds(30, le=HOUR)  # no RTP this long on a bridge: hang up; 0 = off
    ringback: str = "eu"  # "eu" | "us" | a WAV file under media/
    recordings_dir: str = ""  # empty = no recording

    @field_validator("ringback")
    @classmethod
    def _ringback(cls, value: str) -> str:
        if value not in ("eu", "us") and not value.lower().endswith(".wav"):
            raise ValueError(f'expected "eu", "us" or a .wav file name, got "{value}"')
        return value

    @property
    def rtp_port_min(self) -> int:
        return parse_port_range(self.rtp_ports)[0]

    @property
    def rtp_port_max(self) -> int:
        return parse_port_range(self.rtp_ports)[1]


class StoreConfig(_Model):
    url: Annotated[str, matching(r"(sqlite|postgresql)(\+\w+)?://.*", URL_RULE)] = (
        "sqlite:///sipdialer.db"
    )


class ApiToken(_Model):
    token: Annotated[str, Field(min_length=1)]
    key: Annotated[str, Field(min_length=1)]


class ApiConfig(_Model):
    listen: ListenAddress = "127.0.0.1:8080"
    tokens: tuple[ApiToken, ...] = (ApiToken(token="change-me", key="change-me-too"),)

    @field_validator("tokens")
    @classmethod
    def _unique(cls, value: tuple[ApiToken, ...]) -> tuple[ApiToken, ...]:
        if len({t.token for t in value}) < len(value):
            raise ValueError("each token may appear only once")
        return value

    @property
    def listen_host(self) -> str:
        return parse_host_port(self.listen, default_port=None, allow_zero=True)[0]

    @property
    def listen_port(self) -> int:
        return parse_host_port(self.listen, default_port=None, allow_zero=True)[1]


# --- [[trunks]] [[routes]] [[agents]] ------------------------------------------------------

ROUTE_CALL_TIMEOUT = 60.0
"""Member-leg ring time when the route sets no ``call_timeout`` variable (seconds)."""


class TrunkConfig(_Model):
    name: Name
    address: TrunkAddress
    transport: Literal["udp", "tcp"] = "udp"
    username: str = ""  # digest credentials for 401/407 and REGISTER
    password: str = ""
    register_: Flag = Field(default=False, alias="register")
    caller_id: Dialable = ""  # default caller ID (From user)
    max_calls: int = count(30, ge=1, le=100_000)
    cps: float = Field(5.0, strict=True, gt=0, le=1000)  # new calls per second

    @field_validator("register_")
    @classmethod
    def _register(cls, value: bool, info: ValidationInfo) -> bool:
        if value and not info.data.get("username", "x"):
            raise ValueError("register = true needs a username")
        return value

    @property
    def host(self) -> str:
        return parse_host_port(self.address, default_port=5060, allow_zero=False)[0]

    @property
    def port(self) -> int:
        return parse_host_port(self.address, default_port=5060, allow_zero=False)[1]


class RouteConfig(_Model):
    pattern: Annotated[str, checked(check_regex)]  # re.search on the member's number
    trunk: Name
    strip: int = count(0, ge=0, le=32)  # digits removed from the front
    prepend: Annotated[str, matching(r"[0-9+*#]*", "may only use digits and + * #")] = ""
    caller_id: Dialable = ""
    variables: Variables = Field(default_factory=dict)  # call_timeout: member ring time

    @field_validator("variables")
    @classmethod
    def _call_timeout(cls, value: dict[str, Any]) -> dict[str, Any]:
        timeout = value.get("call_timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float)
            or not 0 < timeout <= HOUR
        ):  # fmt: skip
            raise ValueError(f"call_timeout must be seconds in (0, {HOUR:g}], got {timeout!r}")
        return value

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern)

    @property
    def call_timeout(self) -> float:
        """Member-leg ring time: the ``call_timeout`` variable, else 60 s."""
        return float(self.variables.get("call_timeout", ROUTE_CALL_TIMEOUT))

    def matches(self, number: str) -> bool:
        """``re.search`` of the pattern on the member's number (anchor it with ^...$)."""
        return self.regex.search(number) is not None

    def dial_string(self, number: str) -> str:
        """The number sent to the trunk: ``strip`` digits removed, then ``prepend``."""
        return self.prepend + number[self.strip :]


class AgentConfig(_Model):
    id: Annotated[str, matching(r"[A-Za-z0-9_.+-]{1,64}", AGENT_ID_RULE)]  # SIP user (extension)
    name: str = ""
    password: Annotated[str, Field(min_length=1)]  # the phone's digest password
    call_timeout: float = seconds(15, gt=0, le=600)  # agent ring time
    wrap_up_time: float = seconds(10, le=HOUR)
    max_no_answer: int = count(3, ge=0, le=1000)  # consecutive, then Break; 0 = never
    busy_delay: float = seconds(30, le=HOUR)
    reject_delay: float = seconds(30, le=HOUR)
    no_answer_delay: float = seconds(30, le=HOUR)
    auto_answer: Flag = False  # send Call-Info answer-after=0 / Alert-Info


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


# --- the whole file ------------------------------------------------------------------------


class Config(_Model):
    sip: SipConfig = SipConfig()
    media: MediaConfig = MediaConfig()
    store: StoreConfig = StoreConfig()
    api: ApiConfig = ApiConfig()
    trunks: tuple[TrunkConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    agents: tuple[AgentConfig, ...] = ()
    calendars: tuple[CalendarConfig, ...] = ()
    campaigns: tuple[CampaignConfig, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> Config:
        # Also reported per key path by parse_config, which filters this error out.
        problems = check_references(self.model_dump(by_alias=True))
        if problems:
            details = "; ".join(format_problem(problem) for problem in problems)
            raise PydanticCustomError(REFERENCES_ERROR, "{details}", {"details": details})
        return self

    def trunk(self, name: str) -> TrunkConfig:
        return _find(self.trunks, lambda t: t.name == name, f"trunk {name!r}")

    def agent(self, agent_id: str) -> AgentConfig:
        return _find(self.agents, lambda a: a.id == agent_id, f"agent {agent_id!r}")

    def calendar(self, name: str) -> CalendarConfig:
        return _find(self.calendars, lambda c: c.name == name, f"calendar {name!r}")

    def campaign(self, name_or_id: str) -> CampaignConfig:
        """A campaign by name, or by its 24-hex id when it has one."""
        return _find(
            self.campaigns,
            lambda c: c.name == name_or_id or (bool(c.id) and c.id == name_or_id.lower()),
            f"campaign {name_or_id!r}",
        )

    def route_for(self, number: str) -> RouteConfig | None:
        """The first route whose pattern matches ``number``."""
        return next((route for route in self.routes if route.matches(number)), None)


def _find(items: tuple[T, ...], match: Callable[[T], bool], what: str) -> T:
    for item in items:
        if match(item):
            return item
    raise KeyError(f"no {what} in the configuration")


# --- loading -------------------------------------------------------------------------------


def parse_config(source: str | Mapping[str, Any]) -> Config:
    """Validate TOML text (or already-parsed data); raise ConfigError with every problem."""
    if isinstance(source, str):
        try:
            raw: Mapping[str, Any] = tomllib.loads(source)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([toml_problem(exc)]) from None
    else:
        raw = source
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        problems = problems_from_validation_error(exc, Config) + check_references(raw)
    unique: dict[str, Problem] = {}
    for problem in sorted(problems, key=lambda p: sort_key(Config, p[0])):
        unique.setdefault(format_problem(problem), problem)
    raise ConfigError(list(unique))


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a TOML file; raise ConfigError with every problem."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as file:
            text = file.read().decode("utf-8-sig")
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{name}: not UTF-8 text (bad byte at offset {exc.start})"]) from None
    return parse_config(text)

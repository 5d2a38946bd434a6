"""The TOML configuration file as frozen pydantic models.

``load_config(path)`` / ``parse_config(text_or_dict)`` return a :class:`Config` or raise
:class:`ConfigError`, which carries *every* problem found, each as ``key.path[0].sub:
message`` (``campaigns[0].calendar: no calendar named "ofice"``). Unknown keys are
errors (``extra="forbid"``), so a typo never silently falls back to a default. Every key
has a default, so an empty file is a valid configuration that dials nothing.

Durations are seconds (float) unless the key says otherwise. The models are the
settings objects handed to the cores; the helpers (``sip.listen_host``,
``campaign.effective_causes()``...) only parse or look up, they decide nothing. The
calendar, cause and campaign tables live in :mod:`sipdialer.config_campaign`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sipdialer import config_checks
from sipdialer.config_campaign import (
    HOUR,
    AgentTier,
    CalendarConfig,
    CampaignConfig,
    CauseLists,
    CausesConfig,
    TimeWindow,
    WeekConfig,
    _Model,
)
from sipdialer.config_checks import (
    REFERENCES_ERROR,
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
    checked,
    count,
    format_problem,
    matching,
    parse_host_port,
    parse_port_range,
    problems_from_validation_error,
    seconds,
    sort_key,
    toml_problem,
)

__all__ = [
    "AgentConfig",
    "AgentTier",
    "ApiConfig",
    "ApiToken",
    "CalendarConfig",
    "CampaignConfig",
    "CauseLists",
    "CausesConfig",
    "Config",
    "ConfigError",
    "DEFAULT_ERROR_CAUSES",
    "DEFAULT_MINUS_CAUSES",
    "DEFAULT_OK_CAUSES",
    "DEFAULT_RETRY_CAUSES",
    "FeatureCodes",
    "KNOWN_CAUSES",
    "MediaConfig",
    "ROUTE_CALL_TIMEOUT",
    "RouteConfig",
    "SipConfig",
    "StoreConfig",
    "TimeWindow",
    "TrunkConfig",
    "WeekConfig",
    "load_config",
    "parse_config",
]

# The cause vocabulary (causes.md §3 plus the dialer's own) and Webitel's default lists (§4).
KNOWN_CAUSES = config_checks.KNOWN_CAUSES
DEFAULT_ERROR_CAUSES = config_checks.DEFAULT_ERROR_CAUSES
DEFAULT_RETRY_CAUSES = config_checks.DEFAULT_RETRY_CAUSES
DEFAULT_OK_CAUSES = config_checks.DEFAULT_OK_CAUSES
DEFAULT_MINUS_CAUSES = config_checks.DEFAULT_MINUS_CAUSES

T = TypeVar("T")


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every ``key.path: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = f"{len(problems)} problem" + ("" if len(problems) == 1 else "s")
        super().__init__(f"invalid configuration ({count}):\n" + "\n".join(problems))


REALM_RULE = "must be non-empty, without quotes, backslashes or line breaks"
URL_RULE = 'expected "sqlite:///FILE" or "postgresql+psycopg://user:pass@host/db"'
AGENT_ID_RULE = "must be 1..64 letters, digits or _ . + -"


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

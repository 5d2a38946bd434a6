"""The pieces ``config.py`` builds its models from, and the error reporting.

* the hangup-cause vocabulary and Webitel's default disposition lists (causes.md §3-4);
* value parsers and validators (``host:port``, RTP port ranges, ``HH:MM-HH:MM`` windows,
  regexes, time zones), each raising ValueError with the message users see, and the
  annotated field types made of them;
* the cross-reference checks (routes → trunks, campaigns → calendars and agents, unique
  names and ids). They read the *raw* TOML data on purpose: they must still report when
  some unrelated key is wrong and pydantic refused to build the models, so that one run
  of ``sipdialer check`` lists every problem in the file;
* turning pydantic errors and TOML syntax errors into problems. A problem is a
  ``(loc, message)`` pair, ``loc`` a pydantic-style location such as
  ``("campaigns", 0, "calendar")``, shown as ``campaigns[0].calendar: message``.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
import tomllib
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, PlainValidator, ValidationError

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]

REFERENCES_ERROR = "config_references"
"""pydantic error type raised by ``Config``'s own reference check (see ``config.py``)."""

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_PORT_RANGE = re.compile(r"^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$")
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")

RTP_PORT_MIN = 1024
"""Lowest RTP port allowed: below it are privileged ports (bind needs root)."""
PORT_MAX = 65535


# --- hangup causes (reference/causes.md §3 and §4) -----------------------------------------

FREESWITCH_CAUSES: tuple[str, ...] = (
    "NONE", "UNALLOCATED_NUMBER", "NO_ROUTE_TRANSIT_NET", "NO_ROUTE_DESTINATION",
    "CHANNEL_UNACCEPTABLE", "CALL_AWARDED_DELIVERED", "NORMAL_CLEARING", "USER_BUSY",
    "NO_USER_RESPONSE", "NO_ANSWER", "SUBSCRIBER_ABSENT", "CALL_REJECTED", "NUMBER_CHANGED",
    "REDIRECTION_TO_NEW_DESTINATION", "EXCHANGE_ROUTING_ERROR", "DESTINATION_OUT_OF_ORDER",
    "INVALID_NUMBER_FORMAT", "FACILITY_REJECTED", "RESPONSE_TO_STATUS_ENQUIRY",
    "NORMAL_UNSPECIFIED", "NORMAL_CIRCUIT_CONGESTION", "NETWORK_OUT_OF_ORDER",
    "NORMAL_TEMPORARY_FAILURE", "SWITCH_CONGESTION", "ACCESS_INFO_DISCARDED",
    "REQUESTED_CHAN_UNAVAIL", "PRE_EMPTED", "FACILITY_NOT_SUBSCRIBED", "OUTGOING_CALL_BARRED",
    "INCOMING_CALL_BARRED", "BEARERCAPABILITY_NOTAUTH", "BEARERCAPABILITY_NOTAVAIL",
    "SERVICE_UNAVAILABLE", "BEARERCAPABILITY_NOTIMPL", "CHAN_NOT_IMPLEMENTED",
    "FACILITY_NOT_IMPLEMENTED", "SERVICE_NOT_IMPLEMENTED", "INVALID_CALL_REFERENCE",
    "INCOMPATIBLE_DESTINATION", "INVALID_MSG_UNSPECIFIED", "MANDATORY_IE_MISSING",
    "MESSAGE_TYPE_NONEXIST", "WRONG_MESSAGE", "IE_NONEXIST", "INVALID_IE_CONTENTS",
    "WRONG_CALL_STATE", "RECOVERY_ON_TIMER_EXPIRE", "MANDATORY_IE_LENGTH_ERROR",
    "PROTOCOL_ERROR", "INTERWORKING", "SUCCESS", "ORIGINATOR_CANCEL", "CRASH",
    "SYSTEM_SHUTDOWN", "LOSE_RACE", "MANAGER_REQUEST", "BLIND_TRANSFER", "ATTENDED_TRANSFER",
    "ALLOTTED_TIMEOUT", "USER_CHALLENGE", "MEDIA_TIMEOUT", "PICKED_OFF", "USER_NOT_REGISTERED",
    "PROGRESS_TIMEOUT", "INVALID_GATEWAY", "GATEWAY_DOWN", "INVALID_URL", "INVALID_PROFILE",
    "NO_PICKUP", "SRTP_READ_ERROR", "BOWOUT", "BUSY_EVERYWHERE", "DECLINE",
    "DOES_NOT_EXIST_ANYWHERE", "NOT_ACCEPTABLE", "UNWANTED", "NO_IDENTITY", "BAD_IDENTITY_INFO",
    "UNSUPPORTED_CERTIFICATE", "INVALID_IDENTITY", "STALE_DATE", "REJECT_ALL",
)  # fmt: skip
"""FreeSWITCH's ``switch_call_cause_t`` names (causes.md §3), in enum order."""

DIALER_CAUSES: tuple[str, ...] = (
    "NO_ROUTE", "MEMBER_EXPIRED", "MAX_TRY_COUNT", "ABANDONED", "PROCESS_CRASH",
    "NO_COMMUNICATIONS",
)  # fmt: skip
"""Causes the dialer itself assigns (Webitel 3.x names)."""

KNOWN_CAUSES: frozenset[str] = frozenset(FREESWITCH_CAUSES + DIALER_CAUSES)

# Webitel 3.x defaults (engine 3.11.7 src/services/autoDialer/const.js; causes.md §4).
DEFAULT_ERROR_CAUSES: tuple[str, ...] = (
    "UNALLOCATED_NUMBER", "NO_ROUTE", "MEMBER_EXPIRED", "INVALID_NUMBER_FORMAT",
    "NETWORK_OUT_OF_ORDER", "OUTGOING_CALL_BARRED", "SERVICE_UNAVAILABLE",
    "CHAN_NOT_IMPLEMENTED", "SERVICE_NOT_IMPLEMENTED", "INCOMPATIBLE_DESTINATION",
    "MANDATORY_IE_MISSING", "PROGRESS_TIMEOUT", "GATEWAY_DOWN",
)  # fmt: skip
DEFAULT_RETRY_CAUSES: tuple[str, ...] = (
    "NO_ROUTE_DESTINATION", "DESTINATION_OUT_OF_ORDER", "USER_BUSY", "CALL_REJECTED",
    "NO_USER_RESPONSE", "NO_ANSWER", "SUBSCRIBER_ABSENT", "NUMBER_CHANGED",
    "NORMAL_UNSPECIFIED", "NORMAL_CIRCUIT_CONGESTION", "ORIGINATOR_CANCEL", "LOSE_RACE",
    "USER_NOT_REGISTERED",
)  # fmt: skip
DEFAULT_OK_CAUSES: tuple[str, ...] = ("NORMAL_CLEARING",)
DEFAULT_MINUS_CAUSES: tuple[str, ...] = ("RECOVERY_ON_TIMER_EXPIRE", "NORMAL_TEMPORARY_FAILURE")


# --- value parsers (raise ValueError with the message users see) ---------------------------


def check_name(value: str) -> str:
    if not value or value != value.strip() or "/" in value or not value.isprintable():
        raise ValueError('must be non-empty, printable, without "/" or surrounding spaces')
    return value


def check_cause(value: str) -> str:
    if value not in KNOWN_CAUSES:
        raise ValueError(f'unknown cause "{value}"{suggest(value, sorted(KNOWN_CAUSES))}')
    return value


def check_scalar(value: Any) -> str | int | float | bool:
    if not isinstance(value, str | int | float | bool) or (
        isinstance(value, float) and not math.isfinite(value)
    ):
        raise ValueError("a variable must be a string, a finite number or a boolean")
    return value


def check_variable_names(value: dict[str, str | int | float | bool]) -> dict[str, Any]:
    for key in value:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", key):
            raise ValueError(
                f'variable name "{key}" may only use letters, digits, "-" and "_"'
                " (it is sent as an X-Dialer-Var-<name> header)"
            )
    return value


def parse_host_port(text: str, *, default_port: int | None, allow_zero: bool) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port``); the port may be left out when a default exists.

    Returns the host without brackets. ``allow_zero`` admits port 0 ("any free port"),
    which only makes sense for addresses we listen on.
    """
    if text != text.strip() or not text:
        raise ValueError(f'expected "host:port", got "{text}"')
    port_text: str | None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f'expected "[IPv6]:port", got "{text}"')
        port_text = rest[1:] if rest else None
        _check_ip(host, version=6, text=text)
    elif text.count(":") > 1:
        if default_port is None:
            raise ValueError(f'IPv6 addresses need brackets, e.g. "[::1]:5060", got "{text}"')
        host, port_text = text, None
        _check_ip(host, version=6, text=text)
    else:
        host, sep, port_text_ = text.partition(":")
        port_text = port_text_ if sep else None
        _check_host(host, text=text)
    if port_text is None:
        if default_port is None:
            raise ValueError(f'missing ":port" in "{text}"')
        return host, default_port
    if not port_text.isdigit() or len(port_text) > 5:
        raise ValueError(f'port must be a number, got "{port_text}" in "{text}"')
    port = int(port_text)
    low = 0 if allow_zero else 1
    if not low <= port <= PORT_MAX:
        raise ValueError(f"port must be within {low}..{PORT_MAX}, got {port}")
    return host, port


def _check_ip(host: str, *, version: int, text: str) -> None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f'"{host}" is not a valid IP address in "{text}"') from None
    if address.version != version:
        raise ValueError(f'"{host}" is not an IPv{version} address in "{text}"')


def _check_host(host: str, *, text: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if not _HOSTNAME.match(host) or all(label.isdigit() for label in labels):
        raise ValueError(f'"{host}" is not a valid host name or IP address in "{text}"')


def parse_port_range(text: str) -> tuple[int, int]:
    """``"20000-20999"`` → ``(20000, 20999)``; RTP takes even ports, RTCP the odd ones."""
    match = _PORT_RANGE.match(text)
    if match is None:
        raise ValueError(f'expected "lo-hi", e.g. "20000-20999", got "{text}"')
    lo, hi = int(match[1]), int(match[2])
    if not (RTP_PORT_MIN <= lo <= PORT_MAX and RTP_PORT_MIN <= hi <= PORT_MAX):
        raise ValueError(f"ports must be within {RTP_PORT_MIN}..{PORT_MAX}, got {lo}-{hi}")
    if lo >= hi:
        raise ValueError(f"the first port must be below the last, got {lo}-{hi}")
    if lo % 2:
        raise ValueError(f"the first port must be even (RTP even, RTCP odd), got {lo}")
    return lo, hi


def parse_window(text: str) -> tuple[int, int]:
    """``"09:00-13:00"`` → minutes since midnight ``(540, 780)``; the end may be ``24:00``."""
    match = _WINDOW.match(text)
    if match is None:
        raise ValueError(f'expected "HH:MM-HH:MM", got "{text}"')
    sh, sm, eh, em = (int(group) for group in match.groups())
    if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em):
        raise ValueError(f'"{text}" is not a valid time of day (00:00..24:00)')
    start, end = sh * 60 + sm, eh * 60 + em
    if start >= end:
        raise ValueError(
            f'"{text}": the start must be before the end (a window cannot cross midnight;'
            " split it in two)"
        )
    return start, end


def check_windows_disjoint(windows: Sequence[str]) -> None:
    """Raise if two ``HH:MM-HH:MM`` windows of one day overlap (touching is fine)."""
    spans = sorted((parse_window(text), text) for text in windows)
    for (prev, prev_text), (cur, cur_text) in zip(spans, spans[1:], strict=False):
        if cur[0] < prev[1]:
            raise ValueError(f'windows "{prev_text}" and "{cur_text}" overlap')


def check_regex(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise ValueError(f"not a valid regular expression: {exc.msg}{where}") from None


def check_timezone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        hint = suggest(name, sorted(zoneinfo.available_timezones()))
        raise ValueError(f'unknown time zone "{name}"{hint}') from None


def suggest(word: str, candidates: Sequence[str]) -> str:
    """``'; did you mean "x"?'`` for the closest candidate, or ``""``."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f'; did you mean "{matches[0]}"?' if matches else ""


# --- cross-references over the raw data ----------------------------------------------------


def _items(raw: Mapping[str, Any], key: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    value = raw.get(key)
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if isinstance(item, Mapping):
                yield index, item


def _names(
    raw: Mapping[str, Any], section: str, key: str, what: str, problems: list[Problem]
) -> list[str]:
    """The ``key`` of every item of ``section``; reports duplicates."""
    first: dict[str, int] = {}
    for index, item in _items(raw, section):
        name = item.get(key)
        if not isinstance(name, str) or not name:
            continue
        folded = name.lower() if key == "id" and section == "campaigns" else name
        if folded in first:
            problems.append(
                (
                    (section, index, key),
                    f'duplicate {what} "{name}" (already used by {section}[{first[folded]}])',
                )
            )
        else:
            first[folded] = index
    return list(first)


def _missing(kind: str, name: str, known: Sequence[str], section: str) -> str:
    if not known:
        return f'no {kind} "{name}": no [[{section}]] are defined'
    if section == "agents":  # ids are extensions: a "close" one is no hint, list them
        listed = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
        return f'no {kind} "{name}" (agents: {listed})'
    return f'no {kind} "{name}"{suggest(name, known)}'


def check_references(raw: Mapping[str, Any]) -> list[Problem]:
    """Unique names and ids, and every name that points at another section."""
    problems: list[Problem] = []
    trunks = _names(raw, "trunks", "name", "trunk name", problems)
    agents = _names(raw, "agents", "id", "agent id", problems)
    calendars = _names(raw, "calendars", "name", "calendar name", problems)
    _names(raw, "campaigns", "name", "campaign name", problems)
    _names(raw, "campaigns", "id", "campaign id", problems)
    for index, route in _items(raw, "routes"):
        trunk = route.get("trunk")
        if isinstance(trunk, str) and trunk not in trunks:
            problems.append(
                (("routes", index, "trunk"), _missing("trunk named", trunk, trunks, "trunks"))
            )
    for index, campaign in _items(raw, "campaigns"):
        calendar = campaign.get("calendar")
        if isinstance(calendar, str) and calendar not in calendars:
            message = _missing("calendar named", calendar, calendars, "calendars")
            problems.append((("campaigns", index, "calendar"), message))
        tiers = campaign.get("agents")
        for position, tier in enumerate(tiers if isinstance(tiers, list | tuple) else ()):
            loc: Loc = ("campaigns", index, "agents", position)
            if isinstance(tier, Mapping):
                tier, loc = tier.get("id"), (*loc, "id")
            if isinstance(tier, str) and tier not in agents:
                problems.append((loc, _missing("agent with id", tier, agents, "agents")))
    return problems


# --- pydantic errors → key paths ----------------------------------------------------------

_MESSAGES = {
    "missing": "required key is missing",
    "tuple_type": "Input should be an array",
    "list_type": "Input should be an array",
    "model_type": "Input should be a table",
    "dict_type": "Input should be a table",
    "model_attributes_type": "Input should be a table",
}


def format_loc(loc: Loc) -> str:
    """``("trunks", 1, "cps")`` → ``trunks[1].cps``; odd keys are quoted as in TOML."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if _BARE_KEY.match(part) else '"' + part.replace('"', '\\"') + '"'
            out += f".{key}" if out else key
    return out


def format_problem(problem: Problem) -> str:
    loc, message = problem
    return f"{format_loc(loc)}: {message}" if loc else message


def _child_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _child_model(arg)
        if found is not None:
            return found
    return None


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """Field annotations of ``model`` keyed by their TOML name (the alias if any)."""
    return {(f.alias or name): f.annotation for name, f in model.model_fields.items()}


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None:
            return None
        if isinstance(part, str):
            model = _child_model(_fields(model).get(part))
    return model


def sort_key(root: type[BaseModel], loc: Loc) -> tuple[tuple[int, str], ...]:
    """Order problems as the keys are declared in the models (file order, mostly)."""
    key: list[tuple[int, str]] = []
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int):
            key.append((part, ""))
            continue
        fields = _fields(model) if model is not None else {}
        if part in fields:
            key.append((list(fields).index(part), ""))
            model = _child_model(fields[part])
        else:
            key.append((1 << 30, part))
            model = None
    return tuple(key)


def problems_from_validation_error(exc: ValidationError, root: type[BaseModel]) -> list[Problem]:
    """pydantic's errors as ``(loc, message)``, minus the root's own reference check."""
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        kind, loc, message = error["type"], tuple(error["loc"]), error["msg"]
        if kind == REFERENCES_ERROR:
            continue  # parse_config reports these itself, one per key path
        if kind == "extra_forbidden":
            model = _model_at(root, loc[:-1])
            known = list(_fields(model)) if model is not None else []
            message = "unknown key" + suggest(str(loc[-1]), known)
        elif kind in _MESSAGES:
            message = _MESSAGES[kind]
        else:
            for prefix in ("Value error, ", "Assertion failed, "):
                message = message.removeprefix(prefix)
        problems.append((loc, message))
    return problems


def toml_problem(exc: tomllib.TOMLDecodeError) -> str:
    message = str(exc)
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if match:
        return f"line {match[1]}, column {match[2]}: invalid TOML: {message[: match.start()]}"
    if message.endswith("(at end of document)"):
        return f"end of file: invalid TOML: {message.removesuffix(' (at end of document)')}"
    return f"invalid TOML: {message}"


# --- field types ---------------------------------------------------------------------------


def matching(regex: str, rule: str) -> Any:
    """A validator: the whole string matches ``regex``; else ``"value": rule``."""
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f'"{value}": {rule}')
        return value

    return AfterValidator(check)


def checked(func: Any) -> Any:
    """A validator that runs ``func(value)`` for its ValueError and keeps the value."""

    def check(value: str) -> str:
        func(value)
        return value

    return AfterValidator(check)


def seconds(default: float, *, le: float, gt: float | None = None, **extra: Any) -> Any:
    """A duration field (float seconds, ints accepted, strings and booleans refused)."""
    ge = None if gt is not None else 0
    return Field(float(default), strict=True, ge=ge, gt=gt, le=le, **extra)


def count(default: int, *, ge: int, le: int) -> Any:
    """A whole-number field (floats, strings and booleans refused)."""
    return Field(default, strict=True, ge=ge, le=le)


Name = Annotated[str, AfterValidator(check_name)]
CauseName = Annotated[str, AfterValidator(check_cause)]
Variables = Annotated[
    dict[str, Annotated[str | int | float | bool, PlainValidator(check_scalar)]],
    AfterValidator(check_variable_names),
]
Dialable = Annotated[
    str, matching(r"[0-9A-Za-z+*#._-]*", "may only use letters, digits, + * # . _ -")
]
FeatureCode = Annotated[str, matching(r"[0-9*#]{1,16}", "must be 1..16 of 0-9 * #")]
Window = Annotated[str, checked(parse_window)]
Day = tuple[Window, ...]
Flag = Annotated[bool, Field(strict=True)]
ListenAddress = Annotated[
    str, checked(lambda v: parse_host_port(v, default_port=None, allow_zero=True))
]
PublicAddress = Annotated[
    str, checked(lambda v: v and parse_host_port(v, default_port=0, allow_zero=False))
]
TrunkAddress = Annotated[
    str, checked(lambda v: parse_host_port(v, default_port=5060, allow_zero=False))
]

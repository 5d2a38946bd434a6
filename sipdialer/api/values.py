"""Value parsers and field types of the API bodies, shared with the CSV importer.

Each parser takes what a client (or a CSV cell) sent and returns the normalised value, or
raises ValueError with the message a user sees; the annotated types (``PhoneNumber``,
``Priority``, ``TimeZoneName``, ``Expire``, ``VariableMap``) wire them into pydantic.
:func:`describe_errors` turns a pydantic ``ValidationError`` into ``loc.path: message``
lines. See :mod:`sipdialer.api.schemas` for the rules (number normalisation, ``expire``
forms, variables as strings).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

from sipdialer.config_checks import check_timezone
from sipdialer.dialer.agents import AgentStatus

DIALABLE = re.compile(r"\+?[0-9*#]{1,32}")
"""A number after normalisation: what a trunk route can match and a Request-URI can carry."""
_NUMBER_NOISE = str.maketrans("", "", "-.()")
_VARIABLE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # sent as an X-Dialer-Var-<name> header
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_LINE_BREAK_OR_NUL = re.compile(r"[\r\n\0]")  # cannot go into a SIP header value

INT32 = 2**31 - 1  # priorities are stored in 32-bit integer columns
MAX_COMMUNICATIONS = 100
MAX_VARIABLES = 100
MAX_VARIABLE_VALUE = 1024
MAX_NAME = 256
MAX_COMMENT = 4096
MAX_NEXT_AFTER_SEC = 366 * 86400  # a year (and a day): far enough, and no datetime overflow
MAX_PAGE_SIZE = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# expire as epoch ms: 1970-01-01 .. 9999-12-31, the range of datetime.
_MAX_EPOCH_MS = int((datetime(9999, 12, 31, tzinfo=UTC) - _EPOCH).total_seconds()) * 1000


# --- value parsers (ValueError with the message users see; shared with the importer) -------


def normalise_number(value: str) -> str:
    """``"+38 (044) 123-45-67"`` -> ``"+380441234567"``; ValueError if not dialable."""
    cleaned = "".join(value.split()).translate(_NUMBER_NOISE)
    if not cleaned:
        raise ValueError("the number is empty")
    if not DIALABLE.fullmatch(cleaned):
        raise ValueError(
            f'"{value}" is not a dialable number (expected an optional "+" and 1..32 of'
            " 0-9 * #, after removing spaces, dashes, dots and parentheses)"
        )
    return cleaned


def parse_priority(value: Any) -> int:
    """A whole number within 32 bits; a string of digits is accepted (CSV), a bool is not."""
    if isinstance(value, bool):
        raise ValueError("expected a whole number, got a boolean")
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[+-]?\d{1,10}", text):
            raise ValueError(f'expected a whole number, got "{value}"')
        value = int(text)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {type(value).__name__}")
    if not -INT32 <= value <= INT32:
        raise ValueError(f"must be within -{INT32}..{INT32}, got {value}")
    return value


def parse_timezone(value: Any) -> str | None:
    """An IANA zone name (``Europe/Kyiv``); ``""`` or None means none."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError('expected an IANA time zone name such as "Europe/Kyiv"')
    text = value.strip()
    if not text:
        return None
    check_timezone(text)
    return text


def parse_expire(value: Any) -> datetime | None:
    """Epoch milliseconds (int, float or digits), ISO 8601 datetime (naive = UTC), an ISO date
    (its 00:00 UTC) or a datetime -> an aware UTC datetime; None or ``""`` -> None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError("expected epoch milliseconds or an ISO 8601 datetime, got a boolean")
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,16}\s*", value):
        value = int(value)
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value <= _MAX_EPOCH_MS:
            raise ValueError(f"epoch milliseconds out of range: {value}")
        return _EPOCH + timedelta(milliseconds=value)
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f'"{value}" is neither epoch milliseconds nor an ISO 8601 datetime'
                ' (e.g. "2026-12-31T18:00:00+02:00")'
            ) from None
        if _ISO_DATE.fullmatch(text):
            parsed = datetime(parsed.year, parsed.month, parsed.day)
    else:
        raise ValueError("expected epoch milliseconds or an ISO 8601 datetime")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def expire_ms(value: datetime | None) -> int | None:
    """The reply form of ``expire``: epoch milliseconds, as Webitel sends it."""
    if value is None:
        return None
    return (value - _EPOCH) // timedelta(milliseconds=1)


def variable_value(value: Any) -> str:
    """A variable's value as the string sent in its header: bools ``true``/``false``."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("a variable must be a finite number")
        text = repr(value)
    elif isinstance(value, str):
        text = value
    else:
        raise ValueError("a variable must be a string, a number or a boolean")
    if _LINE_BREAK_OR_NUL.search(text):
        raise ValueError("a variable may not contain line breaks or NUL (it is sent as a header)")
    if len(text) > MAX_VARIABLE_VALUE:
        raise ValueError(f"a variable may hold at most {MAX_VARIABLE_VALUE} characters")
    return text


def check_member_name(name: str) -> str:
    """A member's name travels as the X-Dialer-Member-Name header: one line, no NUL."""
    if _LINE_BREAK_OR_NUL.search(name):
        raise ValueError("a name may not contain line breaks or NUL (it is sent as a header)")
    return name


def one_line(text: str) -> str:
    """Line breaks (and the spaces around them) become one space: CSV cells may hold them."""
    if "\n" not in text and "\r" not in text:
        return text
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def check_variable_name(name: str) -> str:
    if not _VARIABLE_NAME.fullmatch(name):
        raise ValueError(
            f'variable name "{name}" must be 1..64 letters, digits, "-" or "_"'
            " (it is sent as an X-Dialer-Var-<name> header)"
        )
    return name


def _variables(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError("expected an object of name: value")
    if len(value) > MAX_VARIABLES:
        raise ValueError(f"at most {MAX_VARIABLES} variables")
    out: dict[str, str] = {}
    for key, item in value.items():
        name = check_variable_name(str(key))
        try:
            out[name] = variable_value(item)
        except ValueError as exc:
            raise ValueError(f'"{name}": {exc}') from None
    return out


def agent_status_text(value: Any) -> Any:
    """Accept ``available``, ``logged_out``, ``LOGGED_OUT``... for the canonical spelling."""
    if isinstance(value, str):
        folded = value.replace("_", "").replace(" ", "").lower()
        for status in AgentStatus:
            if folded == status.value.lower():
                return status.value
    return value


def _number_text(value: Any) -> Any:
    """JSON clients send numbers as numbers too: ``380441234567`` is taken as its digits."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return value


MemberName = Annotated[str, Field(max_length=MAX_NAME), AfterValidator(check_member_name)]
PhoneNumber = Annotated[str, BeforeValidator(_number_text), AfterValidator(normalise_number)]
Priority = Annotated[int, BeforeValidator(parse_priority)]
TimeZoneName = Annotated[str | None, BeforeValidator(parse_timezone)]
Expire = Annotated[
    datetime | None,
    BeforeValidator(parse_expire),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "description": "epoch milliseconds"},
                {"type": "string", "format": "date-time"},
                {"type": "string", "format": "date"},
                {"type": "null"},
            ]
        }
    ),
]
VariableMap = Annotated[
    dict[str, str],
    BeforeValidator(_variables),
    WithJsonSchema(
        {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean"]},
            "description": "name: value; numbers and booleans are taken as strings",
        }
    ),
]


_NUMBER_LIST: TypeAdapter[list[str]] = TypeAdapter(list[PhoneNumber])


def _stop_list(value: Any) -> Literal["all"] | list[str]:
    """``"all"`` or a list of numbers; one error shape instead of a union's two."""
    if isinstance(value, str):
        if value.strip().lower() == "all":
            return "all"
        raise ValueError('expected a list of numbers or the string "all"')
    return _NUMBER_LIST.validate_python(value)


StopList = Annotated[
    Literal["all"] | list[str],
    PlainValidator(_stop_list),
    WithJsonSchema(
        {
            "anyOf": [
                {"const": "all", "type": "string"},
                {"type": "array", "items": {"type": "string"}},
            ]
        }
    ),
]


# --- errors for humans ---------------------------------------------------------------------


def describe_errors(exc: ValidationError, *, prefix: tuple[str | int, ...] = ()) -> list[str]:
    """``["communications.0.number: "12a" is not a dialable number ..."]``, one per error.

    ``prefix`` is put before each location (a CLI import passes nothing; the API would pass
    ``("body",)`` to match FastAPI's ``loc``)."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in (*prefix, *error["loc"]))
        message = error["msg"]
        for text in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(text)
        if error["type"] == "missing":
            message = "required"
        elif error["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{loc}: {message}" if loc else message)
    return lines
